#!/usr/bin/env bash
# Load benchmark: Veilgate against a plain nginx reverse proxy, against Pingora's own proxy with
# no policy at all (examples/plain_pingora.rs: the floor of anything built on Pingora) and against
# calling the upstream directly, on one machine, over loopback. Prints one markdown table and writes it (with the
# date, machine, command and gateway config) to benches/RESULTS.md.
#
#   benches/load.sh                 full run (about 4 minutes plus the build)
#   QUICK=1 benches/load.sh         short smoke run (about 1 minute); writes RESULTS-quick.md in
#                                   the temp dir unless OUT is set
#
# Environment (defaults in brackets):
#   DURATION [10]       seconds of each throughput run (wrk -d)
#   CONNECTIONS [64]    wrk connections for throughput (-c); THREADS [2] wrk threads (-t)
#   ROUNDS [3]          interleaved rounds over {direct, nginx, pingora, gateway}
#   SEQ_DURATION [5]    seconds of each sequential run (wrk -t1 -c1)
#   TTFE_N [300]        sequential streamed requests per target and round
#   STREAMS [1000]      concurrent open streams for the memory test; HOLD [20] seconds each
#   GATEWAY_THREADS     worker threads of the gateway (default: nproc); nginx gets as many workers
#   REDACTION_FILE      YAML snippet with the redaction section [benches/support/redaction.yaml]
#   VEILGATE_BIN        use this binary instead of building (cargo build --release honours
#                       CARGO_TARGET_DIR); PLAIN_PINGORA_BIN the same for the example
#   OUT                 where to write the markdown [benches/RESULTS.md]
#   KEEP=1              keep the temp dir (raw wrk outputs, logs)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SUP=$HERE/support
# shellcheck source=support/common.sh
source "$SUP/common.sh"
COMMAND="$(for v in QUICK DURATION CONNECTIONS THREADS ROUNDS SEQ_DURATION TTFE_N STREAMS HOLD GATEWAY_THREADS; do
    [ -n "${!v:-}" ] && printf '%s=%s ' "$v" "${!v}"; done; true)benches/load.sh"

if [ "${QUICK:-0}" = 1 ]; then
    DURATION=${DURATION:-3} ROUNDS=${ROUNDS:-1} SEQ_DURATION=${SEQ_DURATION:-2} TTFE_N=${TTFE_N:-50}
    STREAMS=${STREAMS:-200} HOLD=${HOLD:-8}
fi
DURATION=${DURATION:-10} CONNECTIONS=${CONNECTIONS:-64} THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-3}
SEQ_DURATION=${SEQ_DURATION:-5} TTFE_N=${TTFE_N:-300} STREAMS=${STREAMS:-1000} HOLD=${HOLD:-20}
GATEWAY_THREADS=${GATEWAY_THREADS:-$(nproc)}
REDACTION_FILE=${REDACTION_FILE:-$SUP/redaction.yaml}

ensure_tools nginx wrk python3 curl
build_gateway
if [ -n "${PLAIN_PINGORA_BIN:-}" ]; then
    PLAIN=$PLAIN_PINGORA_BIN
else
    echo "==> cargo build --release --example plain_pingora" >&2
    (cd "$ROOT" && cargo build --release --quiet --example plain_pingora) >&2
    PLAIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/plain_pingora
fi
raise_nofile

