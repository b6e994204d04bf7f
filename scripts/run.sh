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
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# OpenSSL's headers for passkeys (webauthn-rs verifies with OpenSSL).
if [ ! -e /usr/include/openssl/ssl.h ] || ! command -v pkg-config >/dev/null 2>&1; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libssl-dev pkg-config >/dev/null
fi
# xterm.js for the browser terminal, from npm, embedded in the release binary.
if [ ! -f web/node_modules/@xterm/xterm/lib/xterm.mjs ]; then
    if ! command -v npm >/dev/null 2>&1; then
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    (cd web && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
fi
cargo build --release --locked -p rampart-cli
exec ./target/release/rampart serve "$@"
