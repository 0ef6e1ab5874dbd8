#!/usr/bin/env python3
"""Load and verdicts for the fault-recovery scenarios (scripts/fault-*.sh). Standard library only.

Subcommands:
  wait-ready     until the server's /readyz answers 200
  pg-load        sign-ups, sign-ins and webhook checks from threads until a stop file appears;
                 every request is recorded (start, end, status, Retry-After, error type)
  pg-verify      checks those records against the outage windows the shell script wrote, and
                 the acknowledged sign-ups against the user names in the database
  signup-kill    sign-ups from threads; SIGKILL to the server after N acknowledgements
  sqlite-verify  PRAGMA integrity_check, and every acknowledged sign-up in auth_user

A sign-up is "acknowledged" when its 200 answer was read in full: only those must survive.
"""

import argparse
import http.client
import json
import os
import random
import signal
import sqlite3
import sys
import threading
import time
import urllib.parse

# Passes Django's default validators and resembles no user name.
PASSWORD = "Fault-recovery-9vQ!x"


def request(base, method, path, body=None, headers=None, timeout=15.0):
    """One HTTP request on a fresh connection: a dict with what came back, or the error."""
    url = urllib.parse.urlsplit(base)
    started = time.time()
    result = {"method": method, "path": path, "start": started}
    try:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        sent = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        result["status"] = response.status
        result["retry_after"] = response.getheader("Retry-After")
        try:
            result["json"] = json.loads(raw) if raw else None
        except ValueError:
            result["json"] = None
    except (OSError, http.client.HTTPException) as err:
        result["error"] = f"{type(err).__name__}: {err}"
    result["end"] = time.time()
    return result


def error_type(result):
    body = result.get("json")
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        return body["errors"][0].get("type")
    return None


def signup(base, username):
    return request(base, "POST", "/webhook/signup", {"username": username, "password": PASSWORD})


def wait_ready(args):
    """Waits for /readyz to answer 200 while the server process lives."""
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        try:
            os.kill(args.pid, 0)
        except OSError:
            sys.exit("the server exited while starting")
        if request(args.base, "GET", "/readyz", timeout=2).get("status") == 200:
            return
        time.sleep(0.2)
    sys.exit(f"the server was not ready within {args.timeout}s")


# ---- PostgreSQL restart ------------------------------------------------------------------------


def pg_load(args):
    base = args.base
    prefix = f"pgf{os.getpid()}x"
    users = []
    for i in range(args.users):
        result = signup(base, f"{prefix}seed{i}")
        if result.get("status") != 200:
            sys.exit(f"setup: sign-up {i} failed: {result}")
        users.append((f"{prefix}seed{i}", result["json"]["token"]))
    # Every token's session is checked once, so that it is in the webhook's cache.
    for name, token in users:
        result = request(base, "GET", "/webhook/webhook", headers={"Authorization": f"Bearer {token}"})
        if result.get("status") != 200:
            sys.exit(f"setup: webhook for {name} failed: {result}")

    records, acked, lock = [], [], threading.Lock()
    stop = threading.Event()

    def worker(kind, index):
        counter = 0
        rng = random.Random(index)
        while not stop.is_set():
            counter += 1
            if kind == "signup":
                name = f"{prefix}{index}n{counter}"
                result = signup(base, name)
                if result.get("status") == 200:
                    with lock:
                        acked.append(name)
            elif kind == "login":
                name, _ = rng.choice(users)
                result = request(base, "POST", "/webhook/login", {"username": name, "password": PASSWORD})
            else:
                _, token = rng.choice(users)
                result = request(base, "GET", "/webhook/webhook", headers={"Authorization": f"Bearer {token}"})
            result["kind"] = kind
            if result.get("status") != 200:
                result["type"] = error_type(result)
            result.pop("json", None)
            with lock:
                records.append(result)

    threads = []
    for kind, count in (("signup", args.signup_threads), ("login", args.login_threads), ("webhook", args.webhook_threads)):
        for i in range(count):
            thread = threading.Thread(target=worker, args=(kind, f"{kind[0]}{i}"), daemon=True)
            thread.start()
            threads.append(thread)
    print(f"load: {args.users} users ready; {len(threads)} threads running", flush=True)
    open(args.ready_file, "w").close()
    while not os.path.exists(args.stop_file):
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    with open(args.out, "w") as out:
        json.dump({"records": records, "acked": acked}, out)
    print(f"load: {len(records)} requests, {len(acked)} sign-ups acknowledged", flush=True)


