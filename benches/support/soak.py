#!/usr/bin/env python3
"""The traffic and the sampling of benches/soak.sh (standard library only).

Drives a mix of requests at a running gateway for --duration seconds and samples the gateway's
RSS and open descriptors every --interval seconds. Writes the samples and counts as JSON
(--out); soak_report.py turns them into SOAK.md.

The mix (weights): chat completions whole and streamed, Responses API whole and streamed, a
streamed answer carrying an AWS-style key split across events (must never reach the client
whole when redaction is on), client disconnects mid-stream, unknown model (404), bad JSON
(400), an upstream answering 500, an unknown virtual key (401), GET /v1/models.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpc import Conn  # noqa: E402

FAKE_KEY = b"AKIAQYLPMN5HHHFPZAM2"  # what mock_upstream.py puts in "secret" answers

# kind: (weight, accepted statuses)
KINDS = {
    "chat": (20, {200}),
    "chat_stream": (20, {200}),
    "chat_stream_secret": (5, {200}),
    "responses": (8, {200}),
    "responses_stream": (8, {200}),
    "disconnect_mid_stream": (10, {200}),
    "unknown_model_404": (5, {404}),
    "bad_json_400": (5, {400}),
    "upstream_500": (5, {500, 502}),
    "bad_key_401": (3, {401}),
    "models_list": (3, {200}),
}

MESSAGES = [
    {"role": "system", "content": "You are a concise assistant for an internal engineering wiki."},
    {"role": "user", "content": "Summarise the on-call handover checklist in five bullet points. "
                                "Mention that pages go to ops-oncall@example.com and that the runbook "
                                "lives under /wiki/oncall. Keep it under 120 words."},
]


def body_for(kind):
    if kind == "bad_json_400":
        return b'{"model": "soak-chat", "messages": [ {"role": "user", "content": "unterminated'
    model = {"unknown_model_404": "no-such-model-9", "upstream_500": "soak-fail",
             "chat_stream_secret": "soak-secret"}.get(kind, "soak-chat")
    stream = kind in ("chat_stream", "chat_stream_secret", "responses_stream", "disconnect_mid_stream")
    if kind.startswith("responses"):
        b = {"model": model, "input": MESSAGES[1]["content"], "instructions": MESSAGES[0]["content"],
             "max_output_tokens": 200}
    else:
        b = {"model": model, "messages": MESSAGES, "max_tokens": 200}
    if stream:
        b["stream"] = True
    return json.dumps(b).encode()


def stream_text(data):
    """The text a client assembles from a streamed chat completion's deltas."""
    out = []
    for line in data.split(b"\n"):
        if not line.startswith(b"data: {"):
            continue
        try:
            event = json.loads(line[6:])
        except ValueError:
            continue
        for choice in event.get("choices") or []:
            out.append((choice.get("delta") or {}).get("content") or "")
    return "".join(out)


class Stats:
    def __init__(self):
        self.total = {k: 0 for k in KINDS}
        self.bad = {k: 0 for k in KINDS}
        self.statuses = {k: {} for k in KINDS}
        self.leaks = 0
        self.errors = {}
        self.interval_requests = 0
        self.interval_bad = 0

    def record(self, kind, status, ok):
        self.total[kind] += 1
        self.interval_requests += 1
        s = self.statuses[kind]
        s[str(status)] = s.get(str(status), 0) + 1
        if not ok:
            self.bad[kind] += 1
            self.interval_bad += 1


