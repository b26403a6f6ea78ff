# Shared by benches/load.sh and benches/soak.sh: tools, the gateway binary, processes, ports.
# Sourced, not run. Expects ROOT (the repository) to be set.
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ under benches/support

# Installs what is missing with apt (like scripts/test): ensure_tools nginx wrk ...
ensure_tools() {
    local need=() t
    for t in "$@"; do
        case "$t" in
            nginx) command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx) ;;
            *) command -v "$t" >/dev/null || need+=("$t") ;;
        esac
    done
    if ((${#need[@]})); then
        echo "==> installing ${need[*]}" >&2
        local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    # Debian's nginx lives in /usr/sbin, which is not on every user's PATH.
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

# The release binary: $VEILGATE_BIN if set, else built in ${CARGO_TARGET_DIR:-target}.
build_gateway() {
    if [ -n "${VEILGATE_BIN:-}" ]; then
        BIN=$VEILGATE_BIN
    else
        local target=${CARGO_TARGET_DIR:-$ROOT/target}
        echo "==> cargo build --release (target dir $target)" >&2
        (cd "$ROOT" && cargo build --release --quiet) >&2
        BIN=$target/release/veilgate
    fi
    [ -x "$BIN" ] || { echo "no gateway binary at $BIN" >&2; exit 1; }
}

# Prints N distinct free loopback ports (all bound at once, then released).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Waits until 127.0.0.1:PORT accepts connections (or PID died / 20 s passed).
wait_port() {
    local port=$1 pid=${2:-} i
    for i in $(seq 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            echo "process $pid died before listening on $port" >&2; return 1
        fi
        sleep 0.1
    done
    echo "nothing listens on $port after 20 s" >&2; return 1
}

# Background processes started here, stopped in reverse order on exit (by pid, never by name).
PIDS=()
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}
stop_all() {
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
    PIDS=()
}

# Renders a template: render TEMPLATE OUT KEY=VALUE... replaces @KEY@; a value @file:PATH is
# that file's content.
render() {
    python3 - "$@" <<'EOF'
import sys
src, out, *pairs = sys.argv[1:]
text = open(src).read()
for pair in pairs:
    k, _, v = pair.partition("=")
    if v.startswith("@file:"):
        v = open(v[6:]).read()
    text = text.replace("@" + k + "@", v)
open(out, "w").write(text)
EOF
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }

# Raises the open-file limit as far as allowed (1,000 streams need ~2,000 descriptors).
raise_nofile() {
    local hard; hard=$(ulimit -Hn)
    [ "$hard" = unlimited ] && hard=65536
    [ "$hard" -gt 65536 ] && hard=65536
    ulimit -n "$hard" 2>/dev/null || true
}

machine_line() {
    local cpu; cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    echo "$(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
}

# What was measured: the working tree's git revision, or the prebuilt VEILGATE_BIN (describe it
# with VEILGATE_REV).
describe_build() {
    if [ -n "${VEILGATE_BIN:-}" ]; then
        echo "${VEILGATE_REV:-prebuilt binary $(basename "$VEILGATE_BIN"); working tree at $(git_line)}"
    else
        git_line
    fi
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

git_line() {
    local rev dirty=""
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ] && dirty=" + uncommitted changes"
    echo "$rev$dirty"
}
