#!/usr/bin/env bash
# A/B of two gateway binaries under the same load, interleaved so that the shared machine's
# drift hits both alike: wrk -t2 -c64 against each in turn, throughput and CPU per request.
#
#   KEEP=1 QUICK=1 benches/load.sh          # once: leaves the upstream and gateway configs in a
#                                           # temp dir (printed at the end: "raw outputs kept in …")
#   benches/ab.sh DIR BIN_A BIN_B [ROUNDS=6] [SECONDS=5]
#
# Prints one line per run ("A|B req/s µs-of-CPU-per-request") and the means. Both gateways run
# the kept gateway.yaml (redaction both ways, a keyed rate limit, metrics, access log) on their
# own ports against the kept static nginx upstream.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=$1 A=$2 B=$3 ROUNDS=${4:-6} DUR=${5:-5}
BODY=$HERE/support/chat-request.json LUA=$HERE/support/post.lua
read -r PA PA2 PB PB2 < <(python3 -c 'import socket
s=[socket.socket() for _ in range(4)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
nginx -p "$W/" -c "$W/upstream.conf" -g 'daemon off;' 2>/dev/null &
NG=$!
cfg() { sed -e "s/^listen: .*/listen: 127.0.0.1:$2/" -e "s/^admin: .*/admin: 127.0.0.1:$3/" "$W/gateway.yaml" >"$W/ab-$1.yaml"; }
cfg a "$PA" "$PA2"
cfg b "$PB" "$PB2"
"$A" --config "$W/ab-a.yaml" --threads 2 --upgrade-sock "$W/ab-a.sock" >/dev/null 2>"$W/ab-a.log" &
GA=$!
"$B" --config "$W/ab-b.yaml" --threads 2 --upgrade-sock "$W/ab-b.sock" >/dev/null 2>"$W/ab-b.log" &
GB=$!
trap 'kill $GA $GB $NG 2>/dev/null; wait 2>/dev/null' EXIT
sleep 1.5
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
run() { # run NAME PID PORT
    local c0 c1 out n rps
    c0=$(ticks "$2")
    out=$(BODY_FILE=$BODY wrk -t2 -c64 -d"${DUR}s" -s "$LUA" "http://127.0.0.1:$3/v1/chat/completions")
    c1=$(ticks "$2")
    n=$(awk '/requests in/{print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    echo "$1 $rps $(((c1 - c0) * 1000000 / HZ / n))"
}
for port in "$PA" "$PB"; do
    BODY_FILE=$BODY wrk -t2 -c64 -d2s -s "$LUA" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
done
{
    for r in $(seq "$ROUNDS"); do
        if ((r % 2)); then run A "$GA" "$PA"; run B "$GB" "$PB"; else run B "$GB" "$PB"; run A "$GA" "$PA"; fi
    done
} | tee "$W/ab.txt"
awk '{s[$1]+=$2; c[$1]+=$3; n[$1]++} END {for (k in s) printf "%s: mean %.0f req/s, %.1f µs of CPU per request (%d runs)\n", k, s[k]/n[k], c[k]/n[k], n[k]}' "$W/ab.txt" | sort
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
