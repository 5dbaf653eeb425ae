"""Reading admin HTTP/1.1 requests with bounds on size and time.

The admin listener faces whoever can reach it, so nothing a client sends may
make the main process hold unbounded memory or a connection forever: the
request line, the header block and any body have size limits, and a request's
head must arrive within a deadline. A request over a limit gets the status a
client can act on (414, 431, 413, 408) and the connection is closed.
"""
from __future__ import annotations

import asyncio
from typing import Dict, NamedTuple, Optional

#: Longest request line ("GET /stats?filter=... HTTP/1.1").
MAX_REQUEST_LINE = 16 * 1024
#: Largest header block, and most header fields (Envoy's defaults:
#: max_request_headers_kb 60, max_headers_count 100).
MAX_HEADER_BYTES = 60 * 1024
MAX_HEADERS = 100
#: Largest body read (and discarded): no admin endpoint takes one.
MAX_BODY = 64 * 1024
#: A request's head must be complete this long after its first byte.
HEADER_TIMEOUT_S = 10.0
#: An idle keep-alive connection is closed after this long.
IDLE_TIMEOUT_S = 60.0
#: Buffer limit of the stream reader (any single line longer is refused).
READ_LIMIT = MAX_HEADER_BYTES + 1024

#: Methods the HTTP/1.1 codec knows; any other is a 400 as in Envoy.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                     "PATCH"))


class Request(NamedTuple):
    method: str
    target: str
    version: str
    headers: Dict[str, str]

    @property
    def close(self) -> bool:
        return self.headers.get("connection", "").lower() == "close" or self.version == "HTTP/1.0"


class HttpError(Exception):
    """A request that is answered with `status` and a closed connection."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


async def _line(reader: asyncio.StreamReader, limit: int, status: int, what: str) -> bytes:
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(status, what) from None
    if len(line) > limit:
        raise HttpError(status, what)
    return line[:-2]


async def _read_head(reader: asyncio.StreamReader, first: bytes) -> Request:
    line = first + await _line(reader, MAX_REQUEST_LINE, 414, "URI Too Long")
    if len(line) > MAX_REQUEST_LINE:
        raise HttpError(414, "URI Too Long")
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "Bad Request")
    method, target, version = parts
    if method not in METHODS:
        raise HttpError(400, "Bad Request")
    headers: Dict[str, str] = {}
    size = count = 0
    while True:
        raw = await _line(reader, MAX_HEADER_BYTES, 431, "Request Header Fields Too Large")
        if not raw:
            break
        size += len(raw) + 2
        count += 1
        if size > MAX_HEADER_BYTES or count > MAX_HEADERS:
            raise HttpError(431, "Request Header Fields Too Large")
        k, sep, v = raw.decode("latin-1").partition(":")
        if not sep or not k or k != k.strip():
            raise HttpError(400, "Bad Request")
        headers[k.lower()] = v.strip()
    return Request(method, target, version, headers)


async def read_request(reader: asyncio.StreamReader,
                       header_timeout: float = HEADER_TIMEOUT_S,
                       idle_timeout: float = IDLE_TIMEOUT_S) -> Optional[Request]:
    """The next request on a connection, its body read and dropped; None when
    the client closed or stayed idle past `idle_timeout`. Raises HttpError."""
    try:
        first = await asyncio.wait_for(reader.readexactly(1), idle_timeout)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError):
        return None
    try:
        req = await asyncio.wait_for(_read_head(reader, first), header_timeout)
    except asyncio.TimeoutError:
        raise HttpError(408, "Request Timeout") from None
    except asyncio.IncompleteReadError:
        return None
    await _discard_body(reader, req.headers, header_timeout)
    return req


async def _discard_body(reader: asyncio.StreamReader, headers: Dict[str, str],
                        timeout: float) -> None:
    """Read a body of at most MAX_BODY bytes and drop it (413 if larger; no
    byte of a larger one is buffered)."""
    te = headers.get("transfer-encoding", "").lower()
    if te and te != "chunked":
        raise HttpError(501, "Not Implemented")
    if te == "chunked":
        if "content-length" in headers:
            raise HttpError(400, "Bad Request")
        try:
            await asyncio.wait_for(_discard_chunked(reader), timeout)
        except asyncio.TimeoutError:
            raise HttpError(408, "Request Timeout") from None
        return
    cl = headers.get("content-length", "")
    if not cl:
        return
    if not cl.isdigit():
        raise HttpError(400, "Bad Request")
    length = int(cl)
    if length > MAX_BODY:
        raise HttpError(413, "Payload Too Large")
    if length:
        try:
            await asyncio.wait_for(reader.readexactly(length), timeout)
        except asyncio.TimeoutError:
            raise HttpError(408, "Request Timeout") from None


async def _discard_chunked(reader: asyncio.StreamReader) -> None:
    total = 0
    while True:
        size_line = await _line(reader, 1024, 400, "Bad Request")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError(400, "Bad Request") from None
        total += size
        if size < 0 or total > MAX_BODY:
            raise HttpError(413, "Payload Too Large")
        if size == 0:
            while await _line(reader, MAX_HEADER_BYTES, 431, "Request Header Fields Too Large"):
                pass                                    # trailers
            return
        await reader.readexactly(size + 2)
