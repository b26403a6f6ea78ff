#!/usr/bin/env bash
# Where the CPU of one request goes: nginx as a plain reverse proxy, plain Pingora
# (examples/plain_pingora.rs) and the gateway as benches/load.sh runs it, on the same static
# upstream and the same 1.2 KB chat request. Per request: CPU time, system calls by name
# (strace -c), context switches (voluntary and not, from /proc), allocations (count and bytes,
# valgrind's DHAT on builds with the system allocator), and for the two Rust proxies a `perf`
# profile grouped by stage. Writes the tables between the breakdown markers of
# benches/RESULTS.md (benches/load.sh keeps that section when it rewrites the file).
#
#   benches/breakdown.sh
#
# Environment (defaults in brackets):
#   DURATION [5]        seconds of the CPU / context-switch run (wrk -t2 -c64)
#   VEILGATE_BIN, PLAIN_PINGORA_BIN   prebuilt release binaries (else built)
#   SYS_VEILGATE_BIN, SYS_PLAIN_BIN   the same built with --no-default-features (system
#                       allocator, which DHAT can count; else built into target/sysalloc)
#   OUT [benches/RESULTS.md]; KEEP=1 keeps the temp dir
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SUP=$HERE/support
# shellcheck source=support/common.sh
source "$SUP/common.sh"
DURATION=${DURATION:-5}
OUT=${OUT:-$HERE/RESULTS.md}
ensure_tools nginx wrk python3 curl strace valgrind
command -v perf >/dev/null || ensure_tools linux-perf
build_gateway
if [ -n "${PLAIN_PINGORA_BIN:-}" ]; then PLAIN=$PLAIN_PINGORA_BIN; else
    (cd "$ROOT" && cargo build --release --quiet --example plain_pingora) >&2
    PLAIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/plain_pingora
fi
if [ -n "${SYS_VEILGATE_BIN:-}" ] && [ -n "${SYS_PLAIN_BIN:-}" ]; then
    SYS_BIN=$SYS_VEILGATE_BIN SYS_PLAIN=$SYS_PLAIN_BIN
else
    echo "==> cargo build --release --no-default-features (system allocator, for DHAT)" >&2
    (cd "$ROOT" && cargo build --release --quiet --no-default-features --target-dir target/sysalloc \
        --bin veilgate --example plain_pingora) >&2
    SYS_BIN=$ROOT/target/sysalloc/release/veilgate SYS_PLAIN=$ROOT/target/sysalloc/release/examples/plain_pingora
