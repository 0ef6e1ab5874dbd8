#!/usr/bin/env bash
# The load benchmark of docs/BENCHMARKS.md: gatehouse (release build) on loopback against the
# hashing limit and against Django + djangorestframework-simplejwt under gunicorn, on SQLite
# and PostgreSQL, in one run. Not part of CI.
#
#   scripts/bench.sh [--quick] [--backends sqlite,postgres]
#
# Environment:
#   CARGO_TARGET_DIR     where the release build goes (default: target)
#   BENCH_POSTGRES_URL   a PostgreSQL server the bench may create a database on
#                        (default postgres://root@127.0.0.1:5432/postgres)
#   BENCH_PYTHON         a Python >= 3.12 for Django 6.1 (default: python3.13, python3.12, python3)
#   BENCH_OUT            where results.json, results.md and the plots go (default docs/benchmarks)
# Needs: cargo, wrk (apt-get install wrk), psql (for PostgreSQL), Python with venv.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${BENCH_OUT:-$ROOT/docs/benchmarks}"
VENV="$TARGET/bench-venv"

command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 2; }

echo "bench: building gatehouse and the load generator in release mode ($TARGET)" >&2
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release --bin gatehouse --example loadgen)

if [ ! -x "$VENV/bin/gunicorn" ]; then
  PYTHON="${BENCH_PYTHON:-}"
  if [ -z "$PYTHON" ]; then
    for candidate in python3.13 python3.12 python3; do
      if command -v "$candidate" >/dev/null \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        PYTHON="$candidate"
        break
      fi
    done
  fi
  [ -n "$PYTHON" ] || { echo "bench: Django 6.1 needs Python >= 3.12; set BENCH_PYTHON" >&2; exit 2; }
  echo "bench: making $VENV with $PYTHON" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$ROOT/bench/django/requirements.txt"
fi

mkdir -p "$OUT"
"$VENV/bin/python" "$ROOT/bench/run.py" \
  --gatehouse "$TARGET/release/gatehouse" \
  --loadgen "$TARGET/release/examples/loadgen" \
  --python "$VENV/bin/python" \
  --out "$OUT/results.json" "$@"
"$VENV/bin/python" "$ROOT/bench/report.py" "$OUT/results.json" "$OUT"
echo "bench: tables in $OUT/results.md, plots in $OUT/*.png" >&2
