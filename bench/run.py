#!/usr/bin/env python3
"""The load benchmark: gatehouse against the physical limit and against Django + simplejwt.

Run through scripts/bench.sh (which builds the binaries and the virtual environment). For each
database (SQLite, PostgreSQL) it makes a fresh database, creates the schema with gatehouse and
Django, seeds users with Django's own make_password, then measures, in this one run:

- gatehouse (RS256 key): /healthz, the webhook with a valid token (GET and POST modes), the
  webhook's anonymous path, the JWKS (wrk); login, refresh (chained: each refresh token is used
  once), sign-up (bench/loadgen.rs); a login storm with the webhook paced alongside; a login
  storm over Argon2 users for memory;
- gatehouse with an EdDSA key: webhook, login, refresh;
- Django + djangorestframework-simplejwt (RS256, the same key) under gunicorn, workers = cores:
  login, refresh (rotation + blacklist), token verification (an authenticated DRF view);
- one PBKDF2-SHA256 verification at the configured iterations (gatehouse's own hasher), which
  with the core count gives the hashing limit logins are held against.

Every figure is taken next to its baseline in the same run; results go to a JSON file from
which report.py makes the tables and plots.
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DJANGO_DIR = os.path.join(HERE, "django")
PASSWORD = "correct horse battery staple 42"
ITERATIONS = 1_500_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


# --- process accounting (/proc) -----------------------------------------------------------------


def process_tree(root):
    """root and its descendants (gunicorn's workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / CLK_TCK


def status_kib(pids, field):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def reset_peak_rss(pids):
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


class Server:
    def __init__(self, name, cmd, env, port, cwd=None):
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"{name} did not start: see {self.log.name}")
        time.sleep(0.5 if name.startswith("gatehouse") else 2.0)  # gunicorn forks its workers

    def pids(self):
        return process_tree(self.proc.pid)

    def rss_mib(self):
        return status_kib(self.pids(), "VmRSS") / 1024

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measured(server, run):
    """Runs `run()` and adds the server's CPU (cores busy on average) and peak RSS to its result."""
    pids = server.pids()
    reset_peak_rss(pids)
    cpu0, t0 = cpu_seconds(pids), time.time()
    result = run()
    elapsed = time.time() - t0
    pids = server.pids()
    result["server_cpu_cores"] = (cpu_seconds(pids) - cpu0) / elapsed
    result["server_peak_rss_mib"] = status_kib(pids, "VmHWM") / 1024
    result["loadavg_after"] = loadavg()
    return result