async def one(conn, kind, key, stats):
    headers = [("content-type", "application/json"),
               ("authorization", "Bearer " + ("vk-wrong" if kind == "bad_key_401" else key))]
    if kind == "models_list":
        status, _, _ = await conn.request("GET", "/v1/models", b"", headers)
        stats.record(kind, status, status in KINDS[kind][1])
        return
    path = "/v1/responses" if kind.startswith("responses") else "/v1/chat/completions"
    await conn.send("POST", path, body_for(kind), headers)
    status, h = await conn.head()
    if kind == "disconnect_mid_stream":
        async for piece in conn.body_pieces(h):
            if b"data:" in piece:
                break
        await conn.abort()  # gone mid-stream: the gateway must cancel and clean up
        stats.record(kind, status, status == 200)
        return
    data = bytearray()
    async for piece in conn.body_pieces(h):
        data += piece
    ok = status in KINDS[kind][1]
    if ok and "stream" in kind and status == 200:
        ok = b"[DONE]" in data or b"response.completed" in data
    if kind == "chat_stream_secret" and FAKE_KEY.decode() in stream_text(bytes(data)):
        stats.leaks += 1
    stats.record(kind, status, ok)


async def worker(a, stats, stop, rng):
    conn = Conn("127.0.0.1", a.port)
    names = list(KINDS)
    weights = [KINDS[k][0] for k in names]
    period = a.concurrency / a.rate if a.rate > 0 else 0
    next_at = time.monotonic() + rng.random() * period
    while not stop.is_set():
        kind = rng.choices(names, weights)[0]
        try:
            await asyncio.wait_for(one(conn, kind, a.key, stats), 30)
        except Exception as e:  # noqa: BLE001 - every failure is counted and the soak goes on
            name = f"{kind}: {type(e).__name__}"
            stats.errors[name] = stats.errors.get(name, 0) + 1
            stats.record(kind, "exception", False)
            await conn.abort()
        if period:
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = time.monotonic()
    conn.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--interval", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=48)
    p.add_argument("--rate", type=float, default=200, help="requests per second in total (0: as fast as possible)")
    p.add_argument("--key", default="vk-soak")
    p.add_argument("--settle", type=float, default=10, help="idle seconds after the traffic before the last sample")
    p.add_argument("--out", required=True)
    a = p.parse_args()

    stats = Stats()
    stop = asyncio.Event()
    samples = [{"t": 0, "phase": "idle", "rss_kb": rss_kb(a.pid), "fds": fds(a.pid), "requests": 0, "unexpected": 0}]
    t0 = time.monotonic()
    rng = random.Random(1)
    workers = [asyncio.create_task(worker(a, stats, stop, random.Random(rng.random()))) for _ in range(a.concurrency)]
    died = False
    next_sample = t0 + a.interval
    while True:
        await asyncio.sleep(max(0, next_sample - time.monotonic()))
        t = time.monotonic() - t0
        try:
            rss, fd = rss_kb(a.pid), fds(a.pid)
        except FileNotFoundError:
            died = True
            break
        samples.append({"t": round(t), "phase": "traffic", "rss_kb": rss, "fds": fd,
                        "requests": stats.interval_requests, "unexpected": stats.interval_bad})
        print(f"  t={t:5.0f}s rss={rss / 1024:6.1f} MB fds={fd:4d} requests={stats.interval_requests:6d} "
              f"unexpected={stats.interval_bad}", file=sys.stderr, flush=True)
        stats.interval_requests = stats.interval_bad = 0
        next_sample += a.interval
        if t >= a.duration - 0.5:
            break
    stop.set()
    await asyncio.gather(*workers, return_exceptions=True)
    if not died and a.settle > 0:
        await asyncio.sleep(a.settle)
        try:
            samples.append({"t": round(time.monotonic() - t0), "phase": "after", "rss_kb": rss_kb(a.pid),
                            "fds": fds(a.pid), "requests": stats.interval_requests, "unexpected": stats.interval_bad})
        except FileNotFoundError:
            died = True
    json.dump({"samples": samples, "died": died, "total": stats.total, "bad": stats.bad,
               "statuses": stats.statuses, "errors": stats.errors, "leaks": stats.leaks,
               "duration": a.duration, "interval": a.interval, "concurrency": a.concurrency, "rate": a.rate},
              open(a.out, "w"), indent=1)


if __name__ == "__main__":
    asyncio.run(main())