def read_phases(path):
    """Outage windows from the shell script: (mode, stop_begin, down, start_begin, ready)."""
    events = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                events.append((parts[0], float(parts[1]), parts[2:]))
    outages, current = [], {}
    for name, at, extra in events:
        current[name] = at
        if name == "stop_begin":
            current["mode"] = extra[0] if extra else "?"
        if name == "ready":
            outages.append(dict(current))
            current = {}
    return outages


def pg_verify(args):
    with open(args.events) as f:
        data = json.load(f)
    records, acked = data["records"], data["acked"]
    outages = read_phases(args.phases)
    with open(args.usernames) as f:
        in_db = {line.strip() for line in f if line.strip()}
    violations = []

    def violate(message, record=None):
        if len(violations) < 40:
            detail = ""
            if record is not None:
                shown = {k: record.get(k) for k in ("kind", "status", "type", "retry_after", "error")}
                shown["secs"] = round(record["end"] - record["start"], 3)
                detail = f" {shown}"
            violations.append(message + detail)
        else:
            violations.append("…")

    allowed = {"signup": {200, 503}, "login": {200, 503}, "webhook": {200}}
    for r in records:
        took = r["end"] - r["start"]
        if "error" in r:
            violate("request failed without an HTTP answer", r)
            continue
        status = r["status"]
        if status not in allowed[r["kind"]]:
            violate(f"{r['kind']}: unexpected status {status}", r)
        if status == 503:
            if not (r.get("retry_after") or "").isdigit():
                violate("503 without a numeric Retry-After", r)
            if r.get("type") != "ServiceUnavailable":
                violate("503 without the ServiceUnavailable JSON error", r)
            if took >= args.max_503_secs:
                violate(f"503 took {took:.2f}s (bound {args.max_503_secs}s)", r)
        if took >= args.max_request_secs:
            violate(f"request took {took:.2f}s (bound {args.max_request_secs}s)", r)

    lines = []
    for n, outage in enumerate(outages, 1):
        down, start_begin, ready = outage["down"], outage["start_begin"], outage["ready"]
        inside = [r for r in records if r["start"] >= down and r["end"] <= start_begin and "error" not in r]
        by_kind = {k: [r for r in inside if r["kind"] == k] for k in allowed}
        for kind in ("signup", "login"):
            got = by_kind[kind]
            if not got:
                violate(f"outage {n}: no {kind} request ran entirely inside the outage (nothing was proved)")
            for r in got:
                if r["status"] != 503:
                    violate(f"outage {n}: {kind} answered {r['status']} while PostgreSQL was down", r)
        if not by_kind["webhook"]:
            violate(f"outage {n}: no webhook request ran inside the outage")
        outage_503 = [r["end"] - r["start"] for k in ("signup", "login") for r in by_kind[k]]
        webhook_secs = [r["end"] - r["start"] for r in by_kind["webhook"]]
        # Recovery: the first sign-in and sign-up that succeed once PostgreSQL is back.
        recovered = {}
        for kind in ("login", "signup"):
            ok = [r["end"] for r in records if r["kind"] == kind and r["status"] == 200 and r["start"] >= ready]
            if not ok:
                violate(f"outage {n}: no {kind} succeeded after PostgreSQL came back")
                continue
            recovered[kind] = min(ok) - ready
            if recovered[kind] > args.max_recovery_secs:
                violate(f"outage {n}: {kind} recovered {recovered[kind]:.1f}s after PostgreSQL was ready "
                        f"(bound {args.max_recovery_secs}s)")
        lines.append(
            f"outage {n} (pg_ctl stop -m {outage.get('mode')}): down {start_begin - down:.1f}s, "
            f"stop took {down - outage['stop_begin']:.1f}s, start took {ready - start_begin:.1f}s; inside: "
            f"{len(by_kind['signup'])} sign-ups, {len(by_kind['login'])} sign-ins "
            f"(all 503, slowest {max(outage_503, default=0):.2f}s), "
            f"{len(by_kind['webhook'])} webhook checks (slowest {max(webhook_secs, default=0):.3f}s); "
            "recovered after " + ", ".join(f"{k} {v:.2f}s" for k, v in recovered.items())
        )

    lost = [name for name in acked if name not in in_db]
    for name in lost[:10]:
        violate(f"acknowledged sign-up {name!r} is not in auth_user")
    if not outages:
        violate("no outage was recorded")

    counts = {}
    for r in records:
        key = (r["kind"], r.get("status", "error"))
        counts[key] = counts.get(key, 0) + 1
    print("== PostgreSQL restart under load: summary")
    print("requests: " + ", ".join(f"{k} {s}: {c}" for (k, s), c in sorted(counts.items(), key=str)))
    for line in lines:
        print(line)
    slowest = {}
    for r in records:
        if "error" not in r:
            key = "webhook" if r["kind"] == "webhook" else f"{r['status']}"
            slowest[key] = max(slowest.get(key, 0), r["end"] - r["start"])
    print("slowest answers over the whole run: " + ", ".join(
        f"{'webhook' if k == 'webhook' else 'sign-up/sign-in ' + k} {v:.2f}s" for k, v in sorted(slowest.items())))
    print(f"acknowledged sign-ups: {len(acked)}, all in auth_user: {'yes' if not lost else f'NO, {len(lost)} lost'}")
    if violations:
        print(f"FAILED: {len(violations)} violation(s)")
        for v in violations:
            print("  - " + v)
        sys.exit(1)
    print("OK: 503 + Retry-After during the outages, no 500, no dropped connection, webhook served "
          "from recent checks, recovery without a restart, no acknowledged write lost")


