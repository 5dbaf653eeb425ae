"""A scriptable HTTP/1.1 upstream for the differential HTTP tests.

`EchoUpstream` answers every request it reads with a JSON echo of what it
received (method, target, version, headers in order with their raw names,
body, framing, connection and request numbers), or with what the request's
query string asks for, so one request line drives both the proxy and the
upstream behind it:

    status=503         the status code (default 200)
    size=N             a body of N pattern bytes instead of the echo
    chunked=1          chunked response
    trailers=1         chunked response ending with trailer `x-trailer: t`
    nolen=1            no Content-Length: the body ends at close
    delay=S            wait S seconds before the response head
    body_delay=S       wait S seconds between the head and the body
    die=N              announce the full length, send N body bytes, close
    reset=1            close the connection without answering
    garbage=1          answer bytes that are not HTTP, then close
    close=1            close after the response (no header saying so)
    conn_close=1       `connection: close` on the response, then close
    early=100|103      an interim 1xx response first
    hdr=name:value     an extra response header (repeatable)
    fail=K             the first K requests for this target (query without
                       fail*) answer `fail_status` (503) instead
    upgrade=0          refuse an Upgrade request with a 200 (the CVE case:
                       a 200 where a 101 was expected); default: 101 and
                       then echo the tunnel bytes

HEAD gets the head a GET would (Content-Length included), no body; 204 and
304 get neither a body nor a Content-Length. Every request is recorded in
`received` before it is answered. Loopback only; every read is bounded.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
import urllib.parse
from typing import Dict, List, Optional, Tuple

from helpers import ThreadedServer, shutdown_all

PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"
BIG_BODY = 2048      # bodies longer than this are echoed as length + sha256
READ_TIMEOUT = 30.0  # an upstream connection idle this long is dropped


def pattern_body(n: int) -> bytes:
    reps = n // len(PATTERN) + 1
    return (PATTERN * reps)[:n]


def body_repr(body: bytes):
    """A body as the echo and the comparison show it: text if short, else
    its length and digest."""
    if len(body) <= BIG_BODY:
        return body.decode("latin-1")
    return {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()[:16]}


def header_value(headers: List[Tuple[str, str]], name: str) -> Optional[str]:
    """The first value of header `name` (any case) in (name, value) pairs."""
    name = name.lower()
    for n, v in headers:
        if n.lower() == name:
            return v
    return None


class _Conn:
    """Buffered reads on one accepted upstream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        sock.settimeout(READ_TIMEOUT)

    def _fill(self) -> bool:
        d = self.sock.recv(65536)
        if not d:
            return False
        self.buf += d
        return True

    def read_until(self, sep: bytes) -> Optional[bytes]:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if not self._fill():
                return None

    def read_n(self, n: int) -> Optional[bytes]:
        while len(self.buf) < n:
            if not self._fill():
                return None
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class Received:
    """One request as the upstream read it."""

    def __init__(self, conn_no: int, req_no: int, method: str, target: str, version: str,
                 headers: List[Tuple[str, str]], body: bytes, framing: str,
                 trailers: List[Tuple[str, str]]) -> None:
        self.conn_no, self.req_no = conn_no, req_no
        self.method, self.target, self.version = method, target, version
        self.headers, self.body, self.framing, self.trailers = headers, body, framing, trailers
        self.tunnel = b""

    def header(self, name: str) -> Optional[str]:
        return header_value(self.headers, name)

    def view(self) -> dict:
        v = {"conn": self.conn_no, "req": self.req_no, "method": self.method,
             "target": self.target, "version": self.version,
             "headers": ["%s: %s" % h for h in self.headers],
             "framing": self.framing, "body": body_repr(self.body)}
        if self.trailers:
            v["trailers"] = ["%s: %s" % h for h in self.trailers]
        if self.tunnel:
            v["tunnel"] = body_repr(self.tunnel)
        return v


def _parse_head(head: bytes):
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        n, _, v = line.partition(":")
        headers.append((n, v.strip(" \t")))
    return method, target, version, headers


def _query(target: str) -> Dict[str, List[str]]:
    q = urllib.parse.urlsplit(target).query
    out: Dict[str, List[str]] = {}
    for k, v in urllib.parse.parse_qsl(q, keep_blank_values=True):
        out.setdefault(k, []).append(v)
    return out


