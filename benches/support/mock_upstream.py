#!/usr/bin/env python3
"""A small OpenAI-like upstream for the memory test and the soak (standard library only).

  POST /fail/...                      500 with an OpenAI error body (an upstream that fails)
  POST .../chat/completions           JSON, or SSE when "stream": true
  POST .../responses                  JSON, or Responses-API SSE when "stream": true
  model starting with "hold"          SSE that sends one event per second for --hold seconds
  model containing "secret"           the answer carries an AWS-style key split across events
  anything else                       404

Usage: mock_upstream.py --port N [--hold 20] [--gap-ms 10] [--events 12]
Prints "ready <port>" on stdout once listening.
"""

import argparse
import asyncio
import json
import signal

ARGS = None
FAKE_KEY = "AKIAQYLPMN5HHHFPZAM2"  # shape of an AWS access key id; not a real one
WORDS = ("Sure", ",", " here", " is", " a", " short", " answer", " about", " the", " question",
         " you", " asked", ".", " Let", " me", " know", " if", " you", " need", " more", ".")
USAGE = {"prompt_tokens": 212, "completion_tokens": 21, "total_tokens": 233}


def sse(obj, event=None):
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj, separators=(',', ':'))}\n\n".encode()


def chat_chunk(model, delta, finish=None):
    return {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def words_for(model):
    words = list(WORDS)
    if "secret" in model:
        # The key arrives split over three events: the gateway must redact it anyway.
        words[5:5] = [" key", " " + FAKE_KEY[:6], FAKE_KEY[6:13], FAKE_KEY[13:]]
    return words


async def write_chunk(w, data):
    w.write(b"%x\r\n%s\r\n" % (len(data), data))
    await w.drain()


async def sse_head(w):
    w.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
            b"transfer-encoding: chunked\r\n\r\n")
    await w.drain()


async def chat_stream(w, model, body):
    await sse_head(w)
    hold = model.startswith("hold")
    await write_chunk(w, sse(chat_chunk(model, {"role": "assistant", "content": ""})))
    if hold:
        for i in range(ARGS.hold):
            await asyncio.sleep(1)
            await write_chunk(w, sse(chat_chunk(model, {"content": f" tick{i}"})))
    else:
        for word in words_for(model)[: ARGS.events]:
            if ARGS.gap_ms:
                await asyncio.sleep(ARGS.gap_ms / 1000)
            await write_chunk(w, sse(chat_chunk(model, {"content": word})))
    await write_chunk(w, sse(chat_chunk(model, {}, "stop")))
    if (body.get("stream_options") or {}).get("include_usage"):
        await write_chunk(w, sse({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                                  "created": 1, "model": model, "choices": [], "usage": USAGE}))
    await write_chunk(w, b"data: [DONE]\n\n")
    w.write(b"0\r\n\r\n")
    await w.drain()


def response_obj(model, status, text):
    output = [] if not text else [{
        "type": "message", "id": "msg_bench", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}]}]
    return {"id": "resp_bench", "object": "response", "created_at": 1, "status": status,
            "model": model, "output": output,
            "usage": {"input_tokens": 212, "output_tokens": 21, "total_tokens": 233,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}


async def responses_stream(w, model):
    await sse_head(w)
    seq = 0
    await write_chunk(w, sse({"type": "response.created", "sequence_number": seq,
                              "response": response_obj(model, "in_progress", "")}, "response.created"))
    words = words_for(model)[: ARGS.events]
    for word in words:
        seq += 1
        if ARGS.gap_ms:
            await asyncio.sleep(ARGS.gap_ms / 1000)
        await write_chunk(w, sse({"type": "response.output_text.delta", "sequence_number": seq,
                                  "item_id": "msg_bench", "output_index": 0, "content_index": 0,
                                  "delta": word, "logprobs": []}, "response.output_text.delta"))
    seq += 1
    await write_chunk(w, sse({"type": "response.completed", "sequence_number": seq,
                              "response": response_obj(model, "completed", "".join(words))},
                             "response.completed"))
    w.write(b"0\r\n\r\n")
    await w.drain()


async def send_json(w, status, obj):
    data = json.dumps(obj, separators=(",", ":")).encode()
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}.get(status, "X")
    w.write(f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n\r\n".encode() + data)
    await w.drain()


async def answer(w, method, path, raw):
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    model = str(body.get("model", "unknown"))
    stream = body.get("stream") is True
    if path.startswith("/fail"):
        return await send_json(w, 500, {"error": {"message": "The server had an error while processing your request.",
                                                  "type": "server_error", "param": None, "code": None}})
    if path.endswith("/chat/completions"):
        if stream:
            return await chat_stream(w, model, body)
        text = "".join(words_for(model))
        return await send_json(w, 200, {
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop", "logprobs": None}], "usage": USAGE})
    if path.endswith("/responses"):
        if stream:
            return await responses_stream(w, model)
        return await send_json(w, 200, response_obj(model, "completed", "".join(words_for(model))))
    return await send_json(w, 404, {"error": {"message": f"no route {method} {path}", "type": "invalid_request_error",
                                              "param": None, "code": "unknown_url"}})


async def serve(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            method, path, _ = line.decode("latin-1").split(" ", 2)
            length = 0
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            raw = await reader.readexactly(length) if length else b""
            await answer(writer, method, path, raw)
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--hold", type=int, default=20, help="seconds a 'hold*' stream stays open")
    p.add_argument("--gap-ms", type=float, default=10, help="pause between stream events")
    p.add_argument("--events", type=int, default=len(WORDS) + 4)
    ARGS = p.parse_args()
    server = await asyncio.start_server(serve, "127.0.0.1", ARGS.port, backlog=4096)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready {ARGS.port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