WORK=$(mktemp -d /tmp/veilgate-load.XXXXXX)
chmod 755 "$WORK" # nginx workers may run as another user
if [ "${QUICK:-0}" = 1 ]; then OUT=${OUT:-$WORK/RESULTS-quick.md}; else OUT=${OUT:-$HERE/RESULTS.md}; fi
cleanup() {
    stop_all
    if [ "${KEEP:-0}" = 1 ]; then echo "raw outputs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r JSON_PORT SSE_PORT PROXY_PORT PROXY_SSE_PORT MOCK_PORT GW_PORT ADMIN_PORT GW2_PORT ADMIN2_PORT \
    PLAIN_PORT PLAIN_SSE_PORT PLAIN_HOLD_PORT < <(free_ports 12)

# --- the static upstream and the reference proxy -------------------------------------------
python3 "$SUP/nginx_sse.py" "$SUP/chat-response.sse" "$WORK/sse-sets.conf" "$WORK/sse-vars.txt"
render "$SUP/nginx-upstream.conf.tmpl" "$WORK/upstream.conf" DIR="$WORK" JSON_PORT="$JSON_PORT" \
    SSE_PORT="$SSE_PORT" JSON=@file:"$SUP/chat-response.json" SSE_SETS=@file:"$WORK/sse-sets.conf" \
    SSE_VARS=@file:"$WORK/sse-vars.txt"
render "$SUP/nginx-proxy.conf.tmpl" "$WORK/proxy.conf" DIR="$WORK" JSON_PORT="$JSON_PORT" \
    SSE_PORT="$SSE_PORT" PROXY_PORT="$PROXY_PORT" PROXY_SSE_PORT="$PROXY_SSE_PORT" WORKERS="$GATEWAY_THREADS"
"$NGINX" -p "$WORK/" -c "$WORK/upstream.conf" -g 'daemon off;' 2>>"$WORK/nginx-stderr.log" &
UPSTREAM_NGINX_PID=$!
PIDS+=($!)
"$NGINX" -p "$WORK/" -c "$WORK/proxy.conf" -g 'daemon off;' 2>>"$WORK/nginx-stderr.log" &
PROXY_NGINX_PID=$!
PIDS+=($!)
python3 "$SUP/mock_upstream.py" --port "$MOCK_PORT" --hold "$HOLD" >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
"$PLAIN" "$GATEWAY_THREADS" "127.0.0.1:$PLAIN_PORT=127.0.0.1:$JSON_PORT" \
    "127.0.0.1:$PLAIN_SSE_PORT=127.0.0.1:$SSE_PORT" >"$WORK/plain.log" 2>&1 &
PLAIN_PID=$!
PIDS+=("$PLAIN_PID")
for p in "$JSON_PORT" "$SSE_PORT" "$PROXY_PORT" "$PROXY_SSE_PORT" "$MOCK_PORT" "$PLAIN_PORT" "$PLAIN_SSE_PORT"; do
    wait_port "$p"
done

# --- the gateway -----------------------------------------------------------------------------
gateway_config() { # gateway_config OUT PORT ADMIN_PORT REDACTION_SNIPPET_FILE
    render "$SUP/gateway.yaml.tmpl" "$1" GW_PORT="$2" ADMIN_PORT="$3" JSON_PORT="$JSON_PORT" \
        SSE_PORT="$SSE_PORT" MOCK_PORT="$MOCK_PORT" REDACTION=@file:"$4"
}
: >"$WORK/empty.yaml"
gateway_config "$WORK/gateway.yaml" "$GW_PORT" "$ADMIN_PORT" "$REDACTION_FILE"
if [ "$REDACTION_FILE" = "$SUP/redaction.yaml" ]; then
    REDACTION_NOTE="on in both directions: secrets and personal data redacted in requests and responses (see the config below)"
else
    REDACTION_NOTE="as set by \`$(basename "$REDACTION_FILE")\` (see the config below)"
fi
if ! "$BIN" check --config "$WORK/gateway.yaml" >"$WORK/check.log" 2>&1; then
    echo "!! the config loader rejects the redaction section; running WITHOUT redaction:" >&2
    sed 's/^/   /' "$WORK/check.log" >&2
    REDACTION_NOTE="**OFF — this build's config loader rejects the \`redaction:\` section** (\`veilgate check\`: $(head -1 "$WORK/check.log" | sed "s|$WORK/||")); the figures are without redaction"
    REDACTION_FILE=$WORK/empty.yaml
    gateway_config "$WORK/gateway.yaml" "$GW_PORT" "$ADMIN_PORT" "$REDACTION_FILE"
    "$BIN" check --config "$WORK/gateway.yaml" >&2
fi
gateway_config "$WORK/gateway2.yaml" "$GW2_PORT" "$ADMIN2_PORT" "$REDACTION_FILE"

start_gateway() { # start_gateway CONFIG NAME → GW_PID
    "$BIN" --config "$1" --threads "$GATEWAY_THREADS" --upgrade-sock "$WORK/$2.sock" \
        >"$WORK/$2-access.log" 2>"$WORK/$2.log" &
    GW_PID=$!
    PIDS+=("$GW_PID")
}
start_gateway "$WORK/gateway.yaml" gateway
wait_port "$GW_PORT" "$GW_PID"
wait_port "$ADMIN_PORT" "$GW_PID"

URL_direct=http://127.0.0.1:$JSON_PORT/v1/chat/completions
URL_nginx=http://127.0.0.1:$PROXY_PORT/v1/chat/completions
URL_pingora=http://127.0.0.1:$PLAIN_PORT/v1/chat/completions
URL_gateway=http://127.0.0.1:$GW_PORT/v1/chat/completions
SSE_PORT_direct=$SSE_PORT SSE_PORT_nginx=$PROXY_SSE_PORT SSE_PORT_pingora=$PLAIN_SSE_PORT SSE_PORT_gateway=$GW_PORT
# The processes whose CPU time is the proxy's: nginx's workers (the master only waits), the
# Pingora example, the gateway; for "direct", the upstream's workers.
children() { pgrep -P "$1" | tr '\n' ' '; }
CPU_PIDS_direct=$(children "$UPSTREAM_NGINX_PID") CPU_PIDS_nginx=$(children "$PROXY_NGINX_PID")
CPU_PIDS_pingora=$PLAIN_PID CPU_PIDS_gateway=$GW_PID
BODY=$SUP/chat-request.json
SBODY=$SUP/chat-request-stream.json
AUTH="authorization: Bearer vk-bench"

# --- sanity: every target answers what we expect ----------------------------------------------
for t in direct nginx pingora gateway; do
    url=URL_$t
    code=$(curl -s -m 10 -o "$WORK/sanity-$t.json" -w '%{http_code}' -H 'content-type: application/json' \
        -H "$AUTH" --data-binary @"$BODY" "${!url}" || true)
    grep -q '"chat.completion"' "$WORK/sanity-$t.json" && [ "$code" = 200 ] ||
        { echo "sanity check failed for $t: HTTP $code $(head -c 300 "$WORK/sanity-$t.json")" >&2; exit 1; }
    port=SSE_PORT_$t
    curl -sN -m 10 -H 'content-type: application/json' -H "$AUTH" --data-binary @"$SBODY" \
        "http://127.0.0.1:${!port}/v1/chat/completions" >"$WORK/sanity-$t.sse" ||
        { echo "sanity stream failed for $t: curl exit $? (a stream that does not end?)" >&2; exit 1; }
    grep -q '^data: \[DONE\]' "$WORK/sanity-$t.sse" ||
        { echo "sanity stream failed for $t: $(head -c 300 "$WORK/sanity-$t.sse")" >&2; exit 1; }
done
# Not measured, only checked: an upstream stream framed with Content-Length instead of chunks.
NOTES=()
sed 's/"bench-stream"/"bench-stream-content-length"/' "$SBODY" >"$WORK/stream-cl.json"
if ! curl -sN -m 5 -o "$WORK/sanity-cl.sse" -H 'content-type: application/json' -H "$AUTH" \
    --data-binary @"$WORK/stream-cl.json" "http://127.0.0.1:$GW_PORT/v1/chat/completions" ||
    ! grep -q '^data: \[DONE\]' "$WORK/sanity-cl.sse"; then
    echo "!! a Content-Length-framed upstream stream does not end at the client" >&2
    NOTES+=("Problem seen: when the upstream frames an SSE stream with Content-Length (not chunked), the gateway's answer never ends: the client got $(wc -c <"$WORK/sanity-cl.sse") of the upstream's $(wc -c <"$SUP/chat-response.sse") bytes and waited until curl's 5 s timeout (the upstream's Content-Length seems to be relayed although the stream is rewritten). The measured streams are chunked, as OpenAI's are.")
fi
IDLE_LOAD_KB=$(rss_kb "$GW_PID")
LOAD_BEFORE=$(loadavg)

# --- interleaved rounds -----------------------------------------------------------------------
run_wrk() { # run_wrk OUT ARGS...
    local out=$1; shift
    BODY_FILE=$BODY wrk "$@" --latency -s "$SUP/post.lua" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
}
echo "==> warm-up" >&2
for t in direct nginx pingora gateway; do url=URL_$t; run_wrk "$WORK/warmup-$t.txt" -t"$THREADS" -c"$CONNECTIONS" -d2s "${!url}"; done

# CPU time (user + system, clock ticks) of the given processes, summed.
cpu_ticks() { # cpu_ticks PID...
    local p total=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        # Fields 14 and 15 (utime, stime), counted after the ")" that ends the command name.
        total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$total"
}
TICK_HZ=$(getconf CLK_TCK)
TARGETS=(direct nginx pingora gateway)
for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do
        t=${TARGETS[$(((i + r - 1) % ${#TARGETS[@]}))]}
        url=URL_$t
        port=SSE_PORT_$t
        cpu=CPU_PIDS_$t
        echo "==> round $r/$ROUNDS: $t" >&2
        # shellcheck disable=SC2086 # the pid lists split on purpose
        before=$(cpu_ticks ${!cpu})
        run_wrk "$WORK/wrk-thr-$t-$r.txt" -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "${!url}"
        # shellcheck disable=SC2086
        echo "$(( $(cpu_ticks ${!cpu}) - before )) $TICK_HZ" >"$WORK/cpu-$t-$r.txt"
        run_wrk "$WORK/wrk-seq-$t-$r.txt" -t1 -c1 -d"${SEQ_DURATION}s" "${!url}"
        python3 "$SUP/streams.py" ttfe --port "${!port}" --body "$SBODY" --header "$AUTH" \
            --n "$TTFE_N" >"$WORK/ttfe-$t-$r.json"
        grep -h 'Requests/sec' "$WORK/wrk-thr-$t-$r.txt" | sed "s/^/    $t /" >&2
    done
done
AFTER_LOAD_KB=$(rss_kb "$GW_PID")
LOAD_AFTER=$(loadavg)

# --- memory: a fresh gateway, idle → N open streams → after --------------------------------------
echo "==> memory: $STREAMS open streams through a fresh gateway" >&2
start_gateway "$WORK/gateway2.yaml" gateway2
wait_port "$GW2_PORT" "$GW_PID"
for _ in $(seq 20); do
    curl -s -o /dev/null -H 'content-type: application/json' -H "$AUTH" --data-binary @"$BODY" \
        "http://127.0.0.1:$GW2_PORT/v1/chat/completions"
done
sleep 2
IDLE_KB=$(rss_kb "$GW_PID")
python3 "$SUP/streams.py" hold --port "$GW2_PORT" --pid "$GW_PID" --n "$STREAMS" \
    --body "$SUP/chat-request-hold.json" --header "$AUTH" --open-timeout $((HOLD - 6 > 10 ? HOLD - 6 : 10)) \
    >"$WORK/hold.json"
AFTER_WAIT=5
sleep "$AFTER_WAIT"
AFTER_KB=$(rss_kb "$GW_PID")
sleep 15
AFTER20_KB=$(rss_kb "$GW_PID")

# The same through a fresh plain Pingora (the floor: what Pingora itself holds per stream).
echo "==> memory: $STREAMS open streams through a fresh plain Pingora" >&2
"$PLAIN" "$GATEWAY_THREADS" "127.0.0.1:$PLAIN_HOLD_PORT=127.0.0.1:$MOCK_PORT" >"$WORK/plain2.log" 2>&1 &
PLAIN2_PID=$!
PIDS+=("$PLAIN2_PID")
wait_port "$PLAIN_HOLD_PORT" "$PLAIN2_PID"
sleep 2
PLAIN_IDLE_KB=$(rss_kb "$PLAIN2_PID")
python3 "$SUP/streams.py" hold --port "$PLAIN_HOLD_PORT" --pid "$PLAIN2_PID" --n "$STREAMS" \
    --body "$SUP/chat-request-hold.json" --header "$AUTH" --open-timeout $((HOLD - 6 > 10 ? HOLD - 6 : 10)) \
    >"$WORK/plain-hold.json"
sleep "$AFTER_WAIT"
PLAIN_AFTER_KB=$(rss_kb "$PLAIN2_PID")
sleep 15
PLAIN_AFTER20_KB=$(rss_kb "$PLAIN2_PID")
python3 - "$WORK" "$IDLE_KB" "$AFTER_KB" "$AFTER_LOAD_KB" "$AFTER_WAIT" "$IDLE_LOAD_KB" "$AFTER20_KB" \
    "$PLAIN_IDLE_KB" "$PLAIN_AFTER_KB" "$PLAIN_AFTER20_KB" <<'EOF'
import json, sys
work, idle, after, after_load, wait, idle_load, after20, p_idle, p_after, p_after20 = sys.argv[1:]
json.dump({"idle_kb": int(idle), "after_kb": int(after), "after_load_kb": int(after_load),
           "idle_load_kb": int(idle_load), "after_wait_s": int(wait), "after20_kb": int(after20),
           "hold": json.load(open(f"{work}/hold.json")),
           "plain": {"idle_kb": int(p_idle), "after_kb": int(p_after), "after20_kb": int(p_after20),
                     "hold": json.load(open(f"{work}/plain-hold.json"))}},
          open(f"{work}/mem.json", "w"))
EOF

# --- the report ----------------------------------------------------------------------------------
SSE_EVENTS=$(grep -c '^data: ' "$SUP/chat-response.sse")
python3 - "$WORK/meta.json" ${NOTES[@]+"${NOTES[@]}"} <<EOF
import json, sys
json.dump({
    "date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "machine": """$(machine_line)""", "git": """$(describe_build)""",
    "command": """$COMMAND""", "redaction_note": """$REDACTION_NOTE""",
    "nginx_version": "$("$NGINX" -v 2>&1 | sed 's|.*/||')", "nginx_workers": $GATEWAY_THREADS,
    "wrk_version": "$(wrk -v 2>&1 | head -1 | awk '{print $1, $2}')", "gateway_threads": $GATEWAY_THREADS,
    "rounds": $ROUNDS, "threads": $THREADS, "connections": $CONNECTIONS, "duration": $DURATION,
    "ttfe_n": $TTFE_N, "streams": $STREAMS, "hold": $HOLD,
    "request_bytes": $(wc -c <"$BODY"), "response_bytes": $(wc -c <"$SUP/chat-response.json"),
    "sse_bytes": $(wc -c <"$SUP/chat-response.sse"), "sse_events": $SSE_EVENTS,
    "config": open("$WORK/gateway.yaml").read().replace("$WORK/", ""),
    "loadavg": "before the rounds $LOAD_BEFORE, after them $LOAD_AFTER",
    "notes": [n for n in sys.argv[2:]] + ["Veilgate's access log (one JSON line per request on stdout) goes to a file, as does nginx's (buffered).",
              "Veilgate RSS of the load process: $((IDLE_LOAD_KB / 1024)) MB before the rounds, $((AFTER_LOAD_KB / 1024)) MB after them."],
}, open(sys.argv[1], "w"))
EOF
# benches/breakdown.sh's section of RESULTS.md is kept.
KEPT=""
if [ -f "$OUT" ]; then
    KEPT=$(python3 -c 'import re, sys
m = re.search(r"<!-- breakdown -->.*<!-- /breakdown -->", open(sys.argv[1]).read(), re.S)
print(m.group(0) if m else "")' "$OUT")
fi
python3 "$SUP/load_report.py" "$WORK" >"$OUT"
if [ -n "$KEPT" ]; then printf '\n%s\n' "$KEPT" >>"$OUT"; fi
cat "$OUT"
echo >&2
echo "written to $OUT" >&2
