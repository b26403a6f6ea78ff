#!/usr/bin/env bash
# Soak: mixed traffic against one gateway for a while, watching its memory and descriptors.
# Every 10 s it records the gateway's RSS and open descriptors; at the end it prints a table
# over time and a verdict (did memory settle?) and writes them to benches/SOAK.md.
#
#   benches/soak.sh                  10 minutes
#   benches/soak.sh --duration 180   3 minutes (seconds)
#
# The traffic (benches/support/soak.py): chat completions and the Responses API, whole and
# streamed; a streamed secret split across events; clients that disconnect mid-stream; unknown
# model (404), bad JSON (400), an upstream answering 500, an unknown key (401), GET /v1/models.
# The upstream is benches/support/mock_upstream.py.
#
# Environment: RATE [200] requests/s in total (0 = as fast as possible), CONCURRENCY [48],
# INTERVAL [10] seconds between samples, GATEWAY_THREADS [nproc], REDACTION_FILE
# [support/redaction.yaml], VEILGATE_BIN (else cargo build --release, honouring
# CARGO_TARGET_DIR), OUT [benches/SOAK.md], KEEP=1 keeps the temp dir.
# Exit status: 0 when memory settled and descriptors were stable, 2 when not, 1 on errors.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SUP=$HERE/support
# shellcheck source=support/common.sh
source "$SUP/common.sh"

ENV_SET="$(for v in RATE CONCURRENCY INTERVAL GATEWAY_THREADS REDACTION_FILE; do
    [ -n "${!v:-}" ] && printf '%s=%s ' "$v" "${!v}"; done; true)"
DURATION=600
while (($#)); do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --duration=*) DURATION=${1#*=}; shift ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (try --duration SECONDS)" >&2; exit 1 ;;
    esac
done
RATE=${RATE:-200} CONCURRENCY=${CONCURRENCY:-48} INTERVAL=${INTERVAL:-10}
GATEWAY_THREADS=${GATEWAY_THREADS:-$(nproc)}
REDACTION_FILE=${REDACTION_FILE:-$SUP/redaction.yaml}
OUT=${OUT:-$HERE/SOAK.md}
COMMAND="${ENV_SET}benches/soak.sh --duration $DURATION"

ensure_tools python3
build_gateway
raise_nofile

WORK=$(mktemp -d /tmp/veilgate-soak.XXXXXX)
cleanup() {
    stop_all
    if [ "${KEEP:-0}" = 1 ]; then echo "raw outputs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r MOCK_PORT GW_PORT ADMIN_PORT < <(free_ports 3)
python3 "$SUP/mock_upstream.py" --port "$MOCK_PORT" --gap-ms 10 >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT"

write_config() { # write_config REDACTION_SNIPPET_FILE
    cat >"$WORK/gateway.yaml" <<EOF
# The gateway of benches/soak.sh.
environment: soak
listen: 127.0.0.1:$GW_PORT
admin: 127.0.0.1:$ADMIN_PORT
upstreams:
  mock:
    url: http://127.0.0.1:$MOCK_PORT/v1
  failing:
    url: http://127.0.0.1:$MOCK_PORT/fail/v1
routes:
  - models: [soak-chat, soak-secret]
    upstream: mock
  - models: [soak-fail]
    upstream: failing
keys:
  - name: soak
    key: vk-soak
    limits: {requests_per_minute: 100000000, tokens_per_minute: 1000000000}
EOF
    cat "$1" >>"$WORK/gateway.yaml"
}
write_config "$REDACTION_FILE"
REDACTION_ON=True
if [ "$REDACTION_FILE" = "$SUP/redaction.yaml" ]; then
    REDACTION_NOTE="on in both directions: secrets and personal data redacted in requests and responses (see the config below)"
else
    REDACTION_NOTE="as set by \`$(basename "$REDACTION_FILE")\` (see the config below)"
fi
if ! "$BIN" check --config "$WORK/gateway.yaml" >"$WORK/check.log" 2>&1; then
    echo "!! the config loader rejects the redaction section; soaking WITHOUT redaction:" >&2
    sed 's/^/   /' "$WORK/check.log" >&2
    REDACTION_ON=False
    REDACTION_NOTE="**OFF — this build's config loader rejects the \`redaction:\` section** ($(head -1 "$WORK/check.log" | sed "s|$WORK/||"))"
    : >"$WORK/empty.yaml"
    write_config "$WORK/empty.yaml"
    "$BIN" check --config "$WORK/gateway.yaml" >&2
fi

"$BIN" --config "$WORK/gateway.yaml" --threads "$GATEWAY_THREADS" --upgrade-sock "$WORK/upgrade.sock" \
    >"$WORK/access.log" 2>"$WORK/gateway.log" &
GW_PID=$!
PIDS+=("$GW_PID")
wait_port "$GW_PORT" "$GW_PID"
wait_port "$ADMIN_PORT" "$GW_PID"
sleep 1

LOAD_BEFORE=$(loadavg)
echo "==> soaking for $DURATION s (RATE=$RATE, CONCURRENCY=$CONCURRENCY), sampling every $INTERVAL s" >&2
python3 "$SUP/soak.py" --port "$GW_PORT" --pid "$GW_PID" --duration "$DURATION" --interval "$INTERVAL" \
    --concurrency "$CONCURRENCY" --rate "$RATE" --out "$WORK/soak.json"

python3 - "$WORK/meta.json" <<EOF
import json, sys
json.dump({
    "date": "$(date -u '+%Y-%m-%d %H:%M UTC')", "machine": """$(machine_line)""", "git": """$(describe_build)""",
    "command": """$COMMAND""", "redaction_note": """$REDACTION_NOTE""", "redaction_on": $REDACTION_ON,
    "gateway_threads": $GATEWAY_THREADS, "loadavg": "before $LOAD_BEFORE, at the end $(loadavg)",
    "config": open("$WORK/gateway.yaml").read(),
}, open(sys.argv[1], "w"))
EOF
status=0
python3 "$SUP/soak_report.py" "$WORK/soak.json" "$WORK/meta.json" >"$OUT" || status=$?
cat "$OUT"
echo >&2
echo "written to $OUT" >&2
if grep -qi 'panick' "$WORK/gateway.log"; then
    echo "!! the gateway log mentions a panic:" >&2
    grep -i -m5 'panick' "$WORK/gateway.log" >&2
    status=1
fi
exit "$status"
