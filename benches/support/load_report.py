#!/usr/bin/env python3
"""Turns the raw outputs of benches/load.sh (wrk text, stream JSON, memory JSON) into the
markdown of benches/RESULTS.md. Usage: load_report.py WORKDIR > RESULTS.md"""

import json
import os
import re
import statistics
import sys

TARGETS = ("direct", "nginx", "pingora", "gateway")
PROXIES = TARGETS[1:]
UNIT = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def parse_wrk(path):
    text = open(path).read()
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else None
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        out[f"p{p}_us"] = float(m.group(1)) * UNIT[m.group(2)] if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["sockerr"] = sum(map(int, m.groups())) if m else 0
    return out


def rounds(work, kind):
    """{target: [per-round dict]} for wrk-<kind>-<target>-<r>.txt or ttfe-<target>-<r>.json."""
    res = {t: [] for t in TARGETS}
    r = 1
    while True:
        found = False
        for t in TARGETS:
            if kind == "ttfe":
                p = os.path.join(work, f"ttfe-{t}-{r}.json")
                if os.path.exists(p):
                    res[t].append(json.load(open(p)))
                    found = True
            elif kind == "cpu":
                p = os.path.join(work, f"cpu-{t}-{r}.txt")
                if os.path.exists(p):
                    ticks, hz = map(int, open(p).read().split())
                    res[t].append({"cpu_s": ticks / hz})
                    found = True
            else:
                p = os.path.join(work, f"wrk-{kind}-{t}-{r}.txt")
                if os.path.exists(p):
                    res[t].append(parse_wrk(p))
                    found = True
        if not found:
            return res
        r += 1


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def added(res, target, key):
    """Median over rounds of (target - direct) for the same round."""
    diffs = [t[key] - d[key] for t, d in zip(res[target], res["direct"])
             if t.get(key) is not None and d.get(key) is not None]
    return med(diffs)


def f0(x, unit=""):
    return "n/a" if x is None else f"{x:,.0f}{unit}"


def f2(x):
    return "n/a" if x is None else f"{x:.2f}"


def signed(x):
    return "n/a" if x is None else f"{x:+,.0f}"


def ok(cond):
    return "n/a" if cond is None else ("✅ met" if cond else "❌ missed")


