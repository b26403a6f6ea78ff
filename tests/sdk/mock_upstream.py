"""A mock OpenAI upstream for the SDK tests: answers every endpoint the gateway routes, records
each request byte for byte."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USAGE = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}

# What the mock Anthropic upstream puts in every answer: a secret the gateway must redact.
GH_TOKEN = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d"
SIGNATURE = "EqQBCkgIARABGAIiQLmZ4s5z0VAaT1c2S0P5"
ANTHROPIC_USAGE = {"input_tokens": 20, "cache_read_input_tokens": 100,
                   "cache_creation_input_tokens": 0, "output_tokens": 12}


def _pieces(text):
    """Three pieces, the second cutting through the secret when the text holds it."""
    at = text.find(GH_TOKEN)
    at = len(text) // 3 if at < 0 else at + 7
    return [text[:at], text[at:at + 11], text[at + 11:]]


def _anthropic(model, stream, thinking):
    """An answer with a thinking block (when asked for), a text and a tool call; a model whose
    name ends in `-text` answers with the text only (what an agent can finish a turn on)."""
    think = f"I must not repeat {GH_TOKEN}."
    text = f"Here is {GH_TOKEN}."
    tool_input = {"command": f"echo {GH_TOKEN}"}
    content = []
    if thinking:
        content.append({"type": "thinking", "thinking": think, "signature": SIGNATURE})
    content.append({"type": "text", "text": text})
    stop = "end_turn"
    if not model.endswith("-text"):
        content.append({"type": "tool_use", "id": "toolu_1", "name": "bash", "input": tool_input})
        stop = "tool_use"
    if not stream:
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": ANTHROPIC_USAGE}
    events = [{"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": dict(ANTHROPIC_USAGE, output_tokens=1)}}]
    for i, block in enumerate(content):
        if block["type"] == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(think)]
            deltas.append({"type": "signature_delta", "signature": SIGNATURE})
        elif block["type"] == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(text)]
        else:
            start = {"type": "tool_use", "id": "toolu_1", "name": "bash", "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p}
                      for p in _pieces(json.dumps(tool_input))]
        events.append({"type": "content_block_start", "index": i, "content_block": start})
        events += [{"type": "content_block_delta", "index": i, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": i})
    events.append({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                   "usage": {"output_tokens": 12}})
    events.append({"type": "message_stop"})
    return events


def _chunk(model, delta, finish=None):
    return {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _response(model, status, text):
    output = []
    if text:
        output = [{
            "type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }]
    return {
        "id": "resp_mock", "object": "response", "created_at": 1, "status": status, "model": model,
        "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    }


class MockUpstream:
    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _read_body(self):
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return body
                        body += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("content-length", "0")))

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def _handle(self, method):
                body = self._read_body()
                with owner.lock:
                    owner.requests.append({
                        "method": method, "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                    })
                path = self.path.split("?")[0]
                try:
                    payload = json.loads(body) if body and body[:1] == b"{" else {}
                except ValueError:
                    payload = {}
                model = payload.get("model", "unknown")
                stream = payload.get("stream", False)
                if path.endswith("/messages/count_tokens"):
                    return self._json(200, {"input_tokens": 42})
                if path.endswith("/messages"):
                    answer = _anthropic(model, stream, "thinking" in payload)
                    if stream:
                        return self._sse([f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in answer])
                    return self._json(200, answer)
                if path.endswith("/chat/completions"):
                    if stream:
                        events = [_chunk(model, {"role": "assistant", "content": ""})]
                        events += [_chunk(model, {"content": w}) for w in ["Hello", " from", " mock"]]
                        events.append(_chunk(model, {}, "stop"))
                        return self._sse([f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"])
                    if payload.get("tools"):
                        message = {"role": "assistant", "content": None, "tool_calls": [{
                            "id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}
                        finish = "tool_calls"
                    else:
                        message = {"role": "assistant", "content": f"Hello from mock ({model})"}
                        finish = "stop"
                    return self._json(200, {
                        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": model,
                        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                        "usage": USAGE})
                if path.endswith("/completions"):
                    return self._json(200, {
                        "id": "cmpl-mock", "object": "text_completion", "created": 1, "model": model,
                        "choices": [{"index": 0, "text": "Hello from mock", "finish_reason": "stop", "logprobs": None}],
                        "usage": USAGE})
                if path.endswith("/embeddings"):
                    return self._json(200, {
                        "object": "list", "model": model,
                        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                        "usage": {"prompt_tokens": 2, "total_tokens": 2}})
                if path.endswith("/responses"):
                    if stream:
                        events = [{"type": "response.created", "sequence_number": 0,
                                   "response": _response(model, "in_progress", "")}]
                        for i, w in enumerate(["Hello", " from", " mock"]):
                            events.append({"type": "response.output_text.delta", "sequence_number": i + 1,
                                           "item_id": "msg_1", "output_index": 0, "content_index": 0,
                                           "delta": w, "logprobs": []})
                        events.append({"type": "response.completed", "sequence_number": 4,
                                       "response": _response(model, "completed", "Hello from mock")})
                        return self._sse([f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events])
                    return self._json(200, _response(model, "completed", f"Hello from mock ({model})"))
                if path.endswith("/audio/speech"):
                    audio = bytes(range(256)) * 16
                    self.send_response(200)
                    self.send_header("content-type", "audio/mpeg")
                    self.send_header("content-length", str(len(audio)))
                    self.end_headers()
                    self.wfile.write(audio)
                    return
                if "/audio/" in path:
                    return self._json(200, {"text": f"transcribed {len(body)} bytes"})
                if path.endswith("/moderations"):
                    return self._json(200, {"id": "modr-1", "model": model, "results": [
                        {"flagged": False, "categories": {}, "category_scores": {}}]})
                if path.startswith("/v1/images/"):
                    return self._json(200, {"created": 1, "data": [
                        {"b64_json": "iVBORw0KGgo" + "A" * 120, "revised_prompt": f"seen by {model}"}]})
                if method == "GET" and path == "/v1/models":
                    return self._json(200, {"object": "list", "data": [
                        {"id": i, "object": "model", "created": 1, "owned_by": "upstream"}
                        for i in ["gpt-4o", "gpt-4.1-mini", "dall-e-3", "whisper-1"]]})
                return self._json(200, {"object": "list", "data": []})

            def _json(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, events):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for e in events:
                    data = e.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v1"

    def last(self):
        with self.lock:
            return self.requests[-1]

    def stop(self):
        self.server.shutdown()
