#!/usr/bin/env bash
# Installs what the OIDC client scripts need: their npm packages (from the
# lockfile) and Debian's Chromium. Idempotent; CI runs it as root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# npm writes node_modules/.package-lock.json on every install: reinstall when
# it is missing or older than the committed lockfile.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi

if [[ ! -x /usr/bin/chromium ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium
fi
