#!/usr/bin/env bash
# API fuzzing: schemathesis generates requests from /openapi.json — valid ones, and ones that
# break the schema — and sends them to a real gatehouse binary on a free port with a temporary,
# seeded SQLite database. It fails on a 5xx, a status code, content type, header or body the
# document does not declare, invalid data accepted, valid data refused, an undocumented method
# not answered 405, and a credential that is ignored.
#
#   scripts/api-fuzz.sh                 # uses target/debug/gatehouse (what `cargo test` built)
#   GATEHOUSE_BIN=path/to/gatehouse scripts/api-fuzz.sh
#   API_FUZZ_MAX_EXAMPLES=200 API_FUZZ_SEED=7 scripts/api-fuzz.sh    # a longer or other run
#   API_FUZZ_SCHEMA=src/http/openapi.json scripts/api-fuzz.sh          # the file, not the served copy
#
# Budget: at most API_FUZZ_MAX_EXAMPLES (default 25) cases per operation and phase, and a fixed
# seed so CI runs are repeatable. API_FUZZ_MAX_TIME (default 270 s) is a hard stop that fails the
# run: schemathesis's own --max-time would instead keep fuzzing until the time is spent.
#
# Two checks of `--checks all` are left out, on purpose:
# - positive_data_acceptance: it expects any schema-valid request to succeed, but the server
#   rightly refuses schema-valid data that breaks rules a schema cannot state: Django's password
#   validators, ids that name nothing, a taken username, a grant a client may not use, an empty
#   token. Those answers are documented 400s, and status_code_conformance checks them.
# - ensure_resource_availability: it follows links it infers from POST responses; the
#   membership endpoints (POST /api/roles/{id}/users, ...) answer no id, so it calls the DELETE
#   with `[]` as the id and reports the (correct) 404 as a lost resource.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
venv=target/api-fuzz-venv
binary=${GATEHOUSE_BIN:-${CARGO_TARGET_DIR:-target}/debug/gatehouse}
max_examples=${API_FUZZ_MAX_EXAMPLES:-25}
seed=${API_FUZZ_SEED:-20261123}
max_time=${API_FUZZ_MAX_TIME:-270}

log() { printf '\n== %s\n' "$*"; }

if [ ! -x "$binary" ]; then
    echo "no gatehouse binary at $binary: run cargo build (or set GATEHOUSE_BIN)" >&2
    exit 1
fi

if [ "$("$venv/bin/schemathesis" --version 2>/dev/null | grep -o '[0-9][0-9.]*$')" != "$SCHEMATHESIS_VERSION" ]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_secret=$("$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))')

log "starting $binary on $base"
# Few PBKDF2 iterations: thousands of sign-ins and sign-ups are hashed. Sign-up on, so that it is
# exercised; anonymous access on, so that the webhook's allow answer is reached without a token.
DATABASE_URL="sqlite://$work/db.sqlite3" GATEHOUSE_DATA_DIR="$work/data" PORT="$port" \
    GATEHOUSE_PUBLIC_URL="$base" GATEHOUSE_ADMIN_SECRET="$admin_secret" \
    GATEHOUSE_PBKDF2_ITERATIONS=1000 GATEHOUSE_SIGNUP=true GATEHOUSE_ALLOW_ANONYMOUS=true \
    RUST_LOG="${RUST_LOG:-warn}" "$binary" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null

# What authenticated operations need: a user with an access token (bearerJwt) and a
# confidential OIDC application (clientBasic). The admin secret is adminBearer.
admin=(-H "Authorization: Bearer $admin_secret" -H "Content-Type: application/json")
user_password=$("$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(16))')
for user in fuzz-user fuzz-logout; do
    curl -fsS "${admin[@]}" -d "{\"username\":\"$user\",\"password\":\"$user_password\"}" "$base/api/users" >/dev/null
done
login() {
    curl -fsS -H "Content-Type: application/json" \
        -d "{\"username\":\"$1\",\"password\":\"$user_password\"}" "$base/webhook/login" |
        "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}
access_token=$(login fuzz-user)
# Logout ends the session of the token it is sent (with `all`, every session of its user): it
# gets a user of its own, so that the other operations keep a live token.
logout_token=$(login fuzz-logout)
application=$(curl -fsS "${admin[@]}" \
    -d '{"name":"fuzz","type":"web","redirectUris":["http://127.0.0.1/callback"]}' "$base/api/applications")
client_id=$(printf '%s' "$application" | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["id"])')
client_secret=$(printf '%s' "$application" | "$venv/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["secret"])')

cat >"$work/schemathesis.toml" <<TOML
[auth.openapi.adminBearer]
bearer = "\${FUZZ_ADMIN_SECRET}"

[auth.openapi.bearerJwt]
bearer = "\${FUZZ_ACCESS_TOKEN}"

[auth.openapi.clientBasic]
username = "\${FUZZ_CLIENT_ID}"
password = "\${FUZZ_CLIENT_SECRET}"

[[operations]]
include-name = "POST /webhook/logout"
headers = { Authorization = "Bearer \${FUZZ_LOGOUT_TOKEN}" }
TOML

exclusions=()

log "schemathesis $SCHEMATHESIS_VERSION: $max_examples examples per operation, seed $seed, at most ${max_time}s"
status=0
FUZZ_ADMIN_SECRET="$admin_secret" FUZZ_ACCESS_TOKEN="$access_token" FUZZ_LOGOUT_TOKEN="$logout_token" \
    FUZZ_CLIENT_ID="$client_id" FUZZ_CLIENT_SECRET="$client_secret" \
    timeout "$max_time" "$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "${API_FUZZ_SCHEMA:-$base/openapi.json}" --url "$base" \
    --checks all \
    --exclude-checks positive_data_acceptance,ensure_resource_availability \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --workers 1 \
    --request-timeout 10 \
    --max-redirects 0 \
    --no-color \
    "${exclusions[@]}" || status=$?

if [ "$status" -eq 124 ]; then
    echo "schemathesis did not finish within ${max_time}s (API_FUZZ_MAX_TIME)" >&2
fi
if grep -q "panicked" "$work/server.log"; then
    echo "the server panicked:" >&2
    grep -A5 "panicked" "$work/server.log" >&2
    status=1
fi
if [ "$status" -ne 0 ]; then
    echo "--- server log (last 50 lines)" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit "$status"
