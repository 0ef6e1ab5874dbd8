#!/usr/bin/env python3
"""Tables (Markdown) and plots (PNG) from the JSON bench/run.py writes.

Usage: python report.py RESULTS.json OUT_DIR
Writes OUT_DIR/results.md (included in docs/BENCHMARKS.md) and OUT_DIR/*.png.
"""

import json
import os
import statistics
import sys

TARGETS = {
    "webhook_vs_healthz": 0.70,
    "webhook_p99_ms": 5.0,
    "login_vs_limit": 0.90,
    "storm_p99_ratio": 3.0,
    "login_vs_django": 2.0,
    "refresh_vs_django": 3.0,
    "idle_rss_mib": 30.0,
}


def ok(result):
    return result.get("ok_rps", result.get("rps", 0.0))


def row(server, operation, result):
    lat = result["latency"]
    duration = result.get("duration_s") or 0
    loadgen = result.get("loadgen_cpu_s")
    loadgen_cores = f"{loadgen / duration:.2f}" if loadgen is not None and duration else "–"
    return (
        f"| {server} | {operation} | {ok(result):,.1f} | {lat['p50_ms']:.2f} | {lat['p99_ms']:.2f} | "
        f"{result.get('server_cpu_cores', 0):.2f} | {result.get('server_peak_rss_mib', 0):.1f} | {loadgen_cores} |"
    )


def wrk_duration(result):
    return result.get("duration_s") or (result["requests"] / result["rps"] if result.get("rps") else 0)


def limit(g, cores):
    times = [g["hash_time_before"]["median_s"], g["hash_time_after"]["median_s"]]
    hash_s = statistics.mean(times)
    return hash_s, cores / hash_s


def verdict(passed):
    return "**pass**" if passed else "**miss**"


def combine(runs):
    """One row from the interleaved rounds of a case: mean throughput, median latencies."""
    merged = dict(runs[0])
    merged["ok_rps"] = statistics.mean(ok(r) for r in runs)
    merged["latency"] = {
        k: statistics.median(r["latency"][k] for r in runs) for k in ("p50_ms", "p90_ms", "p99_ms")
    }
    for key in ("server_cpu_cores", "server_peak_rss_mib"):
        merged[key] = statistics.mean(r[key] for r in runs)
    merged["duration_s"] = sum(wrk_duration(r) for r in runs)
    merged["loadgen_cpu_s"] = sum(r["loadgen_cpu_s"] for r in runs)
    return merged


def ratio_of_rounds(rounds, case, baseline="healthz"):
    ratios = [ok(c) / ok(b) for c, b in zip(rounds[case], rounds[baseline])]
    return statistics.median(ratios), ratios


