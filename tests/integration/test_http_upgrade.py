"""HTTP Upgrade (websocket) end to end, through envoy_fast and the real Envoy
on the same YAML: a raw-socket upstream answers 101 and then echoes (or
pushes, or closes), and the tests check what each side gets: the 101 with
its upgrade headers, every byte both ways (megabytes, concurrently), who
closes what when either side closes, the route's upgrade_configs, a 200
where a 101 was expected, and the http.<p>.downstream_cx_upgrades_* stats."""
import os
import socket
import threading
import time

import pytest

from helpers import IMPLS, free_port, recv_head, run_impl, wait_for, wait_stat

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


class WsUpstream:
    """Raw upstream. Per request path:
    /push/N    101, then N pattern bytes, then close;
    /close/N   101, echo, close after N bytes were echoed;
    /no101     200 with a body (the handshake refused);
    otherwise  101, then echo until the proxy closes.
    `events` records what the upstream saw (heads, bytes, EOF)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.events = []
        self.received = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, _, rest = buf.partition(b"\r\n\r\n")
            path = head.split(b" ")[1].decode()
            self.events.append(("head", head))
            if path.startswith("/no101"):
                c.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello")
                c.settimeout(2)
                try:
                    self.events.append(("after_200", c.recv(65536)))
                except OSError as e:
                    self.events.append(("after_200", repr(e)))
                return
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                      b"connection: upgrade\r\n\r\n")
            if path.startswith("/push/"):
                c.sendall(pattern(int(path.split("/")[2])))
                return
            limit = int(path.split("/")[2]) if path.startswith("/close/") else None
            if rest:
                self.received += len(rest)
                c.sendall(rest)
            while limit is None or self.received < limit:
                try:
                    d = c.recv(1 << 20)
                except OSError:
                    d = b""
                if not d:
                    self.events.append(("eof", self.received))
                    return
                self.received += len(d)
                c.sendall(d)

    def close(self):
        self.sock.close()


def pattern(n):
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


def config(port, upstream_port, hcm_upgrades=True, route_upgrades=None, stat_prefix="ws",
           route_timeout=None, **hcm):
    route = {"cluster": "up"}
    if route_timeout is not None:
        route["timeout"] = route_timeout
    if route_upgrades is not None:
        route["upgrade_configs"] = route_upgrades
    tc = {"@type": HCM, "stat_prefix": stat_prefix,
          "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
              {"match": {"prefix": "/"}, "route": route}]}]},
          "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]}
    tc.update(hcm)
    if hcm_upgrades:
        tc["upgrade_configs"] = [{"upgrade_type": "websocket"}]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": free_port()}}},
        "static_resources": {
            "listeners": [{"name": "l", "address": {"socket_address": {"address": "127.0.0.1",
                                                                        "port_value": port}},
                           "filter_chains": [{"filters": [{
                               "name": "envoy.filters.network.http_connection_manager",
                               "typed_config": tc}]}]}],
            "clusters": [{"name": "up", "connect_timeout": "1s", "load_assignment": {
                "cluster_name": "up", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                    "socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}]}]}}]}}


def handshake(port, path="/ws", extra=b""):
    """Connect, send the upgrade request (+ extra bytes), read the response
    head; returns (socket, head, bytes read past the head)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET %s HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
              % path.encode() + extra)
    head, rest = recv_head(s)
    return s, head, rest


def read_until_eof(s, timeout=5.0):
    s.settimeout(timeout)
    out = bytearray()
    while True:
        d = s.recv(1 << 20)
        if not d:
            return bytes(out)
        out += d


