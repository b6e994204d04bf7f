#!/usr/bin/env bash
# Runs every test of Rampart. Installs what the tests need when it is missing (OpenSSH,
# PostgreSQL, HAProxy, sshpass, stunnel4, FreeRDP, OpenSSL's headers, xrdp with xorgxrdp, Xvfb with xsetroot, xwd, xterm, xdotool and xclip, testssl.sh, groff,
# Chromium, pebble, binutils and Node.js from Debian; xterm.js and
# playwright-core from npm, never a downloaded browser; the Azure CLI from PyPI, pinned), then checks formatting and lints, builds
# the `rampart` binary the end-to-end tests drive, runs all unit and end-to-end tests,
# schemathesis (PyPI, pinned) against the API, and builds, installs and starts the Debian
# package (cargo-deb, installed when missing).
# Traffic stays on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is missing: install a Rust toolchain (1.94 or newer) first" >&2
    exit 1
fi

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || missing+=(stunnel4)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v sshpass >/dev/null 2>&1 || missing+=(sshpass)
command -v xfreerdp >/dev/null 2>&1 || missing+=(freerdp2-x11)
command -v freerdp-shadow-cli >/dev/null 2>&1 || missing+=(freerdp2-shadow-x11)
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
command -v xsetroot >/dev/null 2>&1 || missing+=(x11-xserver-utils)
command -v xterm >/dev/null 2>&1 || missing+=(xterm)
command -v xdotool >/dev/null 2>&1 || missing+=(xdotool)
command -v xwd >/dev/null 2>&1 || missing+=(x11-apps)
command -v xclip >/dev/null 2>&1 || missing+=(xclip)
[ -x /usr/sbin/xrdp ] || missing+=(xrdp)
[ -e /usr/lib/xorg/modules/drivers/xrdpdev_drv.so ] || missing+=(xorgxrdp)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# PostgreSQL's server binaries: the PostgreSQL store's tests start their own cluster (initdb
# in a temporary directory, a free loopback port), whatever service the machine runs.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
# Several nodes behind a real layer-4 balancer speaking the PROXY protocol.
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# OpenSSL's headers: webauthn-rs (passkeys) verifies with OpenSSL.
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# testssl.sh checks the gateway's HTTPS headers (HSTS) as an operator's scanner would.
command -v testssl >/dev/null 2>&1 || missing+=(testssl.sh)
# Renders the man pages `rampart man` writes (a test reads them as man shows them).
command -v groff >/dev/null 2>&1 || missing+=(groff-base)
# Let's Encrypt's ACME test server (the --acme-domain test).
command -v pebble >/dev/null 2>&1 || missing+=(pebble)
# objcopy splits the package's debug information off the binary.
command -v objcopy >/dev/null 2>&1 || missing+=(binutils)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v adduser >/dev/null 2>&1 || missing+=(adduser)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The web client's packages: xterm.js (served by the gateway), playwright-core (drives
# Debian's Chromium in the browser tests) and oidc-provider (the certified OpenID provider
# the single sign-on tests run). The lockfile pins them.
(cd web && npm ci --no-audit --no-fund --loglevel=error)

# The real Azure CLI (azure-cli from PyPI, pinned) with its bastion and ssh extensions, for
# the az compatibility tests; they are skipped, saying why, where it cannot be installed.
if az_program=$(tests/azure-cli/install.sh); then
    export RAMPART_AZ="$az_program" RAMPART_AZ_EXTENSION_DIR="${az_program%/bin/az}/extensions"
else
    echo "the az compatibility tests will be skipped: tests/azure-cli/install.sh failed (above)" >&2
fi

# Incremental compilation's caches are half of a debug build's size (15 GB here) and a fresh
# clone gains nothing from them: off, so a machine with a modest disk builds everything.
export CARGO_INCREMENTAL=0

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The architecture's rules (ARCHITECTURE.md): which crate may depend on which, file sizes.
cargo xtask check-arch
cargo build -p rampart-cli -p rampart-bench --locked
# Every test gateway's log is kept here; no panic may appear in any of them.
export RAMPART_E2E_LOG_DIR="$PWD/target/e2e-logs"
rm -rf "$RAMPART_E2E_LOG_DIR"
cargo test --workspace --locked
if grep -l "panicked" "$RAMPART_E2E_LOG_DIR"/*.log 2>/dev/null; then
    echo "a gateway panicked during the tests (logs above, in $RAMPART_E2E_LOG_DIR)" >&2
    exit 1
fi
echo "gateway logs checked for panics: $(ls "$RAMPART_E2E_LOG_DIR" | wc -l) logs, none panicked"
# The benchmark harness in smoke mode: correctness of every path, no timing claims.
./target/debug/rampart-bench --smoke --idle 200
# The stores row in smoke mode: the tunnel through a gateway on SQLite and one on PostgreSQL.
./target/debug/rampart-bench --stores --smoke
# What recording costs, in smoke mode: terminals and desktops with recording off and on.
./target/debug/rampart-bench --recording --smoke
# What a node holds, in smoke mode: a few browser terminals typing against a real sshd.
./target/debug/rampart-bench --capacity --smoke
# And browser desktops: two, on a real RDP server whose screen changes.
./target/debug/rampart-bench --capacity-desktops --smoke
# The browser desktop's input latency, in smoke mode: a few mouse moves, each seen drawn.
./target/debug/rampart-bench --input-latency --smoke
# The browser desktop in Chromium, H.264 passed through and pictures (frames counted in the page).
./target/debug/rampart-bench --desktop-only --smoke
# The real Azure CLI's tunnel beside Rampart's, in smoke mode (skipped, saying why, without az).
./target/debug/rampart-bench --az --smoke
# The API's OpenAPI document against the live gateway: schemathesis (PyPI, pinned), no
# server errors, and every answer's status, content type and body as documented.
./tests/api/schemathesis.sh target/debug/rampart
# The Debian package: built (release, stripped, cargo-deb), installed with dpkg -i, started
# the way its systemd unit starts it, purged.
deb=$(./scripts/package.sh)
./tests/package/install.sh "$deb"
