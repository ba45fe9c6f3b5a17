#!/usr/bin/env bash
# The whole test suite, the one command CI runs (.ci/run) and the README gives:
#   1. Rust unit tests and protocol tests (real server on 127.0.0.1:0, real sockets);
#   2. the real-client suite (pusher-js, laravel-echo, the Node and Python SDKs, raw frames,
#      headless Chromium), which installs its npm packages, Python venv and Debian's chromium
#      when they are missing.
# Both use the release profile so the server binary is built once.
# The cluster tests (protocol-tests/cluster/) start their own redis-server processes on free
# ports; Debian's redis-server is installed when the binary is missing (the packaged service is
# not used).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server (apt-get), for the cluster tests"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server
fi

echo "== cargo test (unit + protocol tests, cluster tests)"
cargo test --release --all-targets

echo "== real-client suite"
cargo build --release --bin herald
HERALD_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/herald" protocol-tests/clients/run.sh
