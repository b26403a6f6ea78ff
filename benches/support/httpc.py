"""A minimal asyncio HTTP/1.1 client for the bench and soak scripts (standard library only).

It keeps one connection per `Conn`, understands Content-Length, chunked and close-delimited
bodies, and can hand a body over piece by piece as it arrives (for streams).
"""

import asyncio


class HttpError(Exception):
    pass


class Conn:
    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    @property
    def is_open(self):
        return self.writer is not None and not self.writer.is_closing()

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def abort(self):
        """Closes the socket at once (a client giving up mid-stream)."""
        if self.writer is not None:
            t = self.writer.transport
            t.abort()
        self.reader = self.writer = None

    async def send(self, method, path, body=b"", headers=()):
        if not self.is_open:
            await self.connect()
        head = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}"]
        for k, v in headers:
            head.append(f"{k}: {v}")
        if body or method in ("POST", "PUT"):
            head.append(f"content-length: {len(body)}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        self.writer.write(raw)
        await self.writer.drain()

    async def head(self):
        """Reads a response head: (status, {lowercase name: value})."""
        line = await self.reader.readline()
        if not line:
            raise HttpError("connection closed before a response")
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HttpError(f"bad status line {line!r}")
        status = int(parts[1])
        headers = {}
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    async def body_pieces(self, headers):
        """Yields the body as it arrives; leaves the connection ready for the next request (or
        closed when the body was close-delimited or the server asked to close)."""
        r = self.reader
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = await r.readline()
                if not size_line:
                    raise HttpError("connection closed inside a chunked body")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await r.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                yield await r.readexactly(size)
                await r.readexactly(2)
        elif "content-length" in headers:
            left = int(headers["content-length"])
            while left > 0:
                piece = await r.read(min(left, 65536))
                if not piece:
                    raise HttpError("connection closed inside a body")
                left -= len(piece)
                yield piece
        else:
            while True:
                piece = await r.read(65536)
                if not piece:
                    break
                yield piece
            self.close()
            return
        if headers.get("connection", "").lower() == "close":
            self.close()

    async def request(self, method, path, body=b"", headers=()):
        """One whole exchange: (status, headers, body)."""
        await self.send(method, path, body, headers)
        status, h = await self.head()
        data = bytearray()
        async for piece in self.body_pieces(h):
            data += piece
        return status, h, bytes(data)
