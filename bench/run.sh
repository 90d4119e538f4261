#!/usr/bin/env bash
# segl's benchmarks: full logins/s against the Argon2id limit, refresh grants/s against
# panva's oidc-provider and the disk's durable-write limit, and resident memory ("core");
# the app (issue 3): push latency to the app, logins with the app per second against the
# ECDSA and fsync limits, and idle app connections with memory per connection ("app");
# the CA (issue 4): OCSP responses per second against `openssl ocsp` as responder for the
# same certificates, and the time and memory to build a CRL of 1,000,000 entries ("pki").
#
#   bench/run.sh                # everything, RUNS=3 (about 10 + 10 minutes on 2 cores, plus any build)
#   BENCHES=app bench/run.sh    # only the app section (BENCHES=core: only the first)
#   BENCHES=pki bench/run.sh    # only the CA section (about 5 minutes with RUNS=3)
#   RUNS=5 bench/run.sh         # more runs; see the variables below for the other knobs
#
# Load only ever goes to 127.0.0.1. Each benchmark runs RUNS times, interleaved with the
# limit it is compared to, so both are measured in the same run on the same machine. The
# raw JSON lines go to $WORK/results.jsonl; the markdown tables for docs/benchmarks.md are
# printed at the end (and kept in $WORK/tables.md).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
ARGON2_SECS=${ARGON2_SECS:-10}
LOGIN_SECS=${LOGIN_SECS:-15}
REFRESH_SECS=${REFRESH_SECS:-10}
FSYNC_SECS=${FSYNC_SECS:-3}
LOGIN_CONC=${LOGIN_CONC:-16}
# Concurrent refresh-token chains; each level is measured for segl and for the peer.
REFRESH_CONCS=${REFRESH_CONCS:-"16 64"}
PEOPLE=${PEOPLE:-32}
IDLE_STARTS=${IDLE_STARTS:-5}
BACKENDS=${BACKENDS:-"sqlite postgres"}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
# How segl reaches the PostgreSQL on this machine: "socket" (its Unix socket in PG_SOCKET_DIR,
# how a database on the same host is reached; the default when the socket is there) or
# "tcp" (the admin URL's host and port, with TLS when the server offers it: sqlx's
# sslmode=prefer).
PG_SOCKET_DIR=${PG_SOCKET_DIR:-/var/run/postgresql}
if [[ -S $PG_SOCKET_DIR/.s.PGSQL.5432 ]]; then PG_TRANSPORT=${PG_TRANSPORT:-socket}; else PG_TRANSPORT=${PG_TRANSPORT:-tcp}; fi
REDIRECT_URI=http://127.0.0.1:9/cb
BENCHES=${BENCHES:-"core app pki"}
# The app section (SQLite): persons with an activated app each; the push latency at steady
# login rates with APP_LAT_APPS apps connected; the most logins with the app per second with
# APP_LOGIN_CONC in flight and every app connected; idle event streams opened in steps
# (APP_CONN_STEPS; "max" is as many as the file-descriptor limit allows).
APP_PEOPLE=${APP_PEOPLE:-1000}
APP_LAT_APPS=${APP_LAT_APPS:-200}
APP_LAT_RATES=${APP_LAT_RATES:-"50 200"}
APP_LAT_SECS=${APP_LAT_SECS:-15}
APP_LOGIN_CONC=${APP_LOGIN_CONC:-32}
APP_LOGIN_SECS=${APP_LOGIN_SECS:-15}
ECDSA_SECS=${ECDSA_SECS:-5}
APP_CONN_STEPS=${APP_CONN_STEPS:-0,1000,5000,10000,15000,max}
APP_IDLE_CPU_SECS=${APP_IDLE_CPU_SECS:-30}
# Source addresses 127.0.0.1 … 127.0.0.N for the idle streams (about 28,000 ephemeral ports
# each); only needed beyond that many connections.
APP_SOURCE_IPS=${APP_SOURCE_IPS:-1}
# Open files: one per connection in segl and in the load generator. Raised to the hard
# limit, or to APP_NOFILE if the machine allows it.
APP_NOFILE=${APP_NOFILE:-200000}
# The CA section (SQLite): PKI_PEOPLE persons with an active eID, and more certificates
# (`segl cert issue`) up to PKI_CERTS; one nonce-less DER OCSP request per certificate, sent
# round-robin by PKI_CONC workers for PKI_SECS, to segl and to `openssl ocsp` (the peer,
# PKI_PEER_PROCS forked responder processes); then CRL_ENTRIES revoked entries in one CRL.
PKI_PEOPLE=${PKI_PEOPLE:-100}
PKI_CERTS=${PKI_CERTS:-1000}
PKI_CONC=${PKI_CONC:-64}
PKI_SECS=${PKI_SECS:-10}
PKI_PEER_PROCS=${PKI_PEER_PROCS:-2}
CRL_ENTRIES=${CRL_ENTRIES:-1000000}

