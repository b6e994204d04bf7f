#!/usr/bin/env bash
# Builds and starts the Rampart gateway: HTTPS on 0.0.0.0:8443, data in ./rampart-data
# (embedded SQLite, a self-signed certificate and a bootstrap admin on first start).
# Extra arguments go to `rampart serve` (e.g. --listen 127.0.0.1:9443).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install a Rust toolchain (1.94 or newer) first" >&2
    exit 1
fi
cargo build --release --locked -p rampart-cli
exec ./target/release/rampart serve "$@"