@pytest.mark.parametrize("impl", IMPLS)
def test_large_echo_both_ways_and_stats(impl):
    """8 MiB sent while the echo is read back: every byte, in order; the
    upgrade is counted while open and leaves the active gauge at 0 after
    the client closes, and the upstream sees the close."""
    up = WsUpstream()
    port = free_port()
    data = os.urandom(8 << 20)
    try:
        with run_impl(impl, config(port, up.port)) as proxy:
            s, head, rest = handshake(port)
            lines = head.split(b"\r\n")
            assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
            assert lines[1:3] == [b"upgrade: websocket", b"connection: upgrade"]
            assert not any(l.startswith(b"x-envoy-upstream-service-time") for l in lines)
            t = threading.Thread(target=s.sendall, args=(data,))
            t.start()
            got = bytearray(rest)
            s.settimeout(10)
            while len(got) < len(data):
                d = s.recv(1 << 20)
                assert d, "closed after %d bytes" % len(got)
                got += d
            t.join()
            assert bytes(got) == data
            st = proxy.stats()
            assert st["http.ws.downstream_cx_upgrades_total"] == 1
            assert st["http.ws.downstream_cx_upgrades_active"] == 1
            s.close()
            wait_stat(proxy, "http.ws.downstream_cx_upgrades_active", 0)
            wait_for(lambda: ("eof", len(data)) in up.events, 5, what="upstream EOF")
    finally:
        up.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_bytes_before_the_101_reach_the_upstream(impl):
    up = WsUpstream()
    port = free_port()
    try:
        with run_impl(impl, config(port, up.port)):
            s, head, rest = handshake(port, extra=b"early-bytes")
            assert head.startswith(b"HTTP/1.1 101 ")
            s.settimeout(5)
            while len(rest) < 11:
                rest += s.recv(100)
            assert rest == b"early-bytes"
            s.close()
    finally:
        up.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_upstream_push_then_close(impl):
    """The upstream sends 4 MiB and closes: the client gets all of it, then
    the proxy closes the downstream connection (Envoy: after
    delayed_close_timeout)."""
    up = WsUpstream()
    port = free_port()
    n = 4 << 20
    try:
        with run_impl(impl, config(port, up.port)) as proxy:
            s, head, rest = handshake(port, "/push/%d" % n)
            assert head.startswith(b"HTTP/1.1 101 ")
            t0 = time.monotonic()
            got = rest + read_until_eof(s)
            assert got == pattern(n)
            assert time.monotonic() - t0 < 6.0
            wait_stat(proxy, "http.ws.downstream_cx_upgrades_active", 0)
    finally:
        up.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_upstream_closes_mid_echo(impl):
    up = WsUpstream()
    port = free_port()
    try:
        with run_impl(impl, config(port, up.port)):
            s, head, rest = handshake(port, "/close/10")
            assert head.startswith(b"HTTP/1.1 101 ")
            s.sendall(b"0123456789")
            assert rest + read_until_eof(s) == b"0123456789"
    finally:
        up.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_client_half_close_ends_the_tunnel(impl):
    """No half-close through the proxy (Envoy 1.40): the client's FIN
    closes both connections; the client reads EOF."""
    up = WsUpstream()
    port = free_port()
    try:
        with run_impl(impl, config(port, up.port)):
            s, head, rest = handshake(port)
            s.sendall(b"data1")
            s.settimeout(5)
            while len(rest) < 5:
                rest += s.recv(100)
            s.shutdown(socket.SHUT_WR)
            assert read_until_eof(s) == b""
            wait_for(lambda: ("eof", 5) in up.events, 5, what="upstream EOF")
    finally:
        up.close()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("hcm_upgrades,route_upgrades,status", [
    (True, [{"upgrade_type": "websocket", "enabled": False}], 403),
    (False, [{"upgrade_type": "WebSocket", "enabled": True}], 101),
    (False, None, 403),
    (True, [{"upgrade_type": "other"}], 101),
], ids=["route_disables", "route_enables", "none", "route_other_type"])
def test_route_upgrade_configs(impl, hcm_upgrades, route_upgrades, status):
    up = WsUpstream()
    port = free_port()
    try:
        with run_impl(impl, config(port, up.port, hcm_upgrades, route_upgrades)) as proxy:
            s, head, _ = handshake(port)
            assert head.split(b"\r\n")[0].split(b" ")[1] == str(status).encode()
            st = proxy.stats()
            assert st["http.ws.downstream_rq_ws_on_non_ws_route"] == (1 if status == 403 else 0)
            assert st["http.ws.downstream_cx_upgrades_total"] == (1 if status == 101 else 0)
            if status == 403:
                assert b"connection: close" in head
                assert read_until_eof(s) == b""
            s.close()
    finally:
        up.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_200_instead_of_101(impl):
    """The upstream refuses the handshake with a 200: the client gets 200,
    empty, connection: close; the upstream connection is closed and the
    bytes sent after the request never reach it."""
    up = WsUpstream()
    port = free_port()
    try:
        with run_impl(impl, config(port, up.port)):
            s, head, rest = handshake(port, "/no101", extra=b"GET /smuggled HTTP/1.1\r\nhost: a\r\n\r\n")
            lines = head.split(b"\r\n")
            assert lines[0] == b"HTTP/1.1 200 OK"
            assert b"connection: close" in lines and b"content-length: 0" in lines
            assert not any(l.startswith(b"content-type") for l in lines)
            assert rest + read_until_eof(s) == b""
            wait_for(lambda: any(e[0] == "after_200" for e in up.events), 5, what="upstream closed")
            after = [e[1] for e in up.events if e[0] == "after_200"][0]
            assert b"smuggled" not in (after if isinstance(after, bytes) else b"")
            assert len([e for e in up.events if e[0] == "head"]) == 1
    finally:
        up.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_idle_tunnel_cut_at_stream_idle_timeout(impl):
    """Traffic keeps a tunnel open past stream_idle_timeout; silence ends
    it (the route timeout does not apply: the request never ends)."""
    up = WsUpstream()
    port = free_port()
    try:
        with run_impl(impl, config(port, up.port, stream_idle_timeout="0.6s")) as proxy:
            s, head, rest = handshake(port)
            assert head.startswith(b"HTTP/1.1 101 ")
            s.settimeout(5)
            for i in range(6):
                time.sleep(0.25)
                s.sendall(b"x")
                assert s.recv(10) == b"x"
            t0 = time.monotonic()
            assert read_until_eof(s) == b""
            assert 0.4 < time.monotonic() - t0 < 4.0
            wait_stat(proxy, "http.ws.downstream_rq_idle_timeout", 1)
    finally:
        up.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_route_timeout_does_not_cut_a_tunnel(impl):
    up = WsUpstream()
    port = free_port()
    try:
        with run_impl(impl, config(port, up.port, route_timeout="0.3s")):
            s, head, rest = handshake(port)
            assert head.startswith(b"HTTP/1.1 101 ")
            s.settimeout(5)
            time.sleep(1.0)
            s.sendall(b"still-here")
            got = b""
            while len(got) < 10:
                got += s.recv(100)
            assert got == b"still-here"
            s.close()
    finally:
        up.close()


@pytest.mark.parametrize("impl", IMPLS)
def test_h2c_upgrade_is_served_as_http1(impl):
    """curl --http2 over cleartext asks for h2c: Envoy drops the upgrade
    (Upgrade, Connection, HTTP2-Settings) and proxies the request as
    HTTP/1.1, even with no upgrade_configs."""
    up = WsUpstream()
    port = free_port()
    try:
        with run_impl(impl, config(port, up.port, hcm_upgrades=False)):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /no101 HTTP/1.1\r\nhost: a\r\nconnection: Upgrade, HTTP2-Settings\r\n"
                      b"upgrade: h2c\r\nhttp2-settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n")
            buf = b""
            while not buf.endswith(b"hello"):
                d = s.recv(65536)
                assert d, buf
                buf += d
            assert buf.startswith(b"HTTP/1.1 200 OK\r\n")
            head = [e[1] for e in up.events if e[0] == "head"][0].lower()
            assert b"upgrade" not in head and b"http2-settings" not in head and b"connection" not in head
            s.close()
    finally:
        up.close()
