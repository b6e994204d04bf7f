#!/usr/bin/env bash
# Benchmarks Rampart's tunnel against direct TCP, ssh -L and a stunnel pair, side by side,
# on loopback only (about 5-10 minutes on 2 cores), plus the browser terminal and desktop.
# Installs OpenSSH, stunnel4, FreeRDP's shadow server, Xvfb and xsetroot from Debian if missing. Pass --write BENCHMARKS.md to rewrite the results there, --smoke for a
# seconds-long correctness run, --desktop-only for the browser desktop in Chromium alone
# (pictures, and H.264 passed through with the server's x264 preset as FreeRDP ships it and at
# ultrafast, side by side; RDP server and the painter on CPU 0, gateway and Chromium on CPU 1), --capacity for
# what one node holds (browser terminals in steps, --capacity-terminals 100,500,1000,2000;
# browser desktops with --capacity-desktops, --capacity-desktop-steps, --capacity-desktop-workload;
# --input-latency for the desktop's mouse-move-to-screen-update time).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || missing+=(stunnel4)
# The browser desktop row: an RDP server on a virtual display, repainted by xsetroot.
command -v freerdp-shadow-cli >/dev/null 2>&1 || missing+=(freerdp2-shadow-x11)
command -v Xvfb >/dev/null 2>&1 || missing+=(xvfb)
command -v xsetroot >/dev/null 2>&1 || missing+=(x11-xserver-utils)
# The desktop capacity's office workload: a terminal window on the RDP server's screen.
command -v xterm >/dev/null 2>&1 || missing+=(xterm)
# The input latency's window that follows the pointer.
command -v xeyes >/dev/null 2>&1 || missing+=(x11-apps)
# --desktop-only draws the desktop in Debian's Chromium (never a downloaded browser), driven
# by playwright-core from npm; taskset pins the RDP server and the gateway to their cores.
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
# The library that sets the shadow server's x264 preset is built with the C compiler.
command -v cc >/dev/null 2>&1 || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -d web/node_modules/playwright-core ] || (cd web && npm ci --no-audit --no-fund --loglevel=error)
profile=release
for a in "$@"; do [ "$a" = "--smoke" ] && profile=dev; done
# The az row needs the real Azure CLI (PyPI, pinned) with its bastion extension.
for a in "$@"; do
    if [ "$a" = "--az" ] && [ -z "${RAMPART_AZ:-}" ] && az_program=$(tests/azure-cli/install.sh); then
        export RAMPART_AZ="$az_program" RAMPART_AZ_EXTENSION_DIR="${az_program%/bin/az}/extensions"
    fi
done
if [ "$profile" = release ]; then
    cargo build --release --locked -p rampart-cli -p rampart-bench
    exec ./target/release/rampart-bench "$@"
else
    cargo build --locked -p rampart-cli -p rampart-bench
    exec ./target/debug/rampart-bench "$@"
fi