def main():
    work = sys.argv[1]
    meta = json.load(open(os.path.join(work, "meta.json")))
    thr, seq, tt, cpu = rounds(work, "thr"), rounds(work, "seq"), rounds(work, "ttfe"), rounds(work, "cpu")
    # CPU µs per request of each throughput run: the process's CPU time over wrk's request count.
    for t in TARGETS:
        for c, w in zip(cpu[t], thr[t]):
            c["us_per_req"] = c["cpu_s"] * 1e6 / w["requests"] if w.get("requests") else None
    mem = json.load(open(os.path.join(work, "mem.json"))) if os.path.exists(os.path.join(work, "mem.json")) else {}

    def m(res, t, key):
        return med([r.get(key) for r in res[t]])

    rps = {t: m(thr, t, "rps") for t in TARGETS}
    ratio = rps["gateway"] / rps["nginx"] if rps["gateway"] and rps["nginx"] else None
    floor_ratio = rps["gateway"] / rps["pingora"] if rps["gateway"] and rps["pingora"] else None
    cpu_us = {t: m(cpu, t, "us_per_req") for t in TARGETS}
    add_seq_p50 = {t: added(seq, t, "p50_us") for t in PROXIES}
    add_seq_p99 = {t: added(seq, t, "p99_us") for t in PROXIES}
    seq_gap = (add_seq_p50["gateway"] - add_seq_p50["nginx"]
               if None not in (add_seq_p50["gateway"], add_seq_p50["nginx"]) else None)
    add_tt_p50 = {t: added(tt, t, "first_p50_us") for t in PROXIES}
    add_tt_p99 = {t: added(tt, t, "first_p99_us") for t in PROXIES}

    rows = []
    R = rows.append
    n = meta["rounds"]
    R(("Throughput, wrk -t%s -c%s -d%ss (req/s, median of %d rounds)" % (meta["threads"], meta["connections"], meta["duration"], n),
       *(f0(rps[t]) for t in TARGETS),
       "n/a" if ratio is None else f"{ratio:.2f}× nginx"
       + ("" if floor_ratio is None else f" ({floor_ratio:.2f}× plain Pingora)"),
       "≥ 0.80× nginx", ok(None if ratio is None else ratio >= 0.8)))
    cpu_ratio = cpu_us["gateway"] / cpu_us["nginx"] if cpu_us["gateway"] and cpu_us["nginx"] else None
    R(("CPU per request under that load (µs, user + system; direct: the upstream's)", *(f0(cpu_us[t]) for t in TARGETS),
       "n/a" if cpu_ratio is None else f"{cpu_ratio:.1f}× nginx's", "", ""))
    for p in ("50", "99"):
        R((f"Latency p{p} under that load (ms)", *(f2(None if m(thr, t, f"p{p}_us") is None else m(thr, t, f"p{p}_us") / 1000) for t in TARGETS), "", "", ""))
    for p in ("50", "99"):
        R((f"Sequential latency p{p}, wrk -t1 -c1 (µs)", *(f0(m(seq, t, f"p{p}_us")) for t in TARGETS), "", "", ""))
    R(("Sequential: added over direct, p50 (µs)", "—", *(signed(add_seq_p50[t]) for t in PROXIES),
       "n/a" if seq_gap is None else f"{seq_gap:+,.0f} µs vs nginx", "≤ +100 µs vs nginx", ok(None if seq_gap is None else seq_gap <= 100)))
    R(("Sequential: added over direct, p99 (µs)", "—", *(signed(add_seq_p99[t]) for t in PROXIES), "", "", ""))
    for p in ("50", "99"):
        R((f"Stream: time to first event p{p} (µs)", *(f0(m(tt, t, f"first_p{p}_us")) for t in TARGETS), "", "", ""))
    g50 = add_tt_p50["gateway"]
    R(("Stream: added time to first event, p50 (µs)", "—", *(signed(add_tt_p50[t]) for t in PROXIES),
       "n/a" if g50 is None else f"{g50 / 1000:.3f} ms", "< 1 ms", ok(None if g50 is None else g50 < 1000)))
    g99 = add_tt_p99["gateway"]
    R(("Stream: added time to first event, p99 (µs)", "—", *(signed(add_tt_p99[t]) for t in PROXIES),
       "n/a" if g99 is None else f"{g99 / 1000:.3f} ms", "< 1 ms", ok(None if g99 is None else g99 < 1000)))
    if mem:
        mb = lambda kb: None if kb is None else kb / 1024  # noqa: E731
        idle, hold, after = mb(mem.get("idle_kb")), mem.get("hold", {}), mb(mem.get("after_kb"))
        peak = mb(hold.get("rss_open_peak_kb"))
        opened = hold.get("opened", 0)
        plain = mem.get("plain", {})
        p_idle, p_hold, p_after = mb(plain.get("idle_kb")), plain.get("hold", {}), mb(plain.get("after_kb"))
        p_peak = mb(p_hold.get("rss_open_peak_kb"))
        p_opened = p_hold.get("opened", 0)

        def per_stream(peak, idle, opened):
            return "—" if None in (peak, idle) or not opened else f"{(peak - idle) * 1024 / opened:.0f}"

        R(("RSS idle, fresh process (MB)", "—", "—", f2(p_idle), f2(idle), "", "", ""))
        R((f"RSS at {opened:,} open streams (MB, peak; wanted {hold.get('n', 0):,})", "—", "—", f2(p_peak), f2(peak),
           "n/a" if peak is None else f"{peak:.1f} MB", "< 64 MB", ok(None if peak is None else peak < 64 and opened == hold.get("n"))))
        R(("RSS per open stream, over idle (KB)", "—", "—", per_stream(p_peak, p_idle, p_opened),
           per_stream(peak, idle, opened), "", "", ""))
        near = None if None in (idle, after) else after <= max(idle * 1.25, idle + 8)
        R((f"RSS {mem.get('after_wait_s', 5)} s after they finished (MB)", "—", "—", f2(p_after), f2(after),
           "n/a" if None in (idle, after) else f"{after - idle:+.1f} MB vs idle", "near idle (≤ idle +25% or +8 MB)", ok(near)))
        if mem.get("after20_kb"):
            R(("RSS 20 s after they finished (MB)", "—", "—", f2(mb(plain.get("after20_kb"))), f2(mb(mem["after20_kb"])),
               f"{mb(mem['after20_kb']) - idle:+.1f} MB vs idle", "", ""))
        if mem.get("after_load_kb"):
            R(("Veilgate RSS after the wrk rounds, load process (MB)", "—", "—", "—", f2(mb(mem["after_load_kb"])), "", "", ""))

    head = ("Measure", "direct upstream", "nginx proxy", "plain Pingora", "Veilgate", "Veilgate result", "Target", "")
    table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    table += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]

    errors = []
    for kind, res in (("throughput", thr), ("sequential", seq)):
        for t in TARGETS:
            bad = sum(r["non2xx"] for r in res[t]); se = sum(r["sockerr"] for r in res[t])
            if bad or se:
                errors.append(f"{kind} {t}: {bad} non-2xx answers, {se} socket errors")
    for t in TARGETS:
        bad = sum(r.get("bad", 0) for r in tt[t])
        if bad:
            errors.append(f"streams {t}: {bad} requests without a 200 stream")
    if mem.get("hold", {}).get("failures"):
        errors.append(f"open streams: failures {mem['hold']['failures']}")

    per_round = ["| Round | " + " | ".join(f"{t} req/s" for t in TARGETS) + " | " +
                 " | ".join(f"{t} seq p50 µs" for t in TARGETS) + " | " +
                 " | ".join(f"{t} first event p50 µs" for t in TARGETS) + " |",
                 "|" + "---|" * (1 + 3 * len(TARGETS))]
    for i in range(n):
        def g(res, t, key, i=i):
            return res[t][i].get(key) if i < len(res[t]) else None
        per_round.append(f"| {i + 1} | " + " | ".join(f0(g(thr, t, "rps")) for t in TARGETS) + " | " +
                         " | ".join(f0(g(seq, t, "p50_us")) for t in TARGETS) + " | " +
                         " | ".join(f0(g(tt, t, "first_p50_us")) for t in TARGETS) + " |")

    out = []
    out.append("# Veilgate load benchmark: latest results\n")
    out.append(f"- Date: {meta['date']}")
    out.append(f"- Machine: {meta['machine']}")
    out.append(f"- Gateway: {meta['git']}, release build, {meta['gateway_threads']} worker threads; "
               f"nginx {meta['nginx_version']} ({meta['nginx_workers']} workers) as the reference proxy; {meta['wrk_version']}")
    out.append(f"- Command: `{meta['command']}`")
    out.append(f"- Machine load (1/5/15-min load average; the machine is shared): {meta.get('loadavg', 'n/a')}")
    out.append(f"- Redaction: {meta['redaction_note']}")
    out.append("- Everything on loopback on the same machine: the load generator, the static upstream "
               "(nginx answering canned JSON / SSE), the proxy under test. Rounds interleave the four "
               "targets (order rotated each round) so drift hits all alike; each figure is the median over rounds.")
    out.append("- Plain Pingora: `examples/plain_pingora.rs`, Pingora's own proxy with no policy at all (no body "
               "read, no redaction, limits, telemetry or log), one runtime per thread, mimalloc and no socket read "
               "buffer as the gateway runs: the "
               "floor of anything built on Pingora 0.9.1. CPU per request: the process's user + system time "
               "during the throughput run over the requests wrk completed (nginx: its workers).")
    out.append(f"- Request: a {meta['request_bytes']}-byte chat completion (system + user message, plausible "
               f"text, no secrets or PII in it), `Authorization: Bearer vk-bench`; answer {meta['response_bytes']} bytes "
               f"JSON, or a {meta['sse_bytes']}-byte SSE stream ({meta['sse_events']} events).")
    out.append("- Added latency = the proxy's figure minus the direct figure of the same round. Time to first "
               "event = from sending a streamed request (keep-alive connection, sequential, "
               f"{meta['ttfe_n']} requests per round) to the first `data:` byte.")
    out.append(f"- Memory: a fresh gateway (same config); {meta['streams']:,} streams opened at once through it to "
               f"an upstream that sends one event per second for {meta['hold']} s; RSS (VmRSS) sampled every 0.25 s "
               "while all are open; then the same through a fresh plain Pingora (same allocator and socket "
               "buffers as the gateway).")
    out.append("")
    out += table
    out.append("")
    if errors:
        out.append("**Errors seen during the run** (figures above include them):\n")
        out += [f"- {e}" for e in errors]
        out.append("")
    if meta.get("notes"):
        out += [f"- {n_}" for n_ in meta["notes"]]
        out.append("")
    out.append("<details><summary>Per round</summary>\n")
    out += per_round
    out.append("\n</details>\n")
    out.append("<details><summary>Gateway config used</summary>\n")
    out.append("```yaml\n" + meta["config"].rstrip() + "\n```")
    out.append("\n</details>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
