"""ConnectionImpl on a socketpair, with a bare Dispatcher (no Worker):
reads reach the filter chain, writes reach the peer, half-close both ways,
close with and without flush, counted read-disable, watermarks, and a
client connect to a real 127.0.0.1 listener (Envoy connection_impl_test.cc).

The peer is the other end of the socketpair, read and written by the test
between turns of the loop (ConnectionForTest, ext/for_test.pyx).
"""
import socket
import time

import pytest

from envoy_fast._worker import ConnectionForTest, Dispatcher, ReadFilterForTest


@pytest.fixture
def pair():
    """(Dispatcher, our end's fd, the peer socket)."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(5)
    d = Dispatcher()
    yield d, ours.detach(), peer
    peer.close()


def turn(d, seconds=0.02):
    d.run_for_test(seconds)


def run_until(d, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        turn(d, 0.01)


def drain_peer(d, peer, n, timeout=10.0):
    """Read n bytes from the peer while the loop runs (the connection may be
    waiting for room in the socket)."""
    peer.setblocking(False)
    got = bytearray()
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, "only %d of %d bytes came" % (len(got), n)
        turn(d, 0.005)
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            continue
        if not chunk:
            break
        got += chunk
    peer.settimeout(5)
    return bytes(got)


def data_seen(log):
    return b"".join(e[2] for e in log if e[1] == "data")


def test_read_reaches_the_filter_and_write_reaches_the_peer(pair):
    d, fd, peer = pair
    log = []
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("f", log, drain=True)])
    assert log == [("f", "new_connection")]
    peer.sendall(b"hello")
    run_until(d, lambda: len(log) > 1)
    assert log[1] == ("f", "data", b"hello", False)
    c.write(b"world")
    assert peer.recv(100) == b"world"
    assert c.bytes_read == 5 and c.bytes_written == 5
    assert c.events == []
    c.close(flush=False)
    assert c.events == ["local_close"]
    assert c.state == "closed"
    assert peer.recv(100) == b""


def test_undrained_data_accumulates_in_the_read_buffer(pair):
    d, fd, peer = pair
    log = []
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("f", log)])
    peer.sendall(b"ab")
    run_until(d, lambda: len(log) == 2)
    peer.sendall(b"cd")
    run_until(d, lambda: len(log) == 3)
    # A filter that leaves the bytes sees them again with the new ones.
    assert [e[2] for e in log[1:]] == [b"ab", b"abcd"]
    assert c.read_buffer_length == 4
    c.close(flush=False)


def test_peer_half_close_is_end_stream_and_we_can_still_write(pair):
    d, fd, peer = pair
    log = []
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("f", log, drain=True)])
    peer.sendall(b"request")
    peer.shutdown(socket.SHUT_WR)
    run_until(d, lambda: any(e[1] == "data" and e[3] for e in log))
    assert data_seen(log) == b"request"
    assert c.state == "open", "half-close: our direction stays open"
    c.write(b"response", end_stream=True)
    assert peer.recv(100) == b"response"
    assert peer.recv(100) == b"", "end_stream became our FIN"
    # Both directions have ended: the connection closes by itself.
    run_until(d, lambda: c.state == "closed")
    assert c.events == ["local_close"]


def test_our_half_close_then_the_peer_closes(pair):
    d, fd, peer = pair
    log = []
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("f", log, drain=True)])
    c.write(b"bye", end_stream=True)
    assert peer.recv(100) == b"bye"
    assert peer.recv(100) == b""
    assert c.state == "open", "still reading the peer"
    peer.sendall(b"late")
    run_until(d, lambda: data_seen(log) == b"late")
    peer.shutdown(socket.SHUT_WR)
    run_until(d, lambda: c.state == "closed")
    assert c.events == ["remote_close"], "the peer ended last: its close"
    assert log[-1][1:] == ("data", b"", True)


def test_remote_close_without_half_close(pair):
    d, fd, peer = pair
    log = []
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("f", log, drain=True)])
    c.set_half_close(False)
    peer.sendall(b"x")
    peer.close()
    run_until(d, lambda: c.state == "closed")
    assert c.events == ["remote_close"]
    assert data_seen(log) == b"x"


def test_close_with_flush_sends_everything_first(pair):
    d, fd, peer = pair
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("f", [], drain=True)])
    payload = bytes(range(256)) * 16384          # 4 MiB: more than the socket takes
    c.write(payload)
    assert c.write_buffer_length > 0, "the rest waits for EPOLLOUT"
    c.close(flush=True)
    assert c.state == "closing"
    assert c.events == []
    got = drain_peer(d, peer, len(payload) + 1)
    assert got == payload
    assert c.state == "closed"
    assert c.events == ["local_close"]


def test_close_without_flush_drops_what_is_buffered(pair):
    d, fd, peer = pair
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("f", [], drain=True)])
    payload = b"z" * (4 << 20)
    c.write(payload)
    pending = c.write_buffer_length
    assert pending > 0
    c.close(flush=False)
    assert c.state == "closed" and c.events == ["local_close"]
    got = drain_peer(d, peer, len(payload))
    assert len(got) == len(payload) - pending


def test_read_disable_is_counted(pair):
    d, fd, peer = pair
    log = []
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("f", log, drain=True)])
    c.read_disable(True)
    c.read_disable(True)
    peer.sendall(b"held")
    turn(d, 0.05)
    c.read_disable(False)
    turn(d, 0.05)
    assert data_seen(log) == b"", "two disables need two enables"
    c.read_disable(False)
    run_until(d, lambda: data_seen(log) == b"held")
    c.close(flush=False)


def test_write_buffer_watermarks(pair):
    d, fd, peer = pair
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("f", [], drain=True)],
                                 buffer_limit=65536)
    payload = b"w" * (4 << 20)
    c.write(payload)
    assert c.events == ["above_high_watermark"]
    got = drain_peer(d, peer, len(payload))
    assert got == payload
    assert c.events == ["above_high_watermark", "below_low_watermark"]
    c.close(flush=False)


def test_client_connects_to_a_real_listener_and_exchanges_bytes():
    d = Dispatcher()
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        log = []
        c = ConnectionForTest.client(d, "127.0.0.1", srv.getsockname()[1],
                                     [ReadFilterForTest("f", log, drain=True)])
        c.write(b"early")         # buffered until connected
        run_until(d, lambda: c.events == ["connected"])
        peer, _ = srv.accept()
        with peer:
            peer.settimeout(5)
            assert peer.recv(100) == b"early"
            peer.sendall(b"reply")
            run_until(d, lambda: data_seen(log) == b"reply")
            peer.close()
            run_until(d, lambda: c.state == "closed" or any(e[3] for e in log if e[1] == "data"))
        c.close(flush=False)
        assert c.events[0] == "connected" and c.state == "closed"


def test_client_connect_refused_is_a_remote_close():
    d = Dispatcher()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]       # bound, not listening: refused
        c = ConnectionForTest.client(d, "127.0.0.1", port)
        run_until(d, lambda: c.state == "closed")
    assert c.events == ["remote_close"]
