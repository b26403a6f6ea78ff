#!/usr/bin/env python3
"""Turns soak.py's JSON into benches/SOAK.md. Usage: soak_report.py SOAK_JSON META_JSON"""

import json
import statistics
import sys


def slope_per_hour(points):
    """Least-squares slope of (seconds, KB) points, in MB per hour."""
    if len(points) < 2:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den * 3600 / 1024


def main():
    soak = json.load(open(sys.argv[1]))
    meta = json.load(open(sys.argv[2]))
    samples = soak["samples"]
    traffic = [s for s in samples if s["phase"] == "traffic"]
    idle = next((s for s in samples if s["phase"] == "idle"), None)
    after = next((s for s in samples if s["phase"] == "after"), None)
    interval = soak["interval"]
    rate = soak["rate"]
    rate_text = f"about {rate:.0f} requests/s in total" if rate else "as fast as possible"

    out = ["# Veilgate soak: latest results\n",
           f"- Date: {meta['date']}",
           f"- Machine: {meta['machine']}",
           f"- Gateway: {meta['git']}, release build, {meta['gateway_threads']} worker threads",
           f"- Command: `{meta['command']}`",
           f"- Machine load (1/5/15-min load average; the machine is shared): {meta.get('loadavg', 'n/a')}",
           f"- Traffic: {soak['concurrency']} concurrent clients (keep-alive, Python asyncio), "
           f"{rate_text}, "
           f"for {soak['duration']:.0f} s, against a Python mock upstream (streams: events 10 ms apart).",
           f"- Redaction: {meta['redaction_note']}",
           f"- Sampled every {interval:.0f} s: VmRSS from /proc/<pid>/status and the number of entries in "
           "/proc/<pid>/fd.", ""]

    # The table over time.
    out.append("| t (s) | phase | RSS (MB) | open fds | requests in interval | req/s | unexpected |")
    out.append("|---|---|---|---|---|---|---|")
    prev_t = 0
    for s in samples:
        span = s["t"] - prev_t if s["phase"] == "traffic" else 0
        rps = f"{s['requests'] / span:,.0f}" if span else "—"
        out.append(f"| {s['t']} | {s['phase']} | {s['rss_kb'] / 1024:.1f} | {s['fds']} | "
                   f"{s['requests']:,} | {rps} | {s['unexpected']} |")
        if s["phase"] == "traffic":
            prev_t = s["t"]
    out.append("")

    # Verdict.
    verdict = []
    n = len(traffic)
    mem_ok = fd_ok = None
    if soak["died"]:
        verdict.append("**The gateway process died during the soak.**")
    if n >= 6:
        mid, last = traffic[n // 3: 2 * n // 3], traffic[2 * n // 3:]
        mid_rss = statistics.fmean(s["rss_kb"] for s in mid)
        last_rss = statistics.fmean(s["rss_kb"] for s in last)
        delta = last_rss - mid_rss
        allowed = max(1024, 0.03 * mid_rss)
        slope = slope_per_hour([(s["t"], s["rss_kb"]) for s in mid + last])
        mem_ok = delta <= allowed
        verdict.append(
            f"Memory {'**settled**' if mem_ok else '**still growing**'}: mean RSS of the last third "
            f"{last_rss / 1024:.1f} MB vs the middle third {mid_rss / 1024:.1f} MB ({delta / 1024:+.2f} MB; "
            f"allowed +{allowed / 1024:.1f} MB); least-squares slope over the last two thirds "
            f"{slope:+.1f} MB/hour. Peak {max(s['rss_kb'] for s in traffic) / 1024:.1f} MB; first sample under "
            f"traffic {traffic[0]['rss_kb'] / 1024:.1f} MB; idle before {idle['rss_kb'] / 1024:.1f} MB"
            + (f", idle after {after['rss_kb'] / 1024:.1f} MB." if after else "."))
        mid_fd = statistics.fmean(s["fds"] for s in mid)
        last_fd = statistics.fmean(s["fds"] for s in last)
        fd_ok = last_fd <= mid_fd * 1.1 + 5
        verdict.append(
            f"Descriptors {'**stable**' if fd_ok else '**growing**'}: mean {last_fd:.0f} in the last third vs "
            f"{mid_fd:.0f} in the middle third (max {max(s['fds'] for s in traffic)}); idle before "
            f"{idle['fds']}" + (f", idle after {after['fds']}." if after else "."))
    else:
        verdict.append(f"Too few samples under traffic ({n}) to judge; run longer (at least 60 s).")

    total = sum(soak["total"].values())
    bad = sum(soak["bad"].values())
    verdict.append(f"Requests: {total:,} in total, {bad:,} with an unexpected answer.")
    if meta.get("redaction_on"):
        verdict.append(f"Secret split across stream events reached a client whole: {soak['leaks']} times "
                       f"(of {soak['total']['chat_stream_secret']:,}).")
    else:
        verdict.append("Secret-leak check not applicable: redaction is off in this run.")
    out.append("## Verdict\n")
    out += [f"- {v}" for v in verdict]
    out.append("")

    out.append("## Requests by kind\n")
    out.append("| kind | requests | unexpected | statuses |")
    out.append("|---|---|---|---|")
    for k, cnt in soak["total"].items():
        st = ", ".join(f"{s}: {c:,}" for s, c in sorted(soak["statuses"][k].items()))
        out.append(f"| {k} | {cnt:,} | {soak['bad'][k]:,} | {st} |")
    if soak["errors"]:
        out.append("\nClient-side exceptions: " + ", ".join(f"{k} × {v}" for k, v in sorted(soak["errors"].items())))
    out.append("")
    out.append("<details><summary>Gateway config used</summary>\n")
    out.append("```yaml\n" + meta["config"].rstrip() + "\n```")
    out.append("\n</details>")
    print("\n".join(out))
    ok = not soak["died"] and mem_ok is not False and fd_ok is not False
    sys.exit(0 if ok else 2)


if __name__ == "__main__":
    main()
