"""An HTTP connection manager on a bare Dispatcher (HttpConnectionManagerForTest)
with raw client sockets on 127.0.0.1, for the HCM tests: the loop runs in
the test's thread, pumped until the client has what it waits for."""
import re
import socket
import time

from envoy_fast._worker import Dispatcher, HttpConnectionManagerForTest
from envoy_fast.extensions.network.http_connection_manager_plan import HttpConnectionManagerPlan
from envoy_fast.router.plan import RouteTablePlan

DATE_RE = re.compile(rb"date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n")
UUID_RE = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def plan(**kw):
    """An HttpConnectionManagerPlan with Envoy's defaults and `kw`."""
    kw.setdefault("stat_prefix", "p")
    kw.setdefault("stats_base", 0)
    kw.setdefault("route_table", RouteTablePlan())
    kw.setdefault("http_filters", [])
    return HttpConnectionManagerPlan(**kw)


def nodate(raw):
    """A response with its date value blanked (it changes every second)."""
    return DATE_RE.sub(b"date: <date>\r\n", raw)


class Response:
    def __init__(self, status_line, headers, body, raw):
        self.status_line = status_line
        self.status = int(status_line.split(b" ")[1])
        self.headers = headers              # [(name, value)] as sent
        self.body = body
        self.raw = raw

    def header(self, name):
        vals = [v for n, v in self.headers if n == name]
        return vals[0] if vals else None

    def names(self):
        return [n for n, _ in self.headers]


class Client:
    """A raw client socket whose responses the harness parses."""

    def __init__(self, hcm, sock):
        self.hcm = hcm
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.setblocking(True)
        self.sock.sendall(data)
        self.sock.setblocking(False)

    def _read(self):
        try:
            d = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self.eof = True
            return
        if not d:
            self.eof = True
        self.buf += d

    def _parse(self, head_request=False):
        """One complete response at the front of buf, or None."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end])
        lines = head.split(b"\r\n")
        headers = [tuple(l.split(b": ", 1)) for l in lines[1:]]
        status = int(lines[0].split(b" ")[1])
        names = {n: v for n, v in headers}
        pos = end + 4
        if head_request or status in (204, 304) or status < 200:
            body = b""
        elif b"content-length" in names:
            n = int(names[b"content-length"])
            if len(self.buf) < pos + n:
                return None
            body = bytes(self.buf[pos:pos + n])
            pos += n
        elif names.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                lf = self.buf.find(b"\r\n", pos)
                if lf < 0:
                    return None
                size = int(self.buf[pos:lf], 16)
                if len(self.buf) < lf + 2 + size + 2:
                    return None
                body += bytes(self.buf[lf + 2:lf + 2 + size])
                pos = lf + 2 + size + 2
                if size == 0:
                    break
        else:
            if not self.eof:
                return None
            body = bytes(self.buf[pos:])
            pos = len(self.buf)
        raw = bytes(self.buf[:pos])
        del self.buf[:pos]
        return Response(lines[0], headers, body, raw)

    def response(self, timeout=10.0, head_request=False):
        """The next complete response (pumping the loop)."""
        out = []

        def ready():
            self._read()
            r = self._parse(head_request)
            if r is not None:
                out.append(r)
                return True
            assert not self.eof, "EOF before a complete response: %r" % bytes(self.buf)
            return False
        self.hcm.pump(ready, timeout, "a response")
        return out[0]

    def wait_eof(self, timeout=10.0):
        def done():
            self._read()
            return self.eof
        self.hcm.pump(done, timeout, "EOF")
        return bytes(self.buf)

    def still_open(self, seconds):
        """Pump for `seconds`; True if no EOF came."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.hcm.d.run_for_test(0.01)
            self._read()
            if self.eof:
                return False
        return True

    def request(self, data, **kw):
        self.send(data)
        return self.response(**kw)

    def close(self):
        self.sock.close()


class Hcm:
    """HttpConnectionManagerForTest + a listening socket whose accepted
    connections it adopts."""

    def __init__(self, filters=("terminal:echo",), **plan_kw):
        self.errors = []
        self.d = Dispatcher(error_log=self.errors.append)
        self.hcm = HttpConnectionManagerForTest(self.d, plan(**plan_kw), list(filters))
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.clients = []

    def connect(self, peer=("127.0.0.1", 0), buffer_limit=1 << 20):
        s = socket.create_connection(self.lsock.getsockname(), timeout=5)
        accepted, addr = self.lsock.accept()
        accepted.setblocking(False)
        if peer[1] == 0:
            peer = (peer[0], addr[1])
        self.hcm.downstream(accepted.detach(), peer, buffer_limit)
        s.setblocking(False)
        c = Client(self, s)
        self.clients.append(c)
        return c

    def pump(self, pred, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while not pred():
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, "timed out waiting for " + what
            self.d.run_for_test(0.005)

    def stats(self):
        return self.hcm.stats()

    def close(self):
        assert not self.errors, self.errors
        for c in self.clients:
            c.close()
        self.hcm.close()
        self.d.run_for_test(0.01)
        self.lsock.close()
