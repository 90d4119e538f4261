#!/usr/bin/env python3
"""Turns bench/run.sh's results.jsonl into the markdown tables of docs/benchmarks.md.

    python3 bench/summarize.py results.jsonl [machine.txt]

Medians over the runs; ratios are median / median of the limit or peer measured in the
same run of run.sh.
"""
import json
import statistics
import sys
from collections import defaultdict

LOGIN_GOAL = 0.85          # logins/s >= 85 % of Argon2id hashes/s
REFRESH_GOAL = 5000.0      # refresh grants/s on SQLite
IDLE_GOAL_BYTES = 40e6     # idle resident memory under 40 MB
PUSH_P99_GOAL_MS = 50.0    # push latency to the app, p99
APP_LOGIN_GOAL = 1000.0    # logins with the app per second (SQLite, 2 cores)
CONN_GOAL_BYTES = 500e6    # 50,000 idle app connections under 500 MB resident
OCSP_GOAL = 20000.0        # OCSP responses per second on 2 cores


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def series(rows, bench, backend):
    return [r for r in rows if r.get("bench") == bench and r.get("backend") == backend]


def med(rs, key="rate"):
    return statistics.median(r[key] for r in rs) if rs else None


def fmt_runs(rs):
    return ", ".join(f"{r['rate']:.1f}" for r in rs)


def cpu(rs):
    v = [r["server_cpu_ms_per_op"] for r in rs if "server_cpu_ms_per_op" in r]
    return f"{statistics.median(v):.2f}" if v else "-"


def busy(rs):
    v = [r["machine_busy_cores"] for r in rs if "machine_busy_cores" in r]
    return f"{statistics.median(v):.2f}" if v else "-"


def yes(ok):
    return "met" if ok else "**missed**"


def main():
    rows = load(sys.argv[1])
    if len(sys.argv) > 2:
        print("```")
        with open(sys.argv[2]) as f:
            print(f.read().rstrip())
        print("```\n")
    backends = [b for b in ("sqlite", "postgres") if series(rows, "logins", b) or series(rows, "refresh", b)]
    if backends:
        core(rows, backends)
    if any(r.get("backend") == "app" for r in rows):
        app(rows)
    if any(r.get("bench") in ("ocsp", "crl", "cms") for r in rows):
        pki(rows)