WORK=$(mktemp -d /tmp/segl-bench.XXXXXX)
OUT=$WORK/results.jsonl
SEGL=$ROOT/target/release/segl
LG=$ROOT/target/release/loadgen
PIDS=()
PG_DB=""

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
    local pid
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $PG_DB ]]; then
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"/data-* 2>/dev/null || true
}
trap cleanup EXIT

# Tags a loadgen JSON line and appends it to the results.
record() { jq -c --arg backend "$1" --argjson run "$2" '. + {backend: $backend, run: $run}' | tee -a "$OUT" >&2; }

# Waits until no compiler is running: figures taken beside a big compile mean nothing.
wait_quiet() {
    local waited=0
    while pgrep -x rustc >/dev/null || pgrep -x cc1 >/dev/null || pgrep -x cc1plus >/dev/null; do
        if ((waited == 0)); then log "a compiler is running; waiting for it to finish"; fi
        sleep 10
        waited=$((waited + 10))
        if ((waited >= 900)); then
            log "still compiling after 15 minutes; giving up"
            exit 1
        fi
    done
}

# Starts `segl serve` on 127.0.0.1:0; sets SERVER_PID and BASE.
start_segl() {
    local dir=$1 url=${2:-}
    local args=(--data-dir "$dir")
    [[ -n $url ]] && args+=(--database-url "$url")
    "$SEGL" "${args[@]}" serve --listen 127.0.0.1:0 >"$dir/serve.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    local i
    for i in $(seq 1 600); do
        BASE=$(grep -o -m1 'segl listening on http://[0-9.:]*' "$dir/serve.log" | sed 's/segl listening on //' || true)
        [[ -n $BASE ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/serve.log" >&2; log "segl serve exited"; exit 1; }
        sleep 0.1
    done
    log "segl serve did not say it was listening within 60 s"
    exit 1
}

stop_pid() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local keep=() p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# VmRSS and VmHWM of a process, kB, as a JSON object.
memory() {
    awk '/^VmRSS:/ {rss=$2} /^VmHWM:/ {hwm=$2} END {printf "{\"rss_kb\":%d,\"hwm_kb\":%d}\n", rss, hwm}' "/proc/$1/status"
}

# CPU seconds (utime + stime) of segl's password-hashing threads and of its other threads.
TICK=$(getconf CLK_TCK)
segl_cpu() {
    local t
    for t in /proc/"$1"/task/*; do awk '{print $2, $14 + $15}' "$t/stat" 2>/dev/null; done |
        awk -v tick="$TICK" '{ if ($1 ~ /segl-hash/) h += $2; else o += $2 } END { printf "%f %f\n", h / tick, o / tick }'
}
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%f", a - b }'; }
# CPU seconds of every PostgreSQL server process (backends, WAL writer, checkpointer…).
pg_cpu() {
    local p
    for p in $(pgrep -x postgres); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done |
        awk -v tick="$TICK" '{ s += $1 } END { printf "%f\n", s / tick }'
}

# ---------------------------------------------------------------------------------------
log "building release binaries"
wait_quiet
(cd "$ROOT" && cargo build --release -q -p segl -p segl-loadgen)
if [[ " $BENCHES " == *" pki "* ]]; then
    (cd "$ROOT" && cargo build --release -q -p segl-pki --example crl_million --example cms_speed)
fi
if [[ " $BENCHES " == *" core "* && ! -d $ROOT/bench/peer/node_modules/oidc-provider ]]; then
    log "installing the peer (npm ci)"
    (cd "$ROOT/bench/peer" && npm ci --no-audit --no-fund --loglevel=error)
fi
wait_quiet

{
    echo "machine nproc=$(nproc)"
    echo "machine cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "machine mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "machine kernel=$(uname -r)"
    echo "machine disk=$(df -h "$WORK" | awk 'NR==2 {print $1" ("$2")"}')"
    echo "postgres transport=$PG_TRANSPORT ($(psql "$PG_ADMIN_URL" -Atc 'show ssl' 2>/dev/null | sed 's/^/server ssl=/'))"
    echo "tools $(rustc --version) / node $(node --version 2>/dev/null) / oidc-provider $(node -p "require('$ROOT/bench/peer/node_modules/oidc-provider/package.json').version" 2>/dev/null) / $(psql --version 2>/dev/null | sed -n 1p) / $(openssl version 2>/dev/null)"
    # BENCH_COMMIT names the commit when the tree is not a git checkout (an exported copy).
    echo "segl commit ${BENCH_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' (crates/ modified)')}"
    echo "segl argon2 config: $("$SEGL" --data-dir "$WORK/data-config" --json config show 2>/dev/null | jq -c '[.[] | select(.key | startswith("argon2")) | {(.key): .value}] | add' 2>/dev/null || echo '?')"
} | tee "$WORK/machine.txt" >&2
rm -rf "$WORK/data-config"

# The peer: oidc-provider with as many fresh refresh tokens as chains; started anew for each of
# its runs, because its in-memory adapter slows down as a grant's list of rotated tokens
# grows (each save walks the list), which would penalise its later runs.
PEER_TOKENS=$WORK/peer-tokens.txt
PEER_SECRET=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
start_peer() {
    (cd "$ROOT/bench/peer" && exec node peer.mjs --tokens "$PEER_TOKENS" --count "$1" \
        --client-secret="$PEER_SECRET") >"$WORK/peer.log" 2>&1 &
    PEER_PID=$!
    PIDS+=("$PEER_PID")
    PEER_BASE=""
    for _ in $(seq 1 300); do
        PEER_BASE=$(grep -o -m1 'peer listening on http://[0-9.:]*' "$WORK/peer.log" | sed 's/peer listening on //' || true)
        [[ -n $PEER_BASE ]] && return 0
        kill -0 "$PEER_PID" 2>/dev/null || { cat "$WORK/peer.log" >&2; exit 1; }
        sleep 0.1
    done
    log "the peer did not start"
    exit 1
}

CORE_BACKENDS=$BACKENDS
[[ " $BENCHES " == *" core "* ]] || CORE_BACKENDS=""
for backend in $CORE_BACKENDS; do
    data=$WORK/data-$backend
    mkdir -p "$data"
    url=""
    if [[ $backend == postgres ]]; then
        PG_DB=segl_bench_$$_$RANDOM
        psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$PG_DB\"" >/dev/null
        url=${PG_ADMIN_URL%/*}/$PG_DB
        [[ $PG_TRANSPORT == socket ]] && url="postgres://postgres@localhost/$PG_DB?host=$PG_SOCKET_DIR"
    fi
    log "$backend: setup ($PEOPLE persons)"
    setup_args=(--segl "$SEGL" --data-dir "$data" --people "$PEOPLE" --out "$WORK/people-$backend.json"
        --redirect-uri "$REDIRECT_URI")
    [[ -n $url ]] && setup_args+=(--database-url "$url")
    client=$("$LG" setup "${setup_args[@]}")
    client_id=$(jq -r .client_id <<<"$client")
    client_secret=$(jq -r .client_secret <<<"$client")

    # Idle memory: several fresh starts, each read 2 s after `segl listening`.
    for i in $(seq 1 "$IDLE_STARTS"); do
        start_segl "$data" "$url"
        sleep 2
        memory "$SERVER_PID" | jq -c --arg b "$backend" --argjson run "$i" \
            '{bench: "memory_idle", backend: $b, run: $run} + .' | tee -a "$OUT" >&2
        stop_pid "$SERVER_PID"
    done

    start_segl "$data" "$url"
    pid=$SERVER_PID
    log "$backend: segl at $BASE (pid $pid)"
    sleep 2

    rts=$WORK/refresh-$backend.txt
    : >"$rts"
    for i in $(seq 1 "$RUNS"); do
        wait_quiet
        "$LG" argon2 --threads 2 --seconds "$ARGON2_SECS" | record "$backend" "$i"
        # Where the CPU of a login goes: segl's hashing threads, its other threads, and
        # (PostgreSQL) the database server, each per login.
        read -r h0 o0 <<<"$(segl_cpu "$pid")"
        d0=$([[ $backend == postgres ]] && pg_cpu || echo 0)
        line=$("$LG" logins --base "$BASE" --people "$WORK/people-$backend.json" --client-id="$client_id" \
            --client-secret="$client_secret" --redirect-uri "$REDIRECT_URI" \
            --concurrency "$LOGIN_CONC" --seconds "$LOGIN_SECS" --save-refresh "$rts" --server-pid "$pid")
        read -r h1 o1 <<<"$(segl_cpu "$pid")"
        d1=$([[ $backend == postgres ]] && pg_cpu || echo 0)
        jq -c --argjson h "$(minus "$h1" "$h0")" --argjson o "$(minus "$o1" "$o0")" \
            --argjson d "$(minus "$d1" "$d0")" \
            '. + {hash_cpu_ms_per_op: (1000 * $h / .count), other_cpu_ms_per_op: (1000 * $o / .count),
                  db_cpu_ms_per_op: (1000 * $d / .count)}' <<<"$line" | record "$backend" "$i"
    done

    # Each concurrency level gets its own chains (disjoint lines of the saved tokens).
    first=1
    for conc in $REFRESH_CONCS; do
        chains=$WORK/chains-$backend-$conc.txt
        sed -n "${first},$((first + conc - 1))p" "$rts" >"$chains"
        first=$((first + conc))
        for i in $(seq 1 "$RUNS"); do
            wait_quiet
            "$LG" refresh --token-url "$BASE/oauth2/token" --client-id="$client_id" \
                --client-secret="$client_secret" --tokens "$chains" \
                --concurrency "$conc" --seconds "$REFRESH_SECS" --server-pid "$pid" | record "$backend" "$i"
            if [[ $backend == sqlite ]]; then
                start_peer "$conc"
                sleep 1
                "$LG" refresh --token-url "$PEER_BASE/token" --client-id bench-peer \
                    --client-secret="$PEER_SECRET" --tokens "$PEER_TOKENS" \
                    --concurrency "$conc" --seconds "$REFRESH_SECS" --server-pid "$PEER_PID" | record oidc-provider "$i"
                memory "$PEER_PID" | jq -c --argjson run "$i" '{bench: "memory_after_load", backend: "oidc-provider", run: $run} + .' >>"$OUT"
                stop_pid "$PEER_PID"
                "$LG" fsync --dir "$data" --seconds "$FSYNC_SECS" | record "$backend" "$i"
            fi
        done
    done
    memory "$pid" | jq -c --arg b "$backend" '{bench: "memory_after_load", backend: $b} + .' | tee -a "$OUT" >&2
    echo "serve log $backend: $(wc -l <"$data/serve.log") lines, $(grep -ci 'error' "$data/serve.log" || true) mentioning error" >>"$WORK/machine.txt"
    stop_pid "$pid"
    if [[ $backend == postgres ]]; then
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null
        PG_DB=""
    fi
done

# ---------------------------------------------------------------------------------------
# The app (issue 3), on SQLite. Rows are tagged backend "app", so their fsync limit stays
# apart from the refresh section's.
if [[ " $BENCHES " == *" app "* ]]; then
    data=$WORK/data-app
    mkdir -p "$data"
    # The activations complete at once instead of after an hour's security period.
    printf '[policy.app]\nsecurity_period_secs = 1\n' >"$data/segl.toml"
    if ulimit -n "$APP_NOFILE" 2>/dev/null; then :; else ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; fi
    echo "app open files limit $(ulimit -n) (hard $(ulimit -Hn)); ephemeral ports $(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range)" >>"$WORK/machine.txt"
    start_segl "$data"
    pid=$SERVER_PID
    log "app: setup ($APP_PEOPLE persons, each with an app activated over HTTP)"
    client=$("$LG" setup-apps --segl "$SEGL" --data-dir "$data" --base "$BASE" --people "$APP_PEOPLE" \
        --out "$WORK/apps.json" --redirect-uri "$REDIRECT_URI")
    jq -c '{bench: "app_setup", backend: "app", apps, cli_seconds, setup_seconds}' <<<"$client" | tee -a "$OUT" >&2
    client_id=$(jq -r .client_id <<<"$client")
    client_secret=$(jq -r .client_secret <<<"$client")
    app_login_args=(--base "$BASE" --apps "$WORK/apps.json" --client-id="$client_id"
        --client-secret="$client_secret" --redirect-uri "$REDIRECT_URI" --server-pid "$pid")
    for i in $(seq 1 "$RUNS"); do
        wait_quiet
        "$LG" ecdsa --threads 2 --seconds "$ECDSA_SECS" | record app "$i"
        # Push latency at steady rates: the method step's request to the app's event.
        for rate in $APP_LAT_RATES; do
            "$LG" app-logins "${app_login_args[@]}" --connect "$APP_LAT_APPS" --rate "$rate" \
                --concurrency "$APP_LAT_APPS" --seconds "$APP_LAT_SECS" | record app "$i"
        done
        # The most logins with the app per second: every app connected, N in flight.
        "$LG" app-logins "${app_login_args[@]}" --concurrency "$APP_LOGIN_CONC" \
            --seconds "$APP_LOGIN_SECS" | record app "$i"
        "$LG" fsync --dir "$data" --seconds "$FSYNC_SECS" | record app "$i"
    done
    memory "$pid" | jq -c '{bench: "memory_after_load", backend: "app"} + .' | tee -a "$OUT" >&2
    stop_pid "$pid"
    # Idle connections: a fresh segl each run, streams opened in steps, VmRSS at each.
    for i in $(seq 1 "$RUNS"); do
        wait_quiet
        start_segl "$data"
        sleep 2
        log "app: idle event streams, run $i (segl pid $SERVER_PID)"
        "$LG" app-idle --base "$BASE" --apps "$WORK/apps.json" --server-pid "$SERVER_PID" \
            --steps "$APP_CONN_STEPS" --idle-cpu-secs "$APP_IDLE_CPU_SECS" \
            --source-ips "$APP_SOURCE_IPS" | record app "$i"
        stop_pid "$SERVER_PID"
    done
    echo "serve log app: $(wc -l <"$data/serve.log") lines, $(grep -ci 'error' "$data/serve.log" || true) mentioning error" >>"$WORK/machine.txt"
fi

# ---------------------------------------------------------------------------------------
# The CA (issue 4), on SQLite. segl's rows are tagged backend "pki", the peer's "openssl".
if [[ " $BENCHES " == *" pki "* ]]; then
    data=$WORK/data-pki
    mkdir -p "$data"
    log "pki: setup ($PKI_PEOPLE persons with an active eID, $PKI_CERTS certificates)"
    t0=$(date +%s.%N)
    "$LG" setup --segl "$SEGL" --data-dir "$data" --people "$PKI_PEOPLE" --out "$WORK/pki-people.json" \
        --redirect-uri "$REDIRECT_URI" >/dev/null
    mapfile -t nins < <(jq -r '.people[].nin' "$WORK/pki-people.json")
    have=$("$SEGL" --data-dir "$data" --json cert list | jq length)
    for ((k = have; k < PKI_CERTS; k++)); do
        "$SEGL" --data-dir "$data" --json cert issue --nin "${nins[k % ${#nins[@]}]}" >/dev/null
    done
    "$SEGL" --data-dir "$data" --json cert list >"$WORK/pki-certs.json"
    "$SEGL" --data-dir "$data" ca export persons >"$WORK/persons.pem"
    # One nonce-less request per certificate (SHA-1 CertID, openssl's default, as browsers
    # send); the peer's index lists the same serials as valid, in the form openssl looks
    # them up (upper-case hex of the integer: no leading zero octet).
    reqs=$WORK/ocsp-requests
    mkdir -p "$reqs" "$WORK/peer-ocsp"
    : >"$WORK/peer-ocsp/index.txt"
    for serial in $(jq -r '.[] | select(.status == "valid") | .serial' "$WORK/pki-certs.json"); do
        openssl ocsp -issuer "$WORK/persons.pem" -serial "0x$serial" -no_nonce -reqout "$reqs/$serial.der" >/dev/null 2>&1
        hex=$(tr a-f A-F <<<"$serial" | sed -E 's/^(00)+//')
        ((${#hex} % 2 == 0)) || hex=0$hex
        printf 'V\t351231235959Z\t\t%s\tunknown\t/CN=bench %s\n' "$hex" "$hex" >>"$WORK/peer-ocsp/index.txt"
    done
    printf 'unique_subject = no\n' >"$WORK/peer-ocsp/index.txt.attr"
    nreq=$(find "$reqs" -name '*.der' | wc -l)
    jq -c -n --argjson people "$PKI_PEOPLE" --argjson certs "$nreq" --argjson s "$(minus "$(date +%s.%N)" "$t0")" \
        '{bench: "pki_setup", backend: "pki", people: $people, certificates: $certs, setup_seconds: $s}' | tee -a "$OUT" >&2
    # The peer's responder key and certificate: a fresh P-256 pair made here (segl's keys
    # never leave its key store); -CA is segl's persons CA, so the peer matches the
    # requests' issuer hashes and answers good for the same serials.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench-ocsp-peer \
        -days 30 -keyout "$WORK/peer-ocsp/rs.key" -out "$WORK/peer-ocsp/rs.pem" >/dev/null 2>&1

    # `openssl ocsp` (3.0) cannot be told an address to listen on and would listen on every
    # interface; so it runs, with its load generator, in a network namespace of its own
    # that has nothing but a loopback interface.
    run_peer_ocsp() {
        unshare --net bash -c '
            set -e
            ip link set lo up
            cd "$1"
            openssl ocsp -index index.txt -CA "$2" -rsigner rs.pem -rkey rs.key -port 8888 \
                -nmin 60 -multi "$3" >peer.log 2>&1 &
            peer=$!
            for _ in $(seq 1 100); do
                ss -Hltn "sport = :8888" | grep -q . && break
                sleep 0.1
            done
            sleep 0.5
            shift 3
            "$@" --server-pid "$peer" || rc=$?
            # The parent notes SIGTERM but exits only once its responders are gone.
            kill -TERM "$peer" $(ps -o pid= --ppid "$peer") 2>/dev/null || true
            wait "$peer" 2>/dev/null || true
            exit "${rc:-0}"
        ' peer-ocsp "$WORK/peer-ocsp" "$WORK/persons.pem" "$PKI_PEER_PROCS" \
            "$LG" ocsp --url http://127.0.0.1:8888/ --requests "$reqs" --concurrency "$PKI_CONC" \
            --seconds "$PKI_SECS"
    }

    start_segl "$data"
    pid=$SERVER_PID
    log "pki: segl at $BASE (pid $pid), $nreq requests"
    sleep 1
    # Fills segl's cache of pre-signed answers (one signature per certificate), unrecorded.
    "$LG" ocsp --url "$BASE/pki/ocsp" --requests "$reqs" --concurrency "$PKI_CONC" --seconds 2 >/dev/null
    for i in $(seq 1 "$RUNS"); do
        wait_quiet
        "$LG" ocsp --url "$BASE/pki/ocsp" --requests "$reqs" --concurrency "$PKI_CONC" \
            --seconds "$PKI_SECS" --server-pid "$pid" | record pki "$i"
        # A connection per request, as the peer is spoken to (it closes each one).
        "$LG" ocsp --url "$BASE/pki/ocsp" --requests "$reqs" --concurrency "$PKI_CONC" \
            --seconds "$PKI_SECS" --keep-alive false --server-pid "$pid" | record pki "$i"
        run_peer_ocsp | record openssl "$i"
    done
    memory "$pid" | jq -c '{bench: "memory_after_load", backend: "pki"} + .' | tee -a "$OUT" >&2
    echo "serve log pki: $(wc -l <"$data/serve.log") lines, $(grep -ci 'error' "$data/serve.log" || true) mentioning error" >>"$WORK/machine.txt"
    stop_pid "$pid"

    # A CRL of CRL_ENTRIES revoked entries: build time and peak resident memory, as the
    # example prints them ("N entries: S s, CRL M MB, peak RSS P MB (before building: B MB)").
    for i in $(seq 1 "$RUNS"); do
        wait_quiet
        out=$("$ROOT/target/release/examples/crl_million" "$CRL_ENTRIES")
        echo "$out" >&2
        sed -nE 's/^([0-9]+) entries: ([0-9.]+) s, CRL ([0-9.]+) MB, peak RSS ([0-9.]+) MB \(before building: ([0-9.]+) MB\).*/{"bench":"crl","entries":\1,"seconds":\2,"crl_mb":\3,"peak_rss_mb":\4,"before_mb":\5}/p' <<<"$out" |
            jq -c --arg v "$(grep -o 'openssl crl: .*' <<<"$out")" '. + {openssl: $v}' | record pki "$i"
    done

    # CMS signatures over a digest against raw ECDSA P-256 signatures with the same key,
    # alternating rounds in one process (crates/pki/examples/cms_speed).
    for i in $(seq 1 "$RUNS"); do
        wait_quiet
        "$ROOT/target/release/examples/cms_speed" 2 5 | jq -c '{bench: "cms"} + .' | record pki "$i"
    done
fi

python3 "$ROOT/bench/summarize.py" "$OUT" "$WORK/machine.txt" | tee "$WORK/tables.md"
log "raw results: $OUT"
