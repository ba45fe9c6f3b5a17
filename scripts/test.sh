#!/usr/bin/env bash
# The whole test suite, the one command CI runs (.ci/run) and the README gives:
#   1. Rust unit tests and protocol tests (real server on 127.0.0.1:0, real sockets);
#   2. the real-client suite (pusher-js, laravel-echo, the Node and Python SDKs, raw frames,
#      headless Chromium), which installs its npm packages, Python venv and Debian's chromium
#      when they are missing.
# Both use the release profile so the server binary is built once.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (unit + protocol tests)"
cargo test --release --all-targets

echo "== real-client suite"
cargo build --release --bin herald
HERALD_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/herald" protocol-tests/clients/run.sh