class EchoUpstream(ThreadedServer):
    """The upstream described in the module docstring."""

    def __init__(self, name: str = "up") -> None:
        self.name = name
        self.received: List[Received] = []
        self.connections = 0
        self._fails: Dict[str, int] = {}
        self._lock = threading.Lock()
        self._socks: List[socket.socket] = []
        super().__init__()

    def reset(self) -> None:
        """Forget what was received (connections stay open; numbering goes on)."""
        with self._lock:
            self.received = []
            self._fails = {}

    def _on_accept(self, c: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
            self._socks.append(c)

    def _serve(self, sock: socket.socket) -> None:
        with self._lock:
            self.connections += 1
            conn_no = self.connections
        c = _Conn(sock)
        req_no = 0
        try:
            while True:
                req_no += 1
                if not self._one(c, conn_no, req_no):
                    break
        except (OSError, ValueError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    # ------------------------------------------------------------ requests

    def _read_request(self, c: _Conn, conn_no: int, req_no: int) -> Optional[Received]:
        head = c.read_until(b"\r\n\r\n")
        if head is None:
            return None
        method, target, version, headers = _parse_head(head)
        hmap = {n.lower(): v for n, v in headers}
        body, framing, trailers = b"", "none", []
        if "chunked" in hmap.get("transfer-encoding", "").lower():
            framing = "chunked"
            parts = []
            while True:
                line = c.read_until(b"\r\n")
                if line is None:
                    raise ValueError("eof in chunk size")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                parts.append(c.read_n(size) or b"")
                c.read_n(2)
            while True:
                line = c.read_until(b"\r\n")
                if line is None or line == b"\r\n":
                    break
                n, _, v = line.decode("latin-1").rstrip("\r\n").partition(":")
                trailers.append((n, v.strip()))
            body = b"".join(parts)
        elif "content-length" in hmap:
            framing = "length"
            body = c.read_n(int(hmap["content-length"])) or b""
        return Received(conn_no, req_no, method, target, version, headers, body, framing, trailers)

    def _one(self, c: _Conn, conn_no: int, req_no: int) -> bool:
        """Read and answer one request; False when the connection is done."""
        r = self._read_request(c, conn_no, req_no)
        if r is None:
            return False
        with self._lock:
            self.received.append(r)
        q = _query(r.target)
        opt = lambda k, d=None: q.get(k, [d])[-1]  # noqa: E731
        status = int(opt("status", "200"))
        if "fail" in q:
            key = urllib.parse.urlsplit(r.target).path
            with self._lock:
                n = self._fails.get(key, 0)
                self._fails[key] = n + 1
            if n < int(opt("fail")):
                status = int(opt("fail_status", "503"))
        if opt("reset") == "1":
            return False
        if opt("garbage") == "1":
            c.sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            return False
        if opt("delay"):
            time.sleep(float(opt("delay")))
        s = c.sock
        upgrade = r.header("upgrade")
        if upgrade and opt("upgrade", "1") == "1":
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: %s\r\nconnection: upgrade\r\n\r\n"
                      % upgrade.encode("latin-1"))
            # Tunnel: echo every byte back until the peer closes.
            if c.buf:
                r.tunnel += bytes(c.buf)
                s.sendall(bytes(c.buf))
                c.buf.clear()
            while True:
                d = s.recv(65536)
                if not d:
                    return False
                r.tunnel += d
                s.sendall(d)
        if opt("early"):
            code = int(opt("early"))
            extra = b"link: </style.css>; rel=preload\r\n" if code == 103 else b""
            s.sendall(b"HTTP/1.1 %d %s\r\n%s\r\n" % (code, b"Continue" if code == 100 else b"Early Hints", extra))
        if opt("size") is not None:
            body = pattern_body(int(opt("size")))
            ctype = b"application/octet-stream"
        else:
            body = json.dumps(dict(r.view(), upstream=self.name)).encode()
            ctype = b"application/json"
        lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Whatever"))]
        lines.append(b"content-type: " + ctype)
        for h in q.get("hdr", []):
            lines.append(h.encode("latin-1"))
        no_body = status in (204, 304) or 100 <= status < 200
        chunked = opt("chunked") == "1" or opt("trailers") == "1"
        close = opt("close") == "1" or opt("conn_close") == "1" or opt("nolen") == "1" or \
            (r.header("connection") or "").lower() == "close"
        if opt("conn_close") == "1":
            lines.append(b"connection: close")
        if not no_body:
            if chunked:
                lines.append(b"transfer-encoding: chunked")
            elif opt("nolen") != "1":
                lines.append(b"content-length: %d" % len(body))
        head = b"\r\n".join(lines) + b"\r\n\r\n"
        if no_body or r.method == "HEAD":
            s.sendall(head)
            return not close
        if opt("body_delay"):
            s.sendall(head)
            time.sleep(float(opt("body_delay")))
            head = b""
        if opt("die") is not None:
            s.sendall(head + body[:int(opt("die"))])
            return False
        if chunked:
            out = head
            for i in range(0, len(body), 16384):
                part = body[i:i + 16384]
                out += b"%x\r\n%s\r\n" % (len(part), part)
            out += b"0\r\n" + (b"x-trailer: t\r\n" if opt("trailers") == "1" else b"") + b"\r\n"
            s.sendall(out)
        else:
            s.sendall(head + body)
        return not close

    def close(self) -> None:
        super().close()
        with self._lock:
            socks, self._socks = self._socks, []
        shutdown_all(socks)


_REASONS = {200: b"OK", 201: b"Created", 204: b"No Content", 301: b"Moved Permanently",
            304: b"Not Modified", 400: b"Bad Request", 404: b"Not Found", 409: b"Conflict",
            500: b"Internal Server Error", 502: b"Bad Gateway", 503: b"Service Unavailable",
            504: b"Gateway Timeout"}