def backend_section(name, b, cores):
    g, e, d = b["gatehouse_rs256"], b["gatehouse_eddsa"], b["django"]
    for group in (g, e):
        for case, runs in group["rounds"].items():
            group[case] = combine(runs)
    d["verify"]["duration_s"] = wrk_duration(d["verify"])
    rounds = len(g["rounds"]["healthz"])
    lines = [f"### {name}", ""]
    lines += [
        "| server | operation | throughput (2xx/s) | p50 ms | p99 ms | server CPU (cores) | server peak RSS MiB "
        "| load generator CPU (cores) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in [
        ("healthz", "`GET /healthz` (baseline)"),
        ("webhook_get", "webhook GET, valid token"),
        ("webhook_post", "webhook POST, valid token"),
        ("webhook_anonymous", "webhook, anonymous"),
        ("jwks", "JWKS"),
        ("login", "login (PBKDF2 1.5M)"),
        ("refresh", "refresh (rotating)"),
        ("signup", "sign-up (PBKDF2 1.5M + validators)"),
    ]:
        lines.append(row("gatehouse RS256", label, g[key]))
    for key, label in [
        ("healthz", "`GET /healthz`"),
        ("webhook_get", "webhook GET, valid token"),
        ("login", "login"),
        ("refresh", "refresh"),
    ]:
        lines.append(row("gatehouse EdDSA", label, e[key]))
    for key, label in [
        ("login", "login (`/api/token/`)"),
        ("refresh", "refresh (rotate + blacklist)"),
        ("verify", "token verification (DRF view)"),
    ]:
        lines.append(row("Django + simplejwt RS256", label, d[key]))
    lines += [
        "",
        f"Fixed-request rows: wrk, 16 connections, {rounds} interleaved rounds (healthz, webhook GET, webhook POST, "
        "anonymous, JWKS, again and again); throughput is the mean, latencies the median over the rounds.",
        "",
    ]

    hash_s, hash_limit = limit(g, cores)
    capacity = statistics.mean([g["hash_time_before"]["parallel_per_s"], g["hash_time_after"]["parallel_per_s"]])
    get_ratio, get_ratios = ratio_of_rounds(g["rounds"], "webhook_get")
    post_ratio, post_ratios = ratio_of_rounds(g["rounds"], "webhook_post")
    eddsa_ratio, _ = ratio_of_rounds(e["rounds"], "webhook_get")
    shown = lambda ratios: ", ".join(f"{r:.2f}" for r in ratios)  # noqa: E731
    storm, storm_argon = g["storm"], g["storm_argon2"]
    storm_ratio = storm["webhook"]["latency"]["p99_ms"] / storm["webhook_idle"]["latency"]["p99_ms"]
    refused = {k: v for k, v in storm["logins"]["by_status"].items() if k in ("503", "429")}
    refused_p99 = max((v["p99_ms"] for v in refused.values()), default=0.0)
    timeouts = storm["logins"]["by_status"].get("0", {}).get("count", 0)
    checks = [
        (f"webhook GET ÷ `/healthz` throughput (median of rounds: {shown(get_ratios)})", get_ratio, "≥ 0.70",
         get_ratio >= TARGETS["webhook_vs_healthz"]),
        (f"webhook POST ÷ `/healthz` throughput (rounds: {shown(post_ratios)})", post_ratio, "≥ 0.70",
         post_ratio >= TARGETS["webhook_vs_healthz"]),
        ("EdDSA: webhook GET ÷ `/healthz`", eddsa_ratio, "≥ 0.70", eddsa_ratio >= TARGETS["webhook_vs_healthz"]),
        ("`/healthz` p99 at its own load (ms), for scale", g["healthz"]["latency"]["p99_ms"], "", None),
        ("webhook GET p99 at that load (ms)", g["webhook_get"]["latency"]["p99_ms"], "< 5",
         g["webhook_get"]["latency"]["p99_ms"] < TARGETS["webhook_p99_ms"]),
        ("webhook POST p99 at that load (ms)", g["webhook_post"]["latency"]["p99_ms"], "< 5",
         g["webhook_post"]["latency"]["p99_ms"] < TARGETS["webhook_p99_ms"]),
        (f"login ÷ hashing limit ({cores} cores ÷ {hash_s * 1000:.0f} ms = {hash_limit:.2f}/s)",
         ok(g["login"]) / hash_limit, "≥ 0.90", ok(g["login"]) / hash_limit >= TARGETS["login_vs_limit"]),
        ("EdDSA login ÷ hashing limit", ok(e["login"]) / hash_limit, "≥ 0.90",
         ok(e["login"]) / hash_limit >= TARGETS["login_vs_limit"]),
        (f"login ÷ hashing capacity measured alongside ({cores} threads hashing at once: {capacity:.2f}/s)",
         ok(g["login"]) / capacity, "(reported)", None),
        ("server CPU-seconds per login (one hash ≈ its single-thread time on an idle core)",
         g["login"]["server_cpu_cores"] / ok(g["login"]), "(reported)", None),
        ("storm: webhook p99 ÷ idle p99 (paced 200/s)", storm_ratio, "≤ 3", storm_ratio <= TARGETS["storm_p99_ratio"]),
        ("storm: p99 of the 503/429 answers (ms)", refused_p99, "quick (< 100)", bool(refused) and refused_p99 < 100),
        ("storm: logins timed out", timeouts, "0", timeouts == 0),
        ("login ÷ Django + simplejwt (RS256)", ok(g["login"]) / ok(d["login"]), "≥ 2",
         ok(g["login"]) / ok(d["login"]) >= TARGETS["login_vs_django"]),
        ("refresh ÷ Django + simplejwt (RS256)", ok(g["refresh"]) / ok(d["refresh"]), "≥ 3",
         ok(g["refresh"]) / ok(d["refresh"]) >= TARGETS["refresh_vs_django"]),
        ("EdDSA login ÷ Django (RS256)", ok(e["login"]) / ok(d["login"]), "(reported)", None),
        ("EdDSA refresh ÷ Django (RS256)", ok(e["refresh"]) / ok(d["refresh"]), "(reported)", None),
        ("webhook GET ÷ Django token verification", ok(g["webhook_get"]) / ok(d["verify"]), "(reported)", None),
        ("idle RSS (MiB)", g["idle_rss_mib_start"], "< 30", g["idle_rss_mib_start"] < TARGETS["idle_rss_mib"]),
        ("peak RSS, login storm over Argon2 users (MiB)", storm_argon["server_peak_rss_mib"], "bounded (reported)", None),
        ("peak RSS, login storm over PBKDF2 users (MiB)", storm["server_peak_rss_mib"], "(reported)", None),
    ]  # fmt: skip
    lines += ["| target | measured | goal | |", "|---|---:|---|---|"]
    for label, value, goal, passed in checks:
        shown = f"{value:,.2f}" if isinstance(value, float) else f"{value}"
        lines.append(f"| {label} | {shown} | {goal} | {'' if passed is None else verdict(passed)} |")
    lines.append("")
    lines += [
        f"Login storm (64 clients, 100 ms back-off after a refusal): PBKDF2 users {storm_summary(storm)}; "
        f"Argon2 users {storm_summary(storm_argon)}. Webhook paced at 200/s: idle p99 "
        f"{storm['webhook_idle']['latency']['p99_ms']:.2f} ms, during the storm "
        f"{storm['webhook']['latency']['p99_ms']:.2f} ms (Argon2 storm: "
        f"{storm_argon['webhook']['latency']['p99_ms']:.2f} ms vs "
        f"{storm_argon['webhook_idle']['latency']['p99_ms']:.2f} ms idle).",
        "",
        f"Django's idle RSS (gunicorn master + {cores} workers): {d['idle_rss_mib_start']:.1f} MiB; one "
        f"PBKDF2-SHA256 at 1.5M in Python's hashlib (OpenSSL): {d['python_hash_time']['median_s'] * 1000:.0f} ms, "
        f"in gatehouse's hasher: {hash_s * 1000:.0f} ms.",
        "",
    ]
    return lines


