#!/usr/bin/env bash
# Paired logins/s of several segl binaries, or of one binary over several database URLs,
# interleaved run by run so that the machine's drift hits each alike, with the Argon2id
# limit measured before each run. Prints one JSON line per run: logins/s, the limit, the
# median login time and the mean time of each step, and the CPU per login of segl's hashing
# threads, its other threads and the PostgreSQL server.
#
#   BINS="/tmp/segl-old target/release/segl" bench/ab.sh            # two builds, PostgreSQL
#   BINS="target/release/segl target/release/segl" \
#     PG_URLS="postgres://postgres@127.0.0.1:5432/%s postgres://postgres@localhost/%s?host=/var/run/postgresql" \
#     bench/ab.sh                                                   # TCP (TLS) against the socket
#   BACKEND=sqlite bench/ab.sh                                      # SQLite instead
#
# PG_URLS holds one URL per binary, %s standing for the database made for it (default: the
# admin URL's server over TCP). Needs target/release/loadgen (cargo build --release -p
# segl-loadgen) and, for PostgreSQL, a server that PG_ADMIN_URL reaches.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LG=$ROOT/target/release/loadgen
read -r -a BINS <<<"${BINS:-$ROOT/target/release/segl}"
read -r -a URLS <<<"${PG_URLS:-}"
RUNS=${RUNS:-3}
BACKEND=${BACKEND:-postgres}
SECS=${SECS:-15}
CONC=${CONC:-16}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
WORK=$(mktemp -d /tmp/segl-ab.XXXXXX)
TICK=$(getconf CLK_TCK)
REDIRECT=http://127.0.0.1:9/cb
PIDS=() DBS=()
cleanup() {
    local p d
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    for d in "${DBS[@]+"${DBS[@]}"}"; do psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
pg_cpu() {
    local p
    for p in $(pgrep -x postgres); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done |
        awk -v t="$TICK" '{ s += $1 } END { printf "%f\n", s / t }'
}
segl_cpu() {
    local t
    for t in /proc/"$1"/task/*; do awk '{print $2, $14 + $15}' "$t/stat" 2>/dev/null; done |
        awk -v t="$TICK" '{ if ($1 ~ /segl-hash/) h += $2; else o += $2 } END { printf "%f %f\n", h / t, o / t }'
}
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%f", a - b }'; }

declare -a PID BASE CID CSEC
for k in "${!BINS[@]}"; do
    bin=${BINS[$k]} dir=$WORK/node$k url=""
    mkdir -p "$dir"
    if [[ $BACKEND == postgres ]]; then
        db=segl_ab_$$_$k
        psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$db\"" >/dev/null
        DBS+=("$db")
        # shellcheck disable=SC2059
        url=$(printf "${URLS[$k]:-${PG_ADMIN_URL%/*}/%s}" "$db")
    fi
    args=(--segl "$bin" --data-dir "$dir" --people 32 --out "$dir/people.json" --redirect-uri "$REDIRECT")
    [[ -n $url ]] && args+=(--database-url "$url")
    client=$("$LG" setup "${args[@]}")
    CID[k]=$(jq -r .client_id <<<"$client")
    CSEC[k]=$(jq -r .client_secret <<<"$client")
    serve=(--data-dir "$dir")
    [[ -n $url ]] && serve+=(--database-url "$url")
    "$bin" "${serve[@]}" serve --listen 127.0.0.1:0 >"$dir/serve.log" 2>&1 &
    PID[k]=$!
    PIDS+=("${PID[k]}")
    BASE[k]=""
    for _ in $(seq 1 300); do
        BASE[k]=$(grep -o -m1 'segl listening on http://[0-9.:]*' "$dir/serve.log" | sed 's/segl listening on //' || true)
        [[ -n ${BASE[k]} ]] && break
        sleep 0.1
    done
    [[ -n ${BASE[k]} ]] || { cat "$dir/serve.log" >&2; exit 1; }
done
sleep 2
for run in $(seq 1 "$RUNS"); do
    for k in "${!BINS[@]}"; do
        limit=$("$LG" argon2 --threads 2 --seconds 8 | jq -r .rate)
        read -r h0 o0 <<<"$(segl_cpu "${PID[k]}")"
        d0=$([[ $BACKEND == postgres ]] && pg_cpu || echo 0)
        line=$("$LG" logins --base "${BASE[k]}" --people "$WORK/node$k/people.json" \
            --client-id="${CID[k]}" --client-secret="${CSEC[k]}" --redirect-uri "$REDIRECT" \
            --concurrency "$CONC" --seconds "$SECS" --server-pid "${PID[k]}")
        read -r h1 o1 <<<"$(segl_cpu "${PID[k]}")"
        d1=$([[ $BACKEND == postgres ]] && pg_cpu || echo 0)
        jq -c --arg bin "${BINS[$k]}" --arg url "${URLS[$k]:-}" --argjson run "$run" --argjson limit "$limit" \
            --argjson h "$(minus "$h1" "$h0")" --argjson o "$(minus "$o1" "$o0")" --argjson d "$(minus "$d1" "$d0")" \
            '{run: $run, bin: $bin, url: $url, logins_per_sec: .rate, argon2_per_sec: $limit,
              ratio: (.rate / $limit * 100 | round), errors, p50_ms, stage_mean_ms,
              hash_cpu_ms: (1000 * $h / .count), other_cpu_ms: (1000 * $o / .count),
              db_cpu_ms: (if $d > 0 then 1000 * $d / .count else 0 end)}' <<<"$line"
    done
done