# --- load generators ----------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def wrk(url, duration, connections, headers=(), method="GET", body=None):
    """wrk (Debian's package), one thread, for requests that are the same every time."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "10s"]
    for header in headers:
        cmd += ["-H", header]
    script = None
    if method != "GET":
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(f"wrk.method = {json.dumps(method)}\n")
        script.write(f"wrk.body = {json.dumps(body or '')}\n")
        script.write('wrk.headers["Content-Type"] = "application/json"\n')
        script.close()
        cmd += ["-s", script.name]
    cmd.append(url)
    cpu0 = os.times()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu1 = os.times()
    if script:
        os.unlink(script.name)

    def latency(pct):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        return float(m.group(1)) * UNITS[m.group(2)]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = int(non2xx.group(1)) if non2xx else 0
    return {
        "tool": "wrk",
        "concurrency": connections,
        "requests": requests,
        "rps": rps,
        "ok_rps": rps * (requests - bad) / max(requests, 1),
        "non_2xx": bad,
        "socket_errors": errors.group(1) if errors else None,
        "latency": {"p50_ms": latency(50), "p90_ms": latency(90), "p99_ms": latency(99)},
        "loadgen_cpu_s": (cpu1.children_user + cpu1.children_system) - (cpu0.children_user + cpu0.children_system),
    }


class Loadgen:
    def __init__(self, binary):
        self.binary = binary

    def cmd(self, url, *args):
        return [self.binary, "--url", url, *map(str, args)]

    def run(self, url, *args):
        out = subprocess.run(self.cmd(url, *args), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen {args} failed: {out.stderr[-2000:]}")
        result = json.loads(out.stdout)
        result["tool"] = "loadgen"
        return result

    def start(self, url, *args):
        return subprocess.Popen(self.cmd(url, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def finish(proc):
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"loadgen failed: {err[-2000:]}")
        result = json.loads(out)
        result["tool"] = "loadgen"
        return result


def post_json(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


# --- set-up ---------------------------------------------------------------------------------------


class Database:
    def __init__(self, backend, workdir, postgres_url):
        self.backend = backend
        if backend == "sqlite":
            self.url = f"sqlite://{workdir}/bench.sqlite3"
            self.django_url = f"sqlite:///{workdir}/bench.sqlite3".replace("////", "///")
        else:
            self.name = f"gatehouse_bench_{os.getpid()}"
            self.server = postgres_url.rsplit("/", 1)[0]
            self.psql(f'DROP DATABASE IF EXISTS "{self.name}"')
            self.psql(f'CREATE DATABASE "{self.name}"')
            self.url = self.django_url = f"{self.server}/{self.name}"

    def psql(self, sql):
        subprocess.run(["psql", f"{self.server}/postgres", "-qc", sql], check=True, capture_output=True)

    def drop(self):
        if self.backend == "postgres":
            self.psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.loadgen = Loadgen(args.loadgen)
        self.workdir = tempfile.mkdtemp(prefix="gatehouse-bench-")
        self.python = args.python
        self.results = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "quick": self.quick,
            "cpu": cpu_model(),
            "cores": CORES,
            "loadavg_start": loadavg(),
            "iterations": ITERATIONS,
            "versions": self.versions(),
            "backends": {},
        }

    def d(self, full, quick):
        return quick if self.quick else full

    def versions(self):
        code = (
            "import django, rest_framework, rest_framework_simplejwt, gunicorn, jwt, sys;"
            "from django.contrib.auth.hashers import PBKDF2PasswordHasher as H;"
            "print(sys.version.split()[0], django.get_version(), rest_framework.VERSION,"
            " rest_framework_simplejwt.__version__, gunicorn.__version__, jwt.__version__, H.iterations)"
        )
        out = subprocess.run([self.python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        names = ["python", "django", "djangorestframework", "simplejwt", "gunicorn", "pyjwt", "django_pbkdf2_iterations"]
        versions = dict(zip(names, out))
        if int(versions["django_pbkdf2_iterations"]) != ITERATIONS:
            raise SystemExit(f"Django's PBKDF2 iterations are {versions['django_pbkdf2_iterations']}, not {ITERATIONS}")
        versions["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
        return versions

    def django_env(self, db, key):
        env = dict(os.environ, BENCH_DATABASE_URL=db.django_url, BENCH_SIGNING_KEY=key, PYTHONPATH=DJANGO_DIR)
        env["DJANGO_SETTINGS_MODULE"] = "benchsite.settings"
        return env

    def gatehouse_cmd(self, db, data_dir, alg, port, *extra):
        return [
            self.args.gatehouse,
            "serve",
            "--database-url", db.url,
            "--data-dir", data_dir,
            "--jwt-alg", alg,
            "--pbkdf2-iterations", str(ITERATIONS),
            "--port", str(port),
            "--public-url", f"http://127.0.0.1:{port}",
            # Sign-ups are measured for throughput: the per-IP and global sign-up rates (20 an
            # hour per IP, 60 a minute) would otherwise answer 429 after the first few.
            "--signups-per-minute", "1000000",
            "--signups-per-ip-per-hour", "1000000",
            *extra,
        ]  # fmt: skip

    def hash_time(self):
        result = self.loadgen.run(
            "http://unused", "--scenario", "hash-time", "--iterations", ITERATIONS, "--count", 4, "--concurrency", CORES
        )
        log(
            f"one PBKDF2-SHA256 verification at {ITERATIONS}: {result['median_s'] * 1000:.1f} ms; "
            f"{CORES} threads at once: {result['parallel_per_s']:.2f}/s"
        )
        return result

    def python_hash_time(self):
        code = (
            "import hashlib, time, statistics;"
            "t=[];"
            "exec('for _ in range(5):\\n s=time.perf_counter(); hashlib.pbkdf2_hmac(\"sha256\", b\"pw\", b\"salt\", "
            f"{ITERATIONS}); t.append(time.perf_counter()-s)');"
            "print(statistics.median(t))"
        )
        out = subprocess.run([self.python, "-c", code], capture_output=True, text=True, check=True).stdout
        return {"median_s": float(out)}

    # --- scenarios ---

    def login(self, server, users, style, concurrency=None):
        return measured(
            server,
            lambda: self.loadgen.run(
                server.url, "--scenario", "login", "--style", style, "--users-file", users,
                "--password", PASSWORD, "--concurrency", concurrency or 4 * CORES,
                "--duration", self.d(20, 8),
            ),
        )  # fmt: skip

    def refresh(self, server, users, style):
        return measured(
            server,
            lambda: self.loadgen.run(
                server.url, "--scenario", "refresh", "--style", style, "--users-file", users,
                "--password", PASSWORD, "--concurrency", 16, "--duration", self.d(10, 4),
            ),
        )  # fmt: skip

    def fixed(self, server, path, headers=(), method="GET", body=None, connections=16, duration=None):
        return measured(
            server, lambda: wrk(server.url + path, duration or self.d(10, 3), connections, headers, method, body)
        )

    def interleaved(self, server, cases, rounds):
        """Runs each case once per round, round after round, so that each case and its baseline
        see the same background load; keeps every round."""
        runs = {name: [] for name in cases}
        for _ in range(rounds):
            for name, kwargs in cases.items():
                runs[name].append(self.fixed(server, duration=self.d(4, 2), **kwargs))
        return runs

    def paced_webhook(self, server, bearer, duration):
        return self.loadgen.start(
            server.url, "--scenario", "fixed", "--path", "/webhook/webhook", "--header", f"Authorization: {bearer}",
            "--concurrency", 4, "--rate", 200, "--duration", duration,
        )  # fmt: skip

    def storm(self, server, users, bearer, label):
        """Logins far beyond the hashing slots and queue, with the webhook paced alongside.

        Storm clients that get 503/429 wait 100 ms before trying again (no client retries in a
        busy loop; Retry-After would ask for a second)."""
        duration = self.d(15, 6)
        idle = Loadgen.finish(self.paced_webhook(server, bearer, duration))

        def run():
            storm = self.loadgen.start(
                server.url, "--scenario", "login", "--users-file", users, "--password", PASSWORD,
                "--concurrency", 64, "--duration", duration + 4, "--error-backoff", 0.1,
            )  # fmt: skip
            time.sleep(2)
            webhook = Loadgen.finish(self.paced_webhook(server, bearer, duration))
            return {"logins": Loadgen.finish(storm), "webhook": webhook}

        result = measured(server, run)
        result["webhook_idle"] = idle
        log(
            f"{label}: webhook p99 idle {idle['latency']['p99_ms']:.2f} ms, "
            f"in storm {result['webhook']['latency']['p99_ms']:.2f} ms; logins {result['logins']['by_status']}"
        )
        return result

    def run_backend(self, backend):
        log(f"=== {backend} ===")
        db = Database(backend, self.workdir, self.args.postgres_url)
        results = {"database": backend}
        try:
            self.results["backends"][backend] = results
            self.prepare(db)
            results["gatehouse_rs256"] = self.gatehouse_full(db, "RS256")
            results["gatehouse_eddsa"] = self.gatehouse_alg(db, "EdDSA")
            results["django"] = self.django(db)
        finally:
            db.drop()

    def prepare(self, db):
        log("schema: gatehouse migrate, then Django's migrate (token_blacklist)")
        subprocess.run([self.args.gatehouse, "migrate", "--database-url", db.url], check=True, capture_output=True)
        # Django needs the signing key to import its settings; any RS256 key does for migrate.
        key_dir = os.path.join(self.workdir, "data-RS256")
        os.makedirs(key_dir, exist_ok=True)
        key = self.rs256_key(key_dir)
        env = self.django_env(db, key)
        manage = [self.python, os.path.join(DJANGO_DIR, "manage.py")]
        subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=DJANGO_DIR)
        seed = [self.python, os.path.join(DJANGO_DIR, "seed.py")]
        self.users = os.path.join(self.workdir, "users.txt")
        self.argon_users = os.path.join(self.workdir, "argon-users.txt")
        subprocess.run([*seed, "bench", "2000", "pbkdf2_sha256", PASSWORD, self.users], env=env, check=True,
                       cwd=DJANGO_DIR)  # fmt: skip
        subprocess.run([*seed, "argon", "400", "argon2", PASSWORD, self.argon_users], env=env, check=True,
                       cwd=DJANGO_DIR)  # fmt: skip
        self.key = key

    def rs256_key(self, key_dir):
        """gatehouse's own RS256 key (made by `gatehouse keygen`): Django signs with it too."""
        private = os.path.join(key_dir, "private.pem")
        if not os.path.exists(private):
            subprocess.run([self.args.gatehouse, "keygen", "--alg", "RS256", "--out", key_dir], check=True,
                           capture_output=True)  # fmt: skip
        return private

    def gatehouse_token(self, server):
        answer = post_json(server.url + "/webhook/login", {"username": "bench-1999", "password": PASSWORD})
        return "Bearer " + answer["token"]

    def gatehouse_server(self, db, alg):
        port = free_port()
        env = dict(os.environ, RUST_LOG="warn")
        data_dir = os.path.join(self.workdir, f"data-{alg}")
        if alg == "RS256":
            env["AUTH_PRIVATE_KEY"] = open(self.key).read()
        return Server(f"gatehouse-{alg}", self.gatehouse_cmd(db, data_dir, alg, port), env, port)

    def gatehouse_full(self, db, alg):
        server = self.gatehouse_server(db, alg)
        r = {}
        try:
            urllib.request.urlopen(server.url + "/healthz").read()
            r["idle_rss_mib_start"] = server.rss_mib()
            bearer = self.gatehouse_token(server)
            hook_body = json.dumps({"headers": {"Authorization": bearer}, "request": None})
            log(f"gatehouse {alg}: fixed-request endpoints (wrk), interleaved with /healthz")
            r["rounds"] = self.interleaved(
                server,
                {
                    "healthz": {"path": "/healthz"},
                    "webhook_get": {"path": "/webhook/webhook", "headers": [f"Authorization: {bearer}"]},
                    "webhook_post": {"path": "/webhook/webhook", "method": "POST", "body": hook_body},
                    "webhook_anonymous": {"path": "/webhook/webhook"},
                    "jwks": {"path": "/webhook/jwks"},
                },
                self.d(3, 2),
            )
            r["hash_time_before"] = self.hash_time()
            log(f"gatehouse {alg}: login")
            r["login"] = self.login(server, self.users, "gatehouse")
            r["hash_time_after"] = self.hash_time()
            log(f"gatehouse {alg}: refresh")
            r["refresh"] = self.refresh(server, self.users, "gatehouse")
            log(f"gatehouse {alg}: sign-up")
            r["signup"] = measured(
                server,
                lambda: self.loadgen.run(
                    server.url, "--scenario", "signup", "--password", PASSWORD, "--concurrency", 4 * CORES,
                    "--duration", self.d(15, 6), "--name-prefix", f"signup-{db.backend}-{alg}",
                ),
            )  # fmt: skip
            r["storm"] = self.storm(server, self.users, bearer, f"gatehouse {alg} storm (pbkdf2)")
            r["storm_argon2"] = self.storm(server, self.argon_users, bearer, f"gatehouse {alg} storm (argon2)")
            r["rss_mib_end"] = server.rss_mib()
        finally:
            server.stop()
        return r

    def gatehouse_alg(self, db, alg):
        server = self.gatehouse_server(db, alg)
        r = {}
        try:
            bearer = self.gatehouse_token(server)
            log(f"gatehouse {alg}: webhook, login, refresh")
            r["rounds"] = self.interleaved(
                server,
                {
                    "healthz": {"path": "/healthz"},
                    "webhook_get": {"path": "/webhook/webhook", "headers": [f"Authorization: {bearer}"]},
                },
                self.d(2, 1),
            )
            r["login"] = self.login(server, self.users, "gatehouse")
            r["refresh"] = self.refresh(server, self.users, "gatehouse")
        finally:
            server.stop()
        return r

    def django(self, db):
        port = free_port()
        env = self.django_env(db, self.key)
        gunicorn = os.path.join(os.path.dirname(self.python), "gunicorn")
        cmd = [gunicorn, "--workers", str(CORES), "--worker-class", "sync", "--bind", f"127.0.0.1:{port}",
               "--backlog", "2048", "--log-level", "warning", "benchsite.wsgi"]  # fmt: skip
        server = Server("django", cmd, env, port, cwd=DJANGO_DIR)
        r = {}
        try:
            answer = post_json(server.url + "/api/token/", {"username": "bench-1999", "password": PASSWORD})
            r["idle_rss_mib_start"] = server.rss_mib()
            bearer = "Bearer " + answer["access"]
            log("django: login, refresh, token verification")
            r["login"] = self.login(server, self.users, "simplejwt")
            r["refresh"] = self.refresh(server, self.users, "simplejwt")
            r["verify"] = self.fixed(server, "/hook/", [f"Authorization: {bearer}"])
            r["python_hash_time"] = self.python_hash_time()
            r["rss_mib_end"] = server.rss_mib()
        finally:
            server.stop()
        return r

    def run(self):
        for backend in self.args.backends.split(","):
            self.run_backend(backend)
        self.results["loadavg_end"] = loadavg()
        self.results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        shutil.rmtree(self.workdir, ignore_errors=True)
        return self.results


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


class LoadSampler(threading.Thread):
    """Samples /proc/loadavg and the busiest other processes every few seconds, so the report
    can say what else ran during the measurements."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(15):
            ps = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"], capture_output=True,
                                text=True).stdout.splitlines()[:6]  # fmt: skip
            self.samples.append({"t": time.time(), "loadavg": loadavg(), "top": [" ".join(p.split()) for p in ps]})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gatehouse", required=True)
    parser.add_argument("--loadgen", required=True)
    parser.add_argument("--python", required=True, help="the bench venv's python (Django, simplejwt, gunicorn)")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://root@127.0.0.1:5432/postgres"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", required=True, help="results JSON")
    args = parser.parse_args()
    sampler = LoadSampler()
    sampler.start()
    results = Bench(args).run()
    sampler.stop.set()
    results["load_samples"] = sampler.samples
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    log(f"results in {args.out}")


if __name__ == "__main__":
    main()