def storm_summary(storm):
    parts = []
    for status, v in storm["logins"]["by_status"].items():
        label = "timeout" if status == "0" else status
        parts.append(f"{v['count']}× {label} (p50 {v['p50_ms']:.0f} ms, p99 {v['p99_ms']:.0f} ms)")
    return ", ".join(parts) + f", server peak RSS {storm['server_peak_rss_mib']:.0f} MiB"


def plots(results, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = list(results["backends"])
    fig, axes = plt.subplots(1, len(backends), figsize=(6 * len(backends), 4), squeeze=False)
    for ax, backend in zip(axes[0], backends):
        b = results["backends"][backend]
        ops = [("login", "login", "login"), ("refresh", "refresh", "refresh"), ("webhook_get", "webhook_get", "verify")]
        labels = ["login", "refresh", "token check"]
        width = 0.27
        for i, (server, key_of) in enumerate(
            [("gatehouse RS256", lambda o: b["gatehouse_rs256"][o[0]]),
             ("gatehouse EdDSA", lambda o: b["gatehouse_eddsa"][o[1]]),
             ("Django + simplejwt RS256", lambda o: b["django"][o[2]])]
        ):  # fmt: skip
            values = [ok(key_of(o)) for o in ops]
            ax.bar([x + (i - 1) * width for x in range(len(ops))], values, width, label=server)
        ax.set_yscale("log")
        ax.set_xticks(range(len(ops)), labels)
        ax.set_ylabel("requests/s (log)")
        ax.set_title(f"{backend}: gatehouse vs Django + simplejwt")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "throughput.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(backends), figsize=(6 * len(backends), 4), squeeze=False)
    for ax, backend in zip(axes[0], backends):
        g = results["backends"][backend]["gatehouse_rs256"]
        keys = ["healthz", "webhook_get", "webhook_post", "webhook_anonymous", "jwks"]
        labels = ["healthz", "hook GET", "hook POST", "anonymous", "JWKS"]
        ax.bar([x - 0.2 for x in range(len(keys))], [ok(g[k]) for k in keys], 0.4, label="requests/s")
        ax2 = ax.twinx()
        ax2.plot(range(len(keys)), [g[k]["latency"]["p99_ms"] for k in keys], "o-", color="C3", label="p99 ms")
        ax.set_xticks(range(len(keys)), labels)
        ax.set_ylabel("requests/s")
        ax2.set_ylabel("p99 ms")
        ax.set_title(f"{backend}: gatehouse RS256, 32 connections (wrk)")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "webhook.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(backends), figsize=(6 * len(backends), 4), squeeze=False)
    for ax, backend in zip(axes[0], backends):
        g = results["backends"][backend]["gatehouse_rs256"]
        groups = [("idle", g["storm"]["webhook_idle"]), ("PBKDF2 storm", g["storm"]["webhook"]),
                  ("Argon2 storm", g["storm_argon2"]["webhook"])]  # fmt: skip
        ax.bar([x - 0.2 for x in range(3)], [r["latency"]["p50_ms"] for _, r in groups], 0.4, label="p50")
        ax.bar([x + 0.2 for x in range(3)], [r["latency"]["p99_ms"] for _, r in groups], 0.4, label="p99")
        ax.set_xticks(range(3), [n for n, _ in groups])
        ax.set_ylabel("webhook latency, ms (paced 200/s)")
        ax.set_title(f"{backend}: webhook during a login storm")
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "storm.png"), dpi=110)
    plt.close(fig)


