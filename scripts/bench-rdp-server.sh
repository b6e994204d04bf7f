#!/usr/bin/env bash
# What the benchmark's RDP server can deliver on its own, without Rampart: FreeRDP's shadow
# server on a 1920x1080 Xvfb display (pinned to CPU 0, or to the CPUs given as $1), FreeRDP's
# own client (xfreerdp, on a second Xvfb display) asking for H.264 through the graphics
# pipeline (/gfx:avc420), the screen repainted 400 times at 40 a second as in
# `scripts/bench.sh --desktop-only`. Prints the H.264 frames xfreerdp received in each second
# and the server's CPU. Loopback only; about 30 seconds. Needs freerdp2-shadow-x11,
# freerdp2-x11, xvfb and x11-xserver-utils (scripts/test.sh installs them).
set -euo pipefail
cpus="${1:-0}"
work=$(mktemp -d)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))
Xvfb :77 -screen 0 1920x1080x24 -nolisten tcp -noreset >/dev/null 2>&1 & pids+=($!)
Xvfb :78 -screen 0 1920x1080x24 -nolisten tcp -noreset >/dev/null 2>&1 & pids+=($!)
sleep 1
DISPLAY=:77 taskset -c "$cpus" freerdp-shadow-cli /port:$port /bind-address:127.0.0.1 -auth /sec:tls \
    >"$work/shadow.log" 2>&1 & server=$!; pids+=($server)
sleep 1
DISPLAY=:78 timeout 40 xfreerdp /v:127.0.0.1:$port /cert:ignore /u:bench /p:unused /gfx:avc420 /size:1920x1080 \
    /log-level:INFO /log-filters:com.freerdp.channels.rdpgfx.client:DEBUG >"$work/client.log" 2>&1 & pids+=($!)
sleep 5
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
t0=$(ticks); s0=$(date +%s.%N)
for i in $(seq 1 400); do
    fg=$(printf '#%02x%02x%02x' $((i * 37 % 256)) $((i * 91 % 256)) $((i * 13 % 256)))
    bg=$(printf '#%02x%02x%02x' $((i * 53 % 256)) $((i * 29 % 256)) $((i * 71 % 256)))
    xsetroot -display :77 -mod $((2 + i % 7)) $((3 + i % 5)) -fg "$fg" -bg "$bg"
    sleep 0.025
done
t1=$(ticks); s1=$(date +%s.%N)
echo "H.264 frames received by xfreerdp, per second:"
grep "H264_METABLOCK" "$work/client.log" | awk '{print substr($1, 2, 8)}' | uniq -c | awk '{printf "%s ", $1} END {print ""}'
awk -v t="$((t1 - t0))" -v a="$s0" -v b="$s1" 'BEGIN {printf "RDP server CPU: %.2f cores (CPUs %s)\n", t / 100 / (b - a), "'"$cpus"'"}'