fi
raise_nofile
WORK=$(mktemp -d /tmp/veilgate-breakdown.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    stop_all
    if [ "${KEEP:-0}" = 1 ]; then echo "raw outputs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

read -r JSON_PORT SSE_PORT PROXY_PORT PROXY_SSE_PORT MOCK_PORT GW_PORT ADMIN_PORT PLAIN_PORT \
    PLAIN_SSE_PORT SYS_PORT SYS_ADMIN < <(free_ports 11)
python3 "$SUP/nginx_sse.py" "$SUP/chat-response.sse" "$WORK/sse-sets.conf" "$WORK/sse-vars.txt"
render "$SUP/nginx-upstream.conf.tmpl" "$WORK/upstream.conf" DIR="$WORK" JSON_PORT="$JSON_PORT" \
    SSE_PORT="$SSE_PORT" JSON=@file:"$SUP/chat-response.json" SSE_SETS=@file:"$WORK/sse-sets.conf" \
    SSE_VARS=@file:"$WORK/sse-vars.txt"
render "$SUP/nginx-proxy.conf.tmpl" "$WORK/proxy.conf" DIR="$WORK" JSON_PORT="$JSON_PORT" \
    SSE_PORT="$SSE_PORT" PROXY_PORT="$PROXY_PORT" PROXY_SSE_PORT="$PROXY_SSE_PORT" WORKERS=2
"$NGINX" -p "$WORK/" -c "$WORK/upstream.conf" -g 'daemon off;' 2>>"$WORK/nginx-stderr.log" &
PIDS+=($!)
"$NGINX" -p "$WORK/" -c "$WORK/proxy.conf" -g 'daemon off;' 2>>"$WORK/nginx-stderr.log" &
PROXY_NGINX_PID=$!
PIDS+=($!)
"$PLAIN" 2 "127.0.0.1:$PLAIN_PORT=127.0.0.1:$JSON_PORT" "127.0.0.1:$PLAIN_SSE_PORT=127.0.0.1:$SSE_PORT" \
    >"$WORK/plain.log" 2>&1 &
PLAIN_PID=$!
PIDS+=($!)
gateway_config() { # gateway_config OUT PORT ADMIN
    render "$SUP/gateway.yaml.tmpl" "$1" GW_PORT="$2" ADMIN_PORT="$3" JSON_PORT="$JSON_PORT" \
        SSE_PORT="$SSE_PORT" MOCK_PORT="$MOCK_PORT" REDACTION=@file:"$SUP/redaction.yaml"
}
gateway_config "$WORK/gateway.yaml" "$GW_PORT" "$ADMIN_PORT"
"$BIN" --config "$WORK/gateway.yaml" --threads 2 --upgrade-sock "$WORK/gw.sock" \
    >"$WORK/gateway-access.log" 2>"$WORK/gateway.log" &
GW_PID=$!
PIDS+=($!)
for p in "$JSON_PORT" "$PROXY_PORT" "$PLAIN_PORT" "$GW_PORT"; do wait_port "$p"; done
sleep 0.5
PIDS_nginx=$(pgrep -P "$PROXY_NGINX_PID" | tr '\n' ' ')
PIDS_pingora=$PLAIN_PID PIDS_gateway=$GW_PID
URL_nginx=http://127.0.0.1:$PROXY_PORT/v1/chat/completions
URL_pingora=http://127.0.0.1:$PLAIN_PORT/v1/chat/completions
URL_gateway=http://127.0.0.1:$GW_PORT/v1/chat/completions
BODY=$SUP/chat-request.json
wrk_n() { # wrk_n ARGS... → requests completed
    BODY_FILE=$BODY wrk "$@" -s "$SUP/post.lua" | awk '/requests in/{print $1}'
}
# user+system clock ticks, voluntary and involuntary context switches, summed over PIDs' threads
counters() {
    python3 - "$@" <<'EOF'
import glob, sys
ticks = vol = invol = 0
for pid in sys.argv[1:]:
    try:
        ticks += sum(int(x) for x in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11:13])
        for st in glob.glob(f"/proc/{pid}/task/*/status"):
            for line in open(st):
                if line.startswith("voluntary_ctxt_switches"): vol += int(line.split()[1])
                if line.startswith("nonvoluntary_ctxt_switches"): invol += int(line.split()[1])
    except FileNotFoundError:
        pass
print(ticks, vol, invol)
EOF
}
HZ=$(getconf CLK_TCK)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for t in nginx pingora gateway; do
    url=URL_$t pids=PIDS_$t
    echo "==> $t: CPU and context switches" >&2
    wrk_n -t2 -c64 -d2s "${!url}" >/dev/null
    # shellcheck disable=SC2086
    read -r c0 v0 i0 < <(counters ${!pids})
    n=$(wrk_n -t2 -c64 -d"${DURATION}s" "${!url}")
    # shellcheck disable=SC2086
    read -r c1 v1 i1 < <(counters ${!pids})
    echo "$n $((c1 - c0)) $HZ $((v1 - v0)) $((i1 - i0))" >"$WORK/cpu-$t.txt"

    echo "==> $t: system calls (strace -c)" >&2
    args=()
    for p in ${!pids}; do args+=(-p "$p"); done
    strace -f -c -q -o "$WORK/strace-$t.txt" "${args[@]}" &
    STRACE=$!
    sleep 1
    n=$(wrk_n -t1 -c16 -d3s "${!url}")
    kill -INT "$STRACE"
    wait "$STRACE" 2>/dev/null || true
    echo "$n" >"$WORK/strace-$t.n"

    if [ "$t" != nginx ]; then
        echo "==> $t: perf profile" >&2
        (BODY_FILE=$BODY wrk -t2 -c64 -d6s -s "$SUP/post.lua" "${!url}" >/dev/null &)
        sleep 0.5
        perf record -q -F 499 -g -p "${!pids}" -o "$WORK/perf-$t.data" -- sleep 4 >/dev/null 2>&1 || true
        sleep 2
        perf report -i "$WORK/perf-$t.data" --no-children --sort sym --stdio 2>/dev/null \
            >"$WORK/perf-$t.txt" || true
    fi
