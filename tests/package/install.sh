#!/usr/bin/env bash
# The Debian package as an operator meets it: `dpkg -i` installs the binary (under 40 MB, no
# debug information), the man pages, the systemd unit, the defaults file and the `rampart`
# user; then the gateway is started the way the unit starts it (its user, only
# CAP_NET_BIND_SERVICE, its state directory, its ExecStart and EnvironmentFile) on a
# privileged loopback port, answers over HTTPS, prints the bootstrap admin, and keeps its
# state in /var/lib/rampart. The package is purged at the end. Needs root (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/../.."
deb=${1:?usage: tests/package/install.sh PATH.deb}
[ "$(id -u)" -eq 0 ] || { echo "the package test installs with dpkg: run it as root" >&2; exit 1; }

fail() { echo "package test: $*" >&2; exit 1; }
workdir=$(mktemp -d)
gw_pid=""
cleanup() {
    [ -n "$gw_pid" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
    dpkg --purge rampart >/dev/null 2>&1 || true
    rm -rf "$workdir"
}
trap cleanup EXIT

dpkg --purge rampart >/dev/null 2>&1 || true
dpkg -i "$deb" >"$workdir/dpkg.log" 2>&1 || { cat "$workdir/dpkg.log"; fail "dpkg -i failed"; }

size=$(stat -c %s /usr/bin/rampart)
[ "$size" -lt $((40 * 1024 * 1024)) ] || fail "/usr/bin/rampart is $size bytes, over 40 MB"
if readelf -SW /usr/bin/rampart | grep -qE '\.debug_(info|line|str|abbrev) '; then fail "/usr/bin/rampart still holds debug sections"; fi
ddeb=$(ls "$(dirname "$deb")"/rampart-dbgsym_*.ddeb 2>/dev/null | head -1)
[ -n "$ddeb" ] || fail "no rampart-dbgsym .ddeb beside $deb"
dpkg-deb -c "$ddeb" | grep -q "usr/lib/debug/.build-id/" || fail "the .ddeb holds no debug information by build ID"
unit=/lib/systemd/system/rampart.service
[ -f "$unit" ] || unit=/usr/lib/systemd/system/rampart.service
[ -f "$unit" ] || fail "no systemd unit installed"
for line in "User=rampart" "AmbientCapabilities=CAP_NET_BIND_SERVICE" "ProtectSystem=strict" "StateDirectory=rampart"; do
    grep -qx "$line" "$unit" || fail "the unit lacks $line"
done
[ -f /etc/default/rampart ] || fail "no /etc/default/rampart"
ls /usr/share/man/man1/rampart-serve.1* >/dev/null 2>&1 || fail "no man page rampart-serve(1)"
zcat -f /usr/share/man/man1/rampart-serve.1* | grep -q 'acme\\-domain' || fail "rampart-serve(1) does not describe --acme-domain"
getent passwd rampart >/dev/null || fail "the package made no rampart user"
[ "$(stat -c %U /var/lib/rampart)" = rampart ] || fail "/var/lib/rampart is not the rampart user's"

# The unit's own lines, as systemd would run them.
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
# A privileged port nothing listens on, so the capability is what lets it bind.
port=""
for p in 443 1023 1022 1021 1020; do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || fail "no free privileged port on loopback"
env_file="$workdir/rampart.env"
sed 's/^RAMPART_LISTEN=.*/RAMPART_LISTEN=127.0.0.1:'"$port"'/' /etc/default/rampart >"$env_file"
grep -q "^RAMPART_LISTEN=127.0.0.1:$port$" "$env_file" || fail "the defaults file sets no RAMPART_LISTEN"
(
    set -a
    # shellcheck disable=SC1090
    . "$env_file"
    set +a
    cd /var/lib/rampart
    # shellcheck disable=SC2086
    exec setpriv --reuid="$user" --regid="$user" --init-groups \
        --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
        --bounding-set=-all,+net_bind_service --no-new-privs $exec_start
) >"$workdir/out.log" 2>"$workdir/err.log" &
gw_pid=$!

for _ in $(seq 1 150); do
    grep -q "listening on https://" "$workdir/out.log" 2>/dev/null && break
    kill -0 "$gw_pid" 2>/dev/null || { cat "$workdir/out.log" "$workdir/err.log"; fail "the gateway exited"; }
    sleep 0.2
done
grep -q "listening on https://127.0.0.1:$port" "$workdir/out.log" || { cat "$workdir/out.log" "$workdir/err.log"; fail "not listening on $port"; }
[ "$(curl -sk --max-time 5 "https://127.0.0.1:$port/healthz")" = ok ] || fail "no HTTPS answer on $port"
grep -q "password" "$workdir/out.log" || fail "the first start printed no bootstrap admin password"
[ "$(ps -o user= -p "$gw_pid" | tr -d ' ')" = rampart ] || fail "the gateway does not run as rampart"
[ "$(stat -c %U /var/lib/rampart/rampart.db)" = rampart ] || fail "the store is not in /var/lib/rampart"
echo "package test: installed $(basename "$deb"), binary $((size / 1024 / 1024)) MB, served https://127.0.0.1:$port as rampart"
