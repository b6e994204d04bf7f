#!/usr/bin/env bash
# Builds the Debian package: the `dist` profile's binary (Cargo.toml: size-optimized but for the
# crates that move session bytes; stripped, its debug information goes into a
# separate rampart-dbgsym .ddeb), the man pages from the CLI's own definitions, the systemd
# unit and the defaults file. Installs cargo-deb when it is missing. Prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked >&2
fi
command -v objcopy >/dev/null 2>&1 || { echo "objcopy (binutils) is needed to split debug information" >&2; exit 1; }

cargo build --profile dist -p rampart-cli --locked >&2
rm -rf target/man
./target/dist/rampart man --output-dir target/man >&2
rm -f target/debian/rampart_*.deb target/debian/rampart-dbgsym_*.ddeb
cargo deb -p rampart-cli --profile dist --no-build --dbgsym >&2
ls target/debian/rampart_*.deb