done

# --- allocations: DHAT on system-allocator builds, two runs, the difference per request ------
dhat_run() { # dhat_run NAME N CMD... → "blocks bytes" of the whole run
    local name=$1 n=$2 port=$3; shift 3
    valgrind --tool=dhat --dhat-out-file="$WORK/dhat-$name-$n.json" "$@" >"$WORK/dhat-$name-$n.log" 2>&1 &
    local pid=$! i
    # Valgrind reads the binary's debug info first: minutes, not seconds, to the first accept.
    for i in $(seq 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/dhat-$name-$n.log" >&2; exit 1; }
        sleep 0.5
    done
    python3 - "$port" "$n" "$BODY" <<'EOF'
import http.client, sys
port, n, body = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], "rb").read()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json", "authorization": "Bearer vk-bench"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
EOF
    kill -INT "$pid" # a fast shutdown: no drain to wait for
    wait "$pid" 2>/dev/null || true
    python3 - "$WORK/dhat-$name-$n.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(p["tbk"] for p in d["pps"]), sum(p["tb"] for p in d["pps"]))
EOF
}
sed -e "s/^listen: .*/listen: 127.0.0.1:$SYS_PORT/" -e "s/^admin: .*/admin: 127.0.0.1:$SYS_ADMIN/" \
    "$WORK/gateway.yaml" >"$WORK/gateway-sys.yaml"
N1=50 N2=550
for t in pingora gateway; do
    echo "==> $t: allocations (valgrind --tool=dhat, $N1 and $N2 requests)" >&2
    if [ "$t" = gateway ]; then
        cmd=("$SYS_BIN" --config "$WORK/gateway-sys.yaml" --threads 2 --upgrade-sock "$WORK/sys.sock")
    else
        cmd=("$SYS_PLAIN" 2 "127.0.0.1:$SYS_PORT=127.0.0.1:$JSON_PORT")
    fi
    a=$(dhat_run "$t" "$N1" "$SYS_PORT" "${cmd[@]}")
    b=$(dhat_run "$t" "$N2" "$SYS_PORT" "${cmd[@]}")
    echo "$a $b $((N2 - N1))" >"$WORK/alloc-$t.txt"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$WORK" "$OUT" "$LOAD_BEFORE" "$LOAD_AFTER" "$DURATION" "$(cd "$ROOT" && git rev-parse --short HEAD)" <<'EOF'
import datetime, os, re, sys
work, out, load_before, load_after, duration, rev = sys.argv[1:7]
targets = ["nginx", "pingora", "gateway"]
names = {"nginx": "nginx proxy", "pingora": "plain Pingora", "gateway": "Veilgate"}
cpu, sysc, top, alloc = {}, {}, {}, {}
for t in targets:
    n, ticks, hz, vol, invol = map(int, open(f"{work}/cpu-{t}.txt").read().split())
    cpu[t] = (ticks / hz * 1e6 / n, vol / n, invol / n)
    calls = {}
    for line in open(f"{work}/strace-{t}.txt"):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
    n = int(open(f"{work}/strace-{t}.n").read())
    sysc[t] = sum(calls.values()) / n
    top[t] = sorted(((c / n, s) for s, c in calls.items()), reverse=True)[:5]
    if os.path.exists(f"{work}/alloc-{t}.txt"):
        a_blocks, a_bytes, b_blocks, b_bytes, dn = map(int, open(f"{work}/alloc-{t}.txt").read().split())
        alloc[t] = ((b_blocks - a_blocks) / dn, (b_bytes - a_bytes) / dn)
