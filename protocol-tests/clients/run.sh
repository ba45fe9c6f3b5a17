#!/usr/bin/env bash
# Herald real-client conformance suite: one command.
#   protocol-tests/clients/run.sh            # builds herald (cargo build --release) unless HERALD_BIN is set
# Env: HERALD_BIN (use this binary), CARGO_TARGET_DIR (respected when building),
#      CHECK_FILTER (regex on "area: name"), CHECK_MODULES (comma list of tests/*.mjs, default all),
#      REDIS_SERVER_BIN (redis-server for the cluster checks; default: redis-server on PATH).
# Output: "PASS <area>: <name>" / "FAIL <area>: <name>: <reason>" per check, last line "N passed, N failed".
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CALLER_PWD="$PWD"
cd "$HERE"
mkdir -p artifacts

log() { echo "[clients] $*" >&2; }

# 1. Debian packages: chromium for the browser checks, redis-server for the cluster checks,
#    openssl for the TLS checks.
APT=()
[ -x /usr/bin/chromium ] || APT+=(chromium)
[ -n "${REDIS_SERVER_BIN:-}" ] || command -v redis-server >/dev/null 2>&1 || APT+=(redis-server)
# openssl CLI: tests/tls.mjs makes its test CA and certificate with it.
command -v openssl >/dev/null 2>&1 || APT+=(openssl)
if [ "${#APT[@]}" -gt 0 ]; then
  log "installing ${APT[*]} (apt-get)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT[@]}" >&2
fi

# 2. Node packages from the committed lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.clients-lock 2>/dev/null; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json node_modules/.clients-lock
fi

# 3. Python venv with the pinned server SDK.
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt .venv/.clients-requirements 2>/dev/null; then
  log "python venv + pip install -r requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt >&2
  cp requirements.txt .venv/.clients-requirements
fi

# 4. The server binary.
if [ -z "${HERALD_BIN:-}" ]; then
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release >&2)
  TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
  case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
  HERALD_BIN="$TARGET_DIR/release/herald"
fi
case "$HERALD_BIN" in /*) ;; *) HERALD_BIN="$CALLER_PWD/$HERALD_BIN" ;; esac
export HERALD_BIN
log "using $HERALD_BIN"

exec node suite.mjs
