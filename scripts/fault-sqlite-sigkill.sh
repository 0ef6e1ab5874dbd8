#!/usr/bin/env bash
# Fault scenario: gatehouse on SQLite killed with SIGKILL in the middle of a sign-up load.
#
# Round after round on the same database file, gatehouse starts (on the file the previous
# kill left behind), concurrent sign-ups run (scripts/fault_load.py), and the process gets
# `kill -9` once N sign-ups were acknowledged (a 200 read in full). After each kill, a copy of
# the files as the kill left them (database, -wal, -shm) must pass `PRAGMA integrity_check`
# and hold every sign-up acknowledged so far.
#
# Why it holds: gatehouse opens SQLite in WAL mode with synchronous=NORMAL. A commit is
# written to the WAL before the answer is sent; a killed process loses nothing the kernel
# already has, and the next open replays the WAL. (synchronous=NORMAL skips the fsync at
# each commit: a power cut or kernel crash, unlike a process crash, may lose the last
# commits, never the database's consistency.)
#
# Usage: scripts/fault-sqlite-sigkill.sh [path/to/gatehouse]   (default target/debug/gatehouse)
# Environment: FAULT_KILL_POINTS ("150 300 450": acknowledged sign-ups before each kill),
# FAULT_KEEP=1 keeps the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=$(realpath "${1:-target/debug/gatehouse}")
[ -x "$BIN" ] || { echo "no gatehouse binary at $BIN: build it (cargo build --bin gatehouse) or pass its path" >&2; exit 2; }
LOAD="$PWD/scripts/fault_load.py"
KILL_POINTS=${FAULT_KILL_POINTS:-150 300 450}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d /tmp/gatehouse-fault-sqlite.XXXXXX)
DB="$WORK/gatehouse.sqlite3"
GH_PID=

cleanup() {
    local status=$?
    [ -n "$GH_PID" ] && kill -9 "$GH_PID" 2>/dev/null
    if [ "$status" != 0 ]; then
        echo "--- gatehouse log (last 30 lines)"; tail -n 30 "$WORK/gatehouse.log" 2>/dev/null || true
    fi
    if [ "${FAULT_KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

round=0
for kill_after in $KILL_POINTS; do
    round=$((round + 1))
    port=$(free_port)
    echo "== round $round: gatehouse on $DB, SIGKILL after $kill_after acknowledged sign-ups"
    "$BIN" serve \
        --database-url "sqlite://$DB" --port "$port" --data-dir "$WORK/gatehouse" --pbkdf2-iterations 1000 \
        --signups-per-minute 1000000 --signups-per-ip-per-hour 1000000 \
        >>"$WORK/gatehouse.log" 2>&1 &
    GH_PID=$!
    disown "$GH_PID" # its death by SIGKILL is the plan, not news for the log
    python3 "$LOAD" wait-ready --base "http://127.0.0.1:$port" --pid "$GH_PID"
    python3 "$LOAD" signup-kill --base "http://127.0.0.1:$port" --pid "$GH_PID" --kill-after "$kill_after" \
        --round "$round" --acked-out "$WORK/acked"
    for _ in $(seq 1 200); do kill -0 "$GH_PID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$GH_PID" 2>/dev/null; then echo "gatehouse survived SIGKILL?" >&2; exit 1; fi
    GH_PID=
    # Check a copy, so that the next round starts on the files exactly as the kill left them.
    rm -rf "$WORK/snapshot" && mkdir "$WORK/snapshot"
    cp "$DB"* "$WORK/snapshot/"
    ls "$WORK/snapshot" | sed 's/^/   left behind: /'
    python3 "$LOAD" sqlite-verify --db "$WORK/snapshot/$(basename "$DB")" --acked "$WORK/acked"
done
echo "OK: after $round SIGKILLs mid-load, the database passes integrity_check and holds every acknowledged sign-up"
