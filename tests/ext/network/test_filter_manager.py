"""The network FilterManager (Envoy filter_manager_impl_test.cc): read
filters run in order, on_new_connection before the first data,
FILTER_STOP_ITERATION halts the chain, continue_reading() resumes it after
the filter that stopped. Bytes arrive through a real socketpair into a
ConnectionImpl on a bare Dispatcher (ConnectionForTest, ext/for_test.pyx).
"""
import socket
import time

import pytest

from envoy_fast._worker import ConnectionForTest, Dispatcher, ReadFilterForTest


@pytest.fixture
def pair():
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    d = Dispatcher()
    yield d, ours.detach(), peer
    peer.close()


def run_until(d, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        d.run_for_test(0.01)


def settle(d):
    d.run_for_test(0.05)


def test_filters_initialise_in_order_then_see_data_in_order(pair):
    d, fd, peer = pair
    log = []
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("a", log),
                                         ReadFilterForTest("b", log, drain=True)])
    assert log == [("a", "new_connection"), ("b", "new_connection")]
    peer.sendall(b"one")
    run_until(d, lambda: len(log) == 4)
    assert log[2:] == [("a", "data", b"one", False), ("b", "data", b"one", False)]
    c.close(flush=False)


def test_a_filter_that_consumes_the_data_hides_it_from_the_next(pair):
    d, fd, peer = pair
    log = []
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("a", log, drain=True),
                                         ReadFilterForTest("b", log)])
    peer.sendall(b"mine")
    run_until(d, lambda: ("a", "data", b"mine", False) in log)
    settle(d)
    assert [e for e in log if e[0] == "b"] == [("b", "new_connection")]
    c.close(flush=False)


def test_stop_on_new_connection_holds_the_rest_until_continue_reading(pair):
    d, fd, peer = pair
    log = []
    a = ReadFilterForTest("a", log, stop_on_new_connection=True)
    b = ReadFilterForTest("b", log, drain=True)
    c = ConnectionForTest.server(d, fd, [a, b])
    assert log == [("a", "new_connection")], "b waits for a"
    peer.sendall(b"early")
    settle(d)
    # Data came: a (initialised) sees it and does not stop on data, so the
    # chain goes on to b, which is initialised first.
    assert log == [("a", "new_connection"), ("a", "data", b"early", False),
                   ("b", "new_connection"), ("b", "data", b"early", False)]
    c.close(flush=False)


def test_continue_reading_resumes_after_the_filter_that_stopped(pair):
    d, fd, peer = pair
    log = []
    a = ReadFilterForTest("a", log, stop_on_new_connection=True)
    b = ReadFilterForTest("b", log, drain=True)
    c = ConnectionForTest.server(d, fd, [a, b])
    a.continue_reading()
    # Nothing buffered: b is only initialised; a is not run again.
    assert log == [("a", "new_connection"), ("b", "new_connection")]
    peer.sendall(b"x")
    run_until(d, lambda: len(log) == 4)
    assert log[2:] == [("a", "data", b"x", False), ("b", "data", b"x", False)]
    c.close(flush=False)


def test_stop_on_data_halts_the_chain_and_continue_passes_the_buffer_on(pair):
    d, fd, peer = pair
    log = []
    a = ReadFilterForTest("a", log, stop_on_data=True)
    b = ReadFilterForTest("b", log, drain=True)
    c = ConnectionForTest.server(d, fd, [a, b])
    peer.sendall(b"held")
    run_until(d, lambda: ("a", "data", b"held", False) in log)
    settle(d)
    assert [e for e in log if e[0] == "b"] == [("b", "new_connection")]
    # a lets go: b gets the buffered bytes, a does not see them again.
    a.continue_reading()
    assert log[-1] == ("b", "data", b"held", False)
    assert [e for e in log if e[0] == "a"] == [("a", "new_connection"), ("a", "data", b"held", False)]
    c.close(flush=False)


def test_end_stream_reaches_every_filter(pair):
    d, fd, peer = pair
    log = []
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("a", log),
                                         ReadFilterForTest("b", log, drain=True)])
    peer.sendall(b"last")
    peer.shutdown(socket.SHUT_WR)
    run_until(d, lambda: ("b", "data", b"", True) in log or ("b", "data", b"last", True) in log)
    ends = [e for e in log if e[1] == "data" and e[3]]
    assert [e[0] for e in ends] == ["a", "b"]
    c.close(flush=False)


def test_a_single_filter_gets_every_read(pair):
    # One filter: the per-read fast path; it must see the same as a chain.
    d, fd, peer = pair
    log = []
    c = ConnectionForTest.server(d, fd, [ReadFilterForTest("only", log, drain=True)])
    for chunk in (b"1", b"22", b"333"):
        peer.sendall(chunk)
        run_until(d, lambda: log[-1][1] == "data" and log[-1][2] == chunk)
    assert [e[2] for e in log[1:]] == [b"1", b"22", b"333"]
    c.close(flush=False)


def test_close_from_a_filter_stops_the_chain(pair):
    # a closes the connection while handling data and returns CONTINUE:
    # the manager must not call b on a closed connection.
    d, fd, peer = pair
    log = []
    a = ReadFilterForTest("a", log, close_on_data=True)
    b = ReadFilterForTest("b", log)
    c = ConnectionForTest.server(d, fd, [a, b])
    peer.sendall(b"x")
    run_until(d, lambda: c.state == "closed")
    settle(d)
    assert log == [("a", "new_connection"), ("b", "new_connection"),
                   ("a", "data", b"x", False)]
    assert c.events == ["local_close"]