STAGES = [
    ("redaction (veilgate::redact)", lambda s: "veilgate::redact" in s),
    ("telemetry: metrics, log, traces", lambda s: "veilgate::telemetry" in s or "prometheus" in s or "opentelemetry" in s),
    ("budgets (veilgate::limits)", lambda s: "veilgate::limits" in s),
    ("gateway: routing, relay, JSON probes", lambda s: "veilgate::" in s),
    ("JSON parsing (serde_json)", lambda s: "serde_json" in s or "serde::" in s),
    ("Pingora (HTTP/1 sessions)", lambda s: "pingora" in s or "httparse" in s or "http::" in s),
    ("Tokio and mio (runtime, wake-ups)", lambda s: "tokio" in s or "mio::" in s),
    ("allocator", lambda s: re.search(r"\b_?mi_|malloc|free\b|__rust_(de)?alloc|realloc", s) is not None),
    ("memcpy, memmove, other libc", lambda s: "mem" in s or "libc" in s or "__" in s),
]
def profile(t):
    path = f"{work}/perf-{t}.txt"
    if not os.path.exists(path):
        return None
    groups = {"kernel (system calls, network, scheduling)": 0.0}
    for name, _ in STAGES:
        groups[name] = 0.0
    groups["other"] = 0.0
    for line in open(path):
        m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(.*)", line)
        if not m:
            continue
        pct, kind, sym = float(m.group(1)), m.group(2), m.group(3).strip()
        if kind == "k":
            groups["kernel (system calls, network, scheduling)"] += pct
            continue
        for name, test in STAGES:
            if test(sym):
                groups[name] += pct
                break
        else:
            groups["other"] += pct
    return groups
lines = ["<!-- breakdown -->", "## Where one request's CPU goes (benches/breakdown.sh)", ""]
lines.append(f"- Date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, `{rev}`; the load bench's machine, upstream, request and gateway config (redaction both ways, keyed rate limit, metrics, access log); load average {load_before} before, {load_after} after.")
lines.append(f"- CPU and context switches: `wrk -t2 -c64 -d{duration}s`, user + system time of the proxy's processes over the requests completed. System calls: `strace -f -c` attached during `wrk -t1 -c16 -d3s` (strace slows the proxy; counts per request are what it measures, not time). Allocations: valgrind DHAT on builds with the system allocator (`--no-default-features`), {550 - 50} requests' difference between a 50- and a 550-request run, one keep-alive connection; nginx allocates from per-request pools and is not counted.")
lines.append("")
lines.append("| per request | " + " | ".join(names[t] for t in targets) + " |")
lines.append("|---|" + "---|" * len(targets))
lines.append("| CPU (µs, user + system) | " + " | ".join(f"{cpu[t][0]:.1f}" for t in targets) + " |")
lines.append("| system calls | " + " | ".join(f"{sysc[t]:.1f}" for t in targets) + " |")
lines.append("| the most frequent | " + " | ".join(", ".join(f"{s} {c:.2f}" for c, s in top[t]) for t in targets) + " |")
lines.append("| context switches, voluntary / involuntary | " + " | ".join(f"{cpu[t][1]:.2f} / {cpu[t][2]:.2f}" for t in targets) + " |")
lines.append("| allocations (count) | " + " | ".join(f"{alloc[t][0]:.0f}" if t in alloc else "—" for t in targets) + " |")
lines.append("| allocated bytes | " + " | ".join(f"{alloc[t][1]:,.0f}" if t in alloc else "—" for t in targets) + " |")
lines.append("")
profiles = {t: profile(t) for t in ["pingora", "gateway"]}
if all(profiles.values()):
    lines.append("`perf record -F 499 -g` under `wrk -t2 -c64`, self time grouped by stage (share of the process's samples, and µs of the CPU per request above):")
    lines.append("")
    lines.append("| stage | plain Pingora | Veilgate |")
    lines.append("|---|---|---|")
    for name in profiles["gateway"]:
        p, g = profiles["pingora"][name], profiles["gateway"][name]
        lines.append(f"| {name} | {p:.1f}% ({p * cpu['pingora'][0] / 100:.1f} µs) | {g:.1f}% ({g * cpu['gateway'][0] / 100:.1f} µs) |")
    lines.append("")
lines.append("<!-- /breakdown -->")
section = "\n".join(lines) + "\n"
text = open(out).read() if os.path.exists(out) else ""
if "<!-- breakdown -->" in text:
    text = re.sub(r"<!-- breakdown -->.*<!-- /breakdown -->\n?", lambda _: section, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + section
open(out, "w").write(text)
print(section)
EOF