def main():
    results_path, out_dir = sys.argv[1], sys.argv[2]
    with open(results_path) as f:
        results = json.load(f)
    cores = results["cores"]
    v = results["versions"]
    lines = [
        f"Run {results['started']} → {results['finished']}{' (--quick)' if results['quick'] else ''}: "
        f"{results['cpu']}, {cores} cores; load average at start `{results['loadavg_start']}`, at end "
        f"`{results['loadavg_end']}`.",
        "",
        f"Django {v['django']} (PBKDF2 {v['django_pbkdf2_iterations']} iterations), djangorestframework "
        f"{v['djangorestframework']}, djangorestframework-simplejwt {v['simplejwt']}, PyJWT {v['pyjwt']}, "
        f"gunicorn {v['gunicorn']} (sync workers × {cores}), Python {v['python']}; {v['wrk']}.",
        "",
    ]
    for backend, b in results["backends"].items():
        lines += backend_section({"sqlite": "SQLite", "postgres": "PostgreSQL"}.get(backend, backend), b, cores)
    busy = [s for s in results.get("load_samples", []) if s.get("top")]
    if busy:
        loads = [float(s["loadavg"].split()[0]) for s in busy]
        lines += [
            f"Load average (1 min) sampled every 15 s during the run: min {min(loads):.2f}, median "
            f"{statistics.median(loads):.2f}, max {max(loads):.2f}.",
            "",
        ]
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(lines))
    plots(results, out_dir)


if __name__ == "__main__":
    main()
