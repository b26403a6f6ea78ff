#!/usr/bin/env python3
"""Stream clients for benches/load.sh (standard library only).

  streams.py ttfe --port P --body FILE [--header 'k: v']... [--n 300]
      Sequential streamed requests over one keep-alive connection; prints JSON with the time to
      the response head and to the first SSE `data:` byte (median, p99, in microseconds).

  streams.py hold --port P --body FILE --pid PID [--n 1000] [--header 'k: v']...
      Opens N streams at once and keeps them open (the upstream must hold them, see
      mock_upstream.py); once all have delivered their first event, samples the VmRSS and open
      descriptors of PID for --sample-seconds, then waits for every stream to end. Prints JSON.
"""

import argparse
import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpc import Conn  # noqa: E402


def pct(values, p):
    s = sorted(values)
    if not s:
        return None
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def parse_headers(items):
    out = []
    for item in items or []:
        k, _, v = item.partition(":")
        out.append((k.strip(), v.strip()))
    return out


async def one_stream(conn, path, body, headers, on_first=None):
    """Sends one streamed request; returns (status, ns to head, ns to first data byte, bytes)."""
    t0 = time.perf_counter_ns()
    await conn.send("POST", path, body, headers)
    status, h = await conn.head()
    t_head = time.perf_counter_ns() - t0
    t_first = None
    total = 0
    seen = b""
    async for piece in conn.body_pieces(h):
        total += len(piece)
        if t_first is None:
            seen += piece
            if b"data:" in seen:
                t_first = time.perf_counter_ns() - t0
                if on_first:
                    on_first()
            seen = seen[-4:]
    return status, t_head, t_first, total


async def ttfe(a):
    body = open(a.body, "rb").read()
    headers = [("content-type", "application/json")] + parse_headers(a.header)
    conn = Conn("127.0.0.1", a.port)
    heads, firsts, bad = [], [], 0
    for i in range(a.warmup + a.n):
        try:
            status, t_head, t_first, _ = await asyncio.wait_for(one_stream(conn, a.path, body, headers), 10)
        except (asyncio.TimeoutError, OSError, ValueError) as e:
            print(f"stream {i}: {type(e).__name__} {e}", file=sys.stderr)
            bad += 1
            await conn.abort()
            if bad >= 3:
                break
            continue
        if status != 200 or t_first is None:
            bad += 1
            continue
        if i >= a.warmup:
            heads.append(t_head / 1000)
            firsts.append(t_first / 1000)
    conn.close()
    print(json.dumps({"n": len(firsts), "bad": bad,
                      "head_p50_us": pct(heads, 50), "head_p99_us": pct(heads, 99),
                      "first_p50_us": pct(firsts, 50), "first_p99_us": pct(firsts, 99)}))


async def hold(a):
    body = open(a.body, "rb").read()
    headers = [("content-type", "application/json")] + parse_headers(a.header)
    opened = 0
    all_open = asyncio.Event()
    connect_gate = asyncio.Semaphore(a.connect_parallel)
    failures = []
    completed = 0

    def first():
        nonlocal opened
        opened += 1
        if opened == a.n:
            all_open.set()

    async def run_one():
        nonlocal completed
        conn = Conn("127.0.0.1", a.port)
        try:
            async with connect_gate:
                await conn.connect()
            status, _, t_first, _ = await one_stream(conn, a.path, body, headers, first)
            if status != 200 or t_first is None:
                failures.append(f"status {status}")
            else:
                completed += 1
        except Exception as e:  # noqa: BLE001 - report every failure kind
            failures.append(type(e).__name__)
        finally:
            conn.close()

    t0 = time.monotonic()
    tasks = [asyncio.create_task(run_one()) for _ in range(a.n)]
    try:
        await asyncio.wait_for(all_open.wait(), a.open_timeout)
    except asyncio.TimeoutError:
        pass
    open_secs = time.monotonic() - t0
    samples, fds = [], []
    end = time.monotonic() + a.sample_seconds
    while time.monotonic() < end:
        samples.append(rss_kb(a.pid))
        fds.append(fd_count(a.pid))
        await asyncio.sleep(0.25)
    still_open = opened - completed  # started and not yet finished when sampling ended
    await asyncio.gather(*tasks)
    print(json.dumps({
        "n": a.n, "opened": opened, "open_seconds": round(open_secs, 2),
        "open_while_sampling": still_open, "completed": completed,
        "failures": {f: failures.count(f) for f in set(failures)},
        "rss_open_peak_kb": max(samples), "rss_open_mean_kb": round(sum(samples) / len(samples)),
        "fds_open_peak": max(fds),
    }))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("ttfe", "hold"):
        s = sub.add_parser(name)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--path", default="/v1/chat/completions")
        s.add_argument("--body", required=True)
        s.add_argument("--header", action="append")
    t = sub.choices["ttfe"]
    t.add_argument("--n", type=int, default=300)
    t.add_argument("--warmup", type=int, default=30)
    h = sub.choices["hold"]
    h.add_argument("--n", type=int, default=1000)
    h.add_argument("--pid", type=int, required=True)
    h.add_argument("--connect-parallel", type=int, default=100)
    h.add_argument("--open-timeout", type=float, default=30)
    h.add_argument("--sample-seconds", type=float, default=4)
    a = p.parse_args()
    asyncio.run(ttfe(a) if a.cmd == "ttfe" else hold(a))


if __name__ == "__main__":
    main()
