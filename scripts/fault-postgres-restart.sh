#!/usr/bin/env bash
# Fault scenario: PostgreSQL restarted under load, gatehouse left running.
#
# Starts a PRIVATE PostgreSQL (initdb in a temporary directory, a free port, trust
# authentication; never the shared server on 5432), gatehouse on it, and a load of sign-ups,
# sign-ins and webhook checks (scripts/fault_load.py). Then restarts PostgreSQL twice mid-load:
# once with `pg_ctl stop -m fast` (a clean restart) and once with `-m immediate` (a crash, with
# WAL recovery at the next start). Checks:
#   - during each outage, sign-ups and sign-ins get 503 + Retry-After + a JSON error, within
#     FAULT_MAX_503_SECS (3 s); never a 500, never a dropped connection, nothing hangs;
#   - the webhook keeps answering 200 for sessions it checked shortly before (stale-if-error);
#   - after each restart gatehouse recovers by itself within FAULT_MAX_RECOVERY_SECS (10 s);
#   - every acknowledged sign-up is in auth_user afterwards.
#
# Usage: scripts/fault-postgres-restart.sh [path/to/gatehouse]   (default target/debug/gatehouse)
# Environment: PG_BIN (directory of initdb/pg_ctl; default: the newest /usr/lib/postgresql/*/bin),
# FAULT_OUTAGE_SECS (5), FAULT_KEEP=1 keeps the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$(realpath "${1:-target/debug/gatehouse}")
[ -x "$BIN" ] || { echo "no gatehouse binary at $BIN: build it (cargo build --bin gatehouse) or pass its path" >&2; exit 2; }
LOAD="$PWD/scripts/fault_load.py"
OUTAGE_SECS=${FAULT_OUTAGE_SECS:-5}

find_pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
    # Debian keeps the server binaries off PATH, one directory per major version.
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
PG_BIN=$(find_pg_bin)
[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] || { echo "no initdb/pg_ctl found (set PG_BIN)" >&2; exit 2; }

# PostgreSQL refuses to run as root.
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

WORK=$(mktemp -d /tmp/gatehouse-fault-pg.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$WORK/pg/sock" "$WORK/gatehouse"
[ "$(id -u)" = 0 ] && chown -R postgres: "$WORK/pg"
PG_DATA="$WORK/pg/data"
PG_PORT=$(free_port)
GH_PORT=$(free_port)
GH_PID=
LOAD_PID=

cleanup() {
    local status=$?
    [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
    [ -n "$GH_PID" ] && kill "$GH_PID" 2>/dev/null && wait "$GH_PID" 2>/dev/null
    if [ -f "$PG_DATA/postmaster.pid" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ "$status" != 0 ]; then
        echo "--- gatehouse log (last 30 lines)"; tail -n 30 "$WORK/gatehouse.log" 2>/dev/null || true
        echo "--- PostgreSQL log (last 15 lines)"; tail -n 15 "$WORK/pg/log" 2>/dev/null || true
    fi
    if [ "${FAULT_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_start() {
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$WORK/pg/log" -w -t 60 \
        -o "-p $PG_PORT -k $WORK/pg/sock -c listen_addresses=127.0.0.1" start >/dev/null
}

echo "== private PostgreSQL ($PG_BIN) on 127.0.0.1:$PG_PORT"
as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --no-sync >/dev/null
pg_start

echo "== gatehouse ($BIN) on 127.0.0.1:$GH_PORT"
"$BIN" serve \
    --database-url "postgres://postgres@127.0.0.1:$PG_PORT/postgres" \
    --port "$GH_PORT" --data-dir "$WORK/gatehouse" --pbkdf2-iterations 1000 \
    --signups-per-minute 1000000 --signups-per-ip-per-hour 1000000 \
    >"$WORK/gatehouse.log" 2>&1 &
GH_PID=$!
BASE="http://127.0.0.1:$GH_PORT"
python3 "$LOAD" wait-ready --base "$BASE" --pid "$GH_PID"

echo "== load: sign-ups, sign-ins, webhook checks"
python3 "$LOAD" pg-load --base "$BASE" --out "$WORK/events.json" --stop-file "$WORK/stop" \
    --ready-file "$WORK/load-ready" &
LOAD_PID=$!
# The load script signs its users up and puts their sessions in the webhook's cache first.
for _ in $(seq 1 300); do
    [ -e "$WORK/load-ready" ] && break
    kill -0 "$LOAD_PID" 2>/dev/null || { echo "the load script exited during its set-up" >&2; exit 1; }
    sleep 0.2
done
[ -e "$WORK/load-ready" ] || { echo "the load script did not get ready" >&2; exit 1; }
# Under load for a few seconds before the first restart.
sleep 4

restart() {
    local mode=$1
    echo "== restarting PostgreSQL (pg_ctl stop -m $mode, $OUTAGE_SECS s down)"
    echo "stop_begin $(now) $mode" >>"$WORK/phases"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m "$mode" -w stop >/dev/null
    echo "down $(now)" >>"$WORK/phases"
    sleep "$OUTAGE_SECS"
    echo "start_begin $(now)" >>"$WORK/phases"
    pg_start
    echo "ready $(now)" >>"$WORK/phases"
}
restart fast
sleep 5
restart immediate
sleep 5

touch "$WORK/stop"
wait "$LOAD_PID"
LOAD_PID=
kill -0 "$GH_PID" 2>/dev/null || { echo "gatehouse is no longer running" >&2; exit 1; }

PSQL="$PG_BIN/psql"
[ -x "$PSQL" ] || PSQL=psql
PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres "$PSQL" -X -q -At -d postgres \
    -c "SELECT username FROM auth_user" >"$WORK/usernames"
python3 "$LOAD" pg-verify --events "$WORK/events.json" --phases "$WORK/phases" --usernames "$WORK/usernames" \
    --max-503-secs "${FAULT_MAX_503_SECS:-3}" --max-recovery-secs "${FAULT_MAX_RECOVERY_SECS:-10}"