# ---- SQLite SIGKILL ----------------------------------------------------------------------------


def signup_kill(args):
    base = args.base
    prefix = f"sqk{os.getpid()}r{args.round}x"
    acked, lock = [], threading.Lock()
    killed = threading.Event()
    errors_before_kill = []

    def worker(index):
        counter = 0
        while not killed.is_set():
            counter += 1
            name = f"{prefix}{index}n{counter}"
            result = signup(base, name)
            if result.get("status") == 200:
                with lock:
                    acked.append(name)
                    if len(acked) >= args.kill_after and not killed.is_set():
                        killed.set()
                        os.kill(args.pid, signal.SIGKILL)
            elif not killed.is_set():
                errors_before_kill.append(result)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    deadline = time.time() + args.timeout
    while not killed.is_set() and time.time() < deadline:
        time.sleep(0.05)
    if not killed.is_set():
        sys.exit(f"round {args.round}: only {len(acked)} sign-ups acknowledged in {args.timeout}s")
    for thread in threads:
        thread.join(timeout=20)
    with open(args.acked_out, "a") as out:
        out.writelines(name + "\n" for name in acked)
    # A request refused before the kill (503 when the hashing queue is full, say) is allowed;
    # anything else is reported.
    bad = [r for r in errors_before_kill if r.get("status") != 503]
    print(f"round {args.round}: SIGKILL after {len(acked)} acknowledged sign-ups "
          f"({len(errors_before_kill)} refused before the kill)", flush=True)
    if bad:
        sys.exit(f"round {args.round}: unexpected answers before the kill: {bad[:3]}")


def sqlite_verify(args):
    with open(args.acked) as f:
        acked = [line.strip() for line in f if line.strip()]
    # Opening the file recovers the WAL, as gatehouse does when it starts again.
    db = sqlite3.connect(args.db)
    integrity = [row[0] for row in db.execute("PRAGMA integrity_check")]
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    names = {row[0] for row in db.execute("SELECT username FROM auth_user")}
    db.close()
    lost = [name for name in acked if name not in names]
    print(f"integrity_check: {', '.join(integrity)}; journal_mode: {mode}; "
          f"{len(acked)} acknowledged sign-ups, {len(names)} users in auth_user, {len(lost)} lost")
    if integrity != ["ok"] or lost:
        for name in lost[:10]:
            print(f"  - lost: {name}")
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("wait-ready")
    p.add_argument("--base", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(run=wait_ready)

    p = sub.add_parser("pg-load")
    p.add_argument("--base", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--signup-threads", type=int, default=3)
    p.add_argument("--login-threads", type=int, default=3)
    p.add_argument("--webhook-threads", type=int, default=2)
    p.set_defaults(run=pg_load)

    p = sub.add_parser("pg-verify")
    p.add_argument("--events", required=True)
    p.add_argument("--phases", required=True)
    p.add_argument("--usernames", required=True)
    p.add_argument("--max-503-secs", type=float, default=3.0)
    p.add_argument("--max-request-secs", type=float, default=5.0)
    p.add_argument("--max-recovery-secs", type=float, default=10.0)
    p.set_defaults(run=pg_verify)

    p = sub.add_parser("signup-kill")
    p.add_argument("--base", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--kill-after", type=int, required=True)
    p.add_argument("--round", type=int, default=1)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--acked-out", required=True)
    p.set_defaults(run=signup_kill)

    p = sub.add_parser("sqlite-verify")
    p.add_argument("--db", required=True)
    p.add_argument("--acked", required=True)
    p.set_defaults(run=sqlite_verify)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
