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


if __name__ == "__main__":
    main()