def core(rows, backends):
    print("### Full logins per second vs. the Argon2id limit\n")
    print("| backend | logins/s (runs) | median logins/s | p50 / p99 ms per login | segl CPU ms/login | machine busy cores | errors | "
          "Argon2id hashes/s, 2 threads (runs) | median hashes/s | ratio | goal >= 85 % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for b in backends:
        lg, ar = series(rows, "logins", b), series(rows, "argon2", b)
        if not lg:
            continue
        ml, ma = med(lg), med(ar)
        ratio = ml / ma if ma else float("nan")
        errs = sum(r["errors"] for r in lg)
        print(f"| {b} | {fmt_runs(lg)} | **{ml:.1f}** | {med(lg, 'p50_ms'):.1f} / {med(lg, 'p99_ms'):.1f} "
              f"| {cpu(lg)} | {busy(lg)} | {errs} "
              f"| {fmt_runs(ar)} | {ma:.1f} | **{ratio:.0%}** | {yes(ratio >= LOGIN_GOAL)} |")
    print()
    for b in backends:
        lg = series(rows, "logins", b)
        stages = defaultdict(list)
        for r in lg:
            for k, v in r.get("stage_mean_ms", {}).items():
                stages[k].append(v)
        if stages:
            parts = ", ".join(f"{k[2:]} {statistics.median(v):.1f}" for k, v in sorted(stages.items()))
            print(f"Mean time per step ({b}, ms, median over runs): {parts}.  ")
        split = {k: [r[k] for r in lg if k in r] for k in
                 ("hash_cpu_ms_per_op", "other_cpu_ms_per_op", "db_cpu_ms_per_op", "client_cpu_s")}
        if split["hash_cpu_ms_per_op"]:
            ar = series(rows, "argon2", b)
            one_hash = 2000.0 / med(ar) if ar else float("nan")  # ms of CPU per hash at the limit
            h = statistics.median(split["hash_cpu_ms_per_op"])
            o = statistics.median(split["other_cpu_ms_per_op"])
            d = statistics.median(split["db_cpu_ms_per_op"]) if split["db_cpu_ms_per_op"] else 0.0
            c = statistics.median(1000 * r["client_cpu_s"] / r["count"] for r in lg if r.get("count"))
            print(f"CPU per login ({b}, ms, median over runs): segl's hashing threads {h:.2f} "
                  f"(one hash at the limit: {one_hash:.2f}), segl's other threads {o:.2f}, "
                  f"database server {d:.2f}, load generator {c:.2f}.  ")
        kinds = defaultdict(int)
        for r in lg:
            for k, v in r.get("error_kinds", {}).items():
                kinds[k] += v
        if kinds:
            print(f"Login errors ({b}): " + "; ".join(f"`{k}` x{v}" for k, v in kinds.items()) + ".  ")
    print()

    print("### Refresh-token grants per second (rotation on every grant)\n")
    print("| server | storage | concurrent chains | grants/s (runs) | median grants/s | p50 / p99 ms | server CPU ms/grant | machine busy cores | errors | "
          "ratio to oidc-provider | ratio to fsync limit | goal |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    fs = series(rows, "fsync", "sqlite")
    mf = med(fs)
    levels = sorted({r.get("concurrency") for r in rows if r.get("bench") == "refresh"}, key=lambda c: c or 0)
    for conc in levels:
        at = [r for r in rows if r.get("concurrency") == conc]
        peer = series(at, "refresh", "oidc-provider")
        mp = med(peer)
        for b in backends:
            rf = series(at, "refresh", b)
            if not rf:
                continue
            m = med(rf)
            errs = sum(r["errors"] for r in rf)
            storage = "SQLite file, WAL, synchronous=FULL" if b == "sqlite" else "PostgreSQL 15 on 127.0.0.1"
            vs_peer = f"{m / mp:.2f}x" if mp else "-"
            vs_fs = f"{m / mf:.0%}" if (mf and b == "sqlite") else "-"
            if b == "sqlite":
                goal = f">= 5,000/s: {yes(m >= REFRESH_GOAL)}; >= peer: {yes(mp is not None and m >= mp)}"
            else:
                goal = "(no goal)"
            print(f"| segl | {storage} | {conc} | {fmt_runs(rf)} | **{m:.0f}** | {med(rf, 'p50_ms'):.2f} / {med(rf, 'p99_ms'):.2f} "
                  f"| {cpu(rf)} | {busy(rf)} | {errs} | {vs_peer} | {vs_fs} | {goal} |")
        if peer:
            errs = sum(r["errors"] for r in peer)
            print(f"| oidc-provider 9 | default in-memory adapter (nothing durable) | {conc} | {fmt_runs(peer)} | **{mp:.0f}** "
                  f"| {med(peer, 'p50_ms'):.2f} / {med(peer, 'p99_ms'):.2f} | {cpu(peer)} | {busy(peer)} | {errs} | 1.00x | - | peer |")
    if fs:
        print(f"| (limit) 4 KiB append + fdatasync, one writer, same disk | - | 1 | {fmt_runs(fs)} | **{mf:.0f}** "
              f"| {med(fs, 'p50_ms'):.2f} / {med(fs, 'p99_ms'):.2f} | - | - | - | - | 100% | physical limit |")
    print()

    print("### Resident memory of `segl serve`\n")
    print("| server | idle VmRSS, fresh starts (runs) | median idle VmRSS | VmRSS after all load | peak VmHWM | goal idle < 40 MB |")
    print("|---|---|---|---|---|---|")
    for b in backends + ["oidc-provider"]:
        idle = series(rows, "memory_idle", b)
        after = series(rows, "memory_after_load", b)
        if not (idle or after):
            continue
        mb = lambda kb: f"{kb / 1024:.1f} MiB"  # noqa: E731
        runs = ", ".join(f"{r['rss_kb'] / 1024:.1f}" for r in idle) if idle else "-"
        mi = med(idle, "rss_kb") if idle else None
        i = mb(mi) if idle else "-"
        goal = yes(mi * 1024 < IDLE_GOAL_BYTES) if idle else "-"
        name = f"segl ({b})" if b != "oidc-provider" else "oidc-provider (node)"
        if b == "oidc-provider":
            goal = "peer"
        a = mb(after[-1]["rss_kb"]) if after else "-"
        h = mb(max(r["hwm_kb"] for r in after)) if after else "-"
        print(f"| {name} | {runs} | {i} | {a} | {h} | {goal} |")



def pick(rs, key):
    return [r[key] for r in rs if r.get(key) is not None]


def mdn(v, fmt="{:.1f}"):
    return fmt.format(statistics.median(v)) if v else "-"


def app(rows):
    lg = series(rows, "app_logins", "app")
    setup = series(rows, "app_setup", "app")
    if setup:
        s = setup[0]
        print(f"Setup: {s['apps']} persons with an app each in {s['setup_seconds']} s "
              f"({s['cli_seconds']} s of it in segl's CLI).\n")

    print("### Push latency to the app (method step's request sent → the app has read the event)\n")
    print("| logins started per second | apps connected | logins/s done (runs) | push p50 ms (runs) | push p99 ms (runs) "
          "| median push p50 / p90 / p99 / max ms | login p50 / p99 ms | segl CPU ms/login | machine busy cores | errors | goal p99 < 50 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rates = sorted({r["target_rate"] for r in lg if r.get("mode") == "rate"})
    closed = [r for r in lg if r.get("mode") == "closed"]
    for rate in rates:
        rs = [r for r in lg if r.get("target_rate") == rate]
        p99 = statistics.median(pick(rs, "push_p99_ms"))
        errs = sum(r["errors"] for r in rs)
        print(f"| {rate:g} | {rs[0]['apps_connected']} | {fmt_runs(rs)} "
              f"| {', '.join(f'{x:.1f}' for x in pick(rs, 'push_p50_ms'))} "
              f"| {', '.join(f'{x:.1f}' for x in pick(rs, 'push_p99_ms'))} "
              f"| {mdn(pick(rs, 'push_p50_ms'))} / {mdn(pick(rs, 'push_p90_ms'))} / **{p99:.1f}** / {mdn(pick(rs, 'push_max_ms'))} "
              f"| {mdn(pick(rs, 'p50_ms'))} / {mdn(pick(rs, 'p99_ms'))} | {cpu(rs)} | {busy(rs)} | {errs} "
              f"| {yes(p99 < PUSH_P99_GOAL_MS)} |")
    if closed:
        rs = closed
        p99 = statistics.median(pick(rs, "push_p99_ms"))
        print(f"| (as many as possible, {rs[0]['concurrency']} in flight) | {rs[0]['apps_connected']} | {fmt_runs(rs)} "
              f"| {', '.join(f'{x:.1f}' for x in pick(rs, 'push_p50_ms'))} "
              f"| {', '.join(f'{x:.1f}' for x in pick(rs, 'push_p99_ms'))} "
              f"| {mdn(pick(rs, 'push_p50_ms'))} / {mdn(pick(rs, 'push_p90_ms'))} / **{p99:.1f}** / {mdn(pick(rs, 'push_max_ms'))} "
              f"| {mdn(pick(rs, 'p50_ms'))} / {mdn(pick(rs, 'p99_ms'))} | {cpu(rs)} | {busy(rs)} | {sum(r['errors'] for r in rs)} "
              f"| (saturated) |")
    print()

    if closed:
        ec, fs = series(rows, "ecdsa", "app"), series(rows, "fsync", "app")
        m = med(closed)
        print("### Logins with the app per second (SQLite), vs. the ECDSA and fsync limits\n")
        print("| logins/s (runs) | median logins/s | p50 / p99 ms per login | segl CPU ms/login | load generator CPU ms/login "
              "| machine busy cores | errors | 2 cores / segl CPU per login | goal >= 1,000/s |")
        print("|---|---|---|---|---|---|---|---|---|")
        cpu_ms = statistics.median(pick(closed, "server_cpu_ms_per_op")) if pick(closed, "server_cpu_ms_per_op") else None
        client = [1000 * r["client_cpu_s"] / r["count"] for r in closed if r.get("count") and "client_cpu_s" in r]
        ceiling = f"{2000 / cpu_ms:.0f}/s" if cpu_ms else "-"
        print(f"| {fmt_runs(closed)} | **{m:.1f}** | {med(closed, 'p50_ms'):.1f} / {med(closed, 'p99_ms'):.1f} "
              f"| {cpu(closed)} | {mdn(client, '{:.2f}')} | {busy(closed)} | {sum(r['errors'] for r in closed)} "
              f"| {ceiling} | {yes(m >= APP_LOGIN_GOAL)} |")
        print()
        print("| limit, measured in the same runs | runs | median | per app login | app logins/s at the limit | ratio |")
        print("|---|---|---|---|---|---|")
        if ec:
            me = med(ec)
            print(f"| ECDSA P-256 verifications/s, segl's check, 2 threads | {fmt_runs(ec)} | {me:.0f} | 2 | {me / 2:.0f} "
                  f"| **{m / (me / 2):.1%}** |")
        if fs:
            mf = med(fs)
            print(f"| 4 KiB append + fdatasync/s, one writer, same disk | {fmt_runs(fs)} | {mf:.0f} | 1 (the answer's commit) "
                  f"| {mf:.0f} | **{m / mf:.0%}** |")
        print()
        stages = defaultdict(list)
        for r in closed:
            for k, v in r.get("stage_mean_ms", {}).items():
                stages[k].append(v)
        if stages:
            parts = ", ".join(f"{k[2:]} {statistics.median(v):.1f}" for k, v in sorted(stages.items()))
            print(f"Mean time per step (ms, median over runs, {closed[0]['concurrency']} in flight): {parts}. "
                  f"(push counts from before the method step's request.)  ")
        kinds = defaultdict(int)
        for r in lg:
            for k, v in r.get("error_kinds", {}).items():
                kinds[k] += v
        if kinds:
            print("Errors: " + "; ".join(f"`{k}` x{v}" for k, v in kinds.items()) + ".  ")
        print()

    idle = series(rows, "app_idle", "app")
    if idle:
        print("### Idle app connections held by one node, and segl's memory per connection\n")
        steps = sorted({p["conns"] for r in idle for p in r["points"]})
        print("| connections | " + " | ".join(f"{c:,}" for c in steps) + " |")
        print("|---|" + "---|" * len(steps))
        cells = []
        for c in steps:
            v = [p["rss_kb"] for r in idle for p in r["points"] if p["conns"] == c]
            cells.append(f"{statistics.median(v) / 1024:.1f}" if v else "-")
        print("| median VmRSS, MiB | " + " | ".join(cells) + " |")
        cells = []
        for c in steps:
            v = [p["opened_per_s"] for r in idle for p in r["points"] if p["conns"] == c and p.get("opened_per_s")]
            cells.append(f"{statistics.median(v):.0f}" if v else "-")
        print("| streams opened per second (that step) | " + " | ".join(cells) + " |")
        print()
        slopes = pick(idle, "slope_bytes_per_conn")
        ext = pick(idle, "extrapolated_50k_mb")
        cpu10k = [r["idle_cpu"]["server_cores_per_10k"] for r in idle if r.get("idle_cpu")]
        print("| runs | most connections held | slope, bytes per connection (runs) | median slope | VmRSS at 50,000, extrapolated "
              "| segl CPU when idle, cores per 10,000 | fd limit (segl / loadgen) | errors | goal 50,000 < 500 MB |")
        print("|---|---|---|---|---|---|---|---|---|")
        me = statistics.median(ext) if ext else float("nan")
        print(f"| {len(idle)} | {min(r['max_conns'] for r in idle):,} | {', '.join(f'{x:,.0f}' for x in slopes)} "
              f"| **{statistics.median(slopes):,.0f}** | **{me:,.0f} MB** | {mdn(cpu10k, '{:.3f}')} "
              f"| {idle[0]['fd_limit_server']} / {idle[0]['fd_limit_loadgen']} | {sum(r['errors'] for r in idle)} "
              f"| {yes(me * 1e6 < CONN_GOAL_BYTES)} |")
        print()


def pki(rows):
    setup = series(rows, "pki_setup", "pki")
    if setup:
        s = setup[0]
        print(f"Setup: {s['people']} persons with an active eID, {s['certificates']} valid certificates, "
              f"one nonce-less OCSP request each, in {s['setup_seconds']:.0f} s.\n")
    segl = series(rows, "ocsp", "pki")
    peer = series(rows, "ocsp", "openssl")
    if segl or peer:
        print("### OCSP responses per second (2 cores, load generator on the same machine)\n")
        print("| responder | connections | responses/s (runs) | median responses/s | p50 / p99 ms | server CPU µs/response "
              "| load generator CPU µs/response | machine busy cores | responses per connection | errors | goal >= 20,000/s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        groups = [("segl", "kept open", [r for r in segl if r.get("keep_alive")]),
                  ("segl", "one per request", [r for r in segl if not r.get("keep_alive")]),
                  ("openssl ocsp -multi", "closed by the server after each", peer)]
        for name, conns, rs in groups:
            if not rs:
                continue
            m = med(rs)
            client = [1e6 * r["client_cpu_s"] / r["count"] for r in rs if r.get("count") and "client_cpu_s" in r]
            per_conn = [r["count"] / r["connections"] for r in rs if r.get("connections")]
            print(f"| {name} | {conns} | {fmt_runs(rs)} | **{m:,.0f}** | {med(rs, 'p50_ms'):.2f} / {med(rs, 'p99_ms'):.2f} "
                  f"| {mdn(pick(rs, 'server_cpu_us_per_op'))} | {mdn(client)} | {busy(rs)} | {mdn(per_conn)} "
                  f"| {sum(r['errors'] for r in rs)} | {yes(m >= OCSP_GOAL) if conns == 'kept open' else '-'} |")
        print()
        if peer:
            ratios = []
            for r in segl:
                same = [p for p in peer if p.get("run") == r.get("run")]
                if same:
                    ratios.append((r.get("keep_alive"), r["rate"] / same[0]["rate"]))
            for ka, label in ((True, "connections kept open"), (False, "a connection per request, as with the peer")):
                v = [x for k, x in ratios if k == ka]
                if v:
                    print(f"Ratio segl / openssl, {label} (per run: {', '.join(f'{x:.2f}' for x in v)}): "
                          f"**{statistics.median(v):.2f}**.  ")
            print()
    crl = series(rows, "crl", "pki")
    if crl:
        print("### A CRL of 1,000,000 revoked entries (crates/pki/examples/crl_million)\n")
        print("| entries | seconds (runs) | median seconds | CRL size, MB | peak RSS MB (runs) | median peak RSS, MB | before building, MB |")
        print("|---|---|---|---|---|---|---|")
        print(f"| {crl[0]['entries']:,} | {', '.join(f'{x:.2f}' for x in pick(crl, 'seconds'))} | **{med(crl, 'seconds'):.2f}** "
              f"| {med(crl, 'crl_mb'):.1f} | {', '.join(f'{x:.0f}' for x in pick(crl, 'peak_rss_mb'))} "
              f"| **{med(crl, 'peak_rss_mb'):.0f}** | {med(crl, 'before_mb'):.0f} |")
        print()
    cms = series(rows, "cms", "pki")
    if cms:
        print("### CMS signatures over a digest vs. raw ECDSA P-256 (crates/pki/examples/cms_speed)\n")
        print("| raw ECDSA/s (runs) | CMS/s (runs) | CMS / raw (runs) | median ratio | goal >= 70 % |")
        print("|---|---|---|---|---|")
        ratio = med(cms, "cms_over_raw")
        print(f"| {', '.join(f'{x:.0f}' for x in pick(cms, 'raw_ecdsa_p256_per_s'))} "
              f"| {', '.join(f'{x:.0f}' for x in pick(cms, 'cms_sign_per_s'))} "
              f"| {', '.join(f'{x:.3f}' for x in pick(cms, 'cms_over_raw'))} | **{ratio:.1%}** "
              f"| {'met' if ratio >= 0.70 else 'not met'} |")
        print()


if __name__ == "__main__":
    main()
