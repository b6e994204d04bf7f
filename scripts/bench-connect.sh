#!/usr/bin/env bash
# New connections through an open tunnel, one at a time, for comparing two builds side by side
# (loopback only): a gateway on SQLite from BIN_DIR, a `rampart network bastion tunnel` to a
# Python echo server, then N connections each sending one byte and waiting for its echo.
# Prints p50, p90 and mean. Alternate two builds' runs to compare them:
#   for i in 1 2 3; do scripts/bench-connect.sh OLD/target/release 1000; scripts/bench-connect.sh target/release 1000; done
# PERF_OUT=file also records the gateway with perf while the connections run.
set -euo pipefail
BIN=$1/rampart; N=${2:-1000}; PERF=${PERF_OUT:-}
[ "$N" -ge 1 ] && [ "$N" -le 100000 ] || { echo "N: 1 to 100000" >&2; exit 2; }
T=$(mktemp -d); export RAMPART_CONFIG_DIR=$T/cfg
python3 - > $T/echo.port <<'PY' &
import socket,threading,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("127.0.0.1",0)); s.listen(512)
print(s.getsockname()[1], flush=True)
def h(c):
    while True:
        d=c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c,_=s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); threading.Thread(target=h,args=(c,),daemon=True).start()
PY
ECHO_PID=$!
sleep 0.5; EP=$(cat $T/echo.port)
RAMPART_ADMIN_PASSWORD='Bench-Passw0rd-long' RAMPART_LOG=warn $BIN serve --listen 127.0.0.1:0 --data-dir $T/data > $T/gw.log 2>&1 &
GW=$!
for i in $(seq 100); do grep -q "TLS fingerprint:" $T/gw.log 2>/dev/null && break; sleep 0.1; done
ADDR=$(grep -o "https://127.0.0.1:[0-9]*" $T/gw.log | head -1); FP=$(grep "TLS fingerprint:" $T/gw.log | awk '{print $NF}')
echo 'Bench-Passw0rd-long' | $BIN login --server $ADDR --username admin --password-stdin --fingerprint $FP >/dev/null
$BIN network bastion update -n default -g default --enable-ip-connect true --reachable-networks 127.0.0.0/8 >/dev/null
LP=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
$BIN network bastion tunnel -n default -g default --target-ip-address 127.0.0.1 --resource-port $EP --port $LP > $T/tun.log 2>&1 &
TUN=$!
for i in $(seq 100); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$LP),0.2)" 2>/dev/null && break; sleep 0.1; done
if [ -n "$PERF" ]; then perf record -F 4999 -g -o $PERF -p $GW >/dev/null 2>&1 & PP=$!; sleep 0.5; fi
python3 - $LP $N <<'PY'
import socket,sys,time
lp,n=int(sys.argv[1]),int(sys.argv[2])
ts=[]
for i in range(n):
    t=time.perf_counter(); c=socket.create_connection(("127.0.0.1",lp)); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); c.sendall(b"x"); 
    assert c.recv(1)==b"x"; ts.append(time.perf_counter()-t); c.close()
ts.sort(); print("n=%d p50=%.3f ms p90=%.3f ms mean=%.3f ms" % (n, ts[n//2]*1e3, ts[int(n*.9)]*1e3, sum(ts)/n*1e3))
PY
[ -n "$PERF" ] && { kill -INT $PP; wait $PP 2>/dev/null || true; }
kill $TUN $GW $ECHO_PID 2>/dev/null || true; wait 2>/dev/null || true
rm -rf $T
