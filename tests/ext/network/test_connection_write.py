"""ConnectionImpl's write path: writes made in one loop turn are queued on
the Dispatcher and leave together at the end of the turn, in one syscall
(counted with strace), with ordering, half-close and close semantics
unchanged (checked through a real socket)."""
import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest

from envoy_fast import _worker
from envoy_fast._worker import ConnectionImpl, Dispatcher

from helpers import ROOT, recv_exactly, recv_until_eof, require_strace

CONN_CLOSED = 2


def nonblocking(s):
    """The fd of `s`, non-blocking (as accept4 makes them), detached."""
    s.setblocking(False)
    return s.detach()

# Writes `turns` (a list of lists of piece sizes) through a ConnectionImpl
# over one end of a socketpair, one Dispatcher run per turn; prints the fd.
SCRIPT = textwrap.dedent("""
    import json, socket, sys
    from envoy_fast._worker import ConnectionImpl, Dispatcher
    turns = json.loads(sys.argv[1])
    a, b = socket.socketpair()
    d = Dispatcher()
    a.setblocking(False)
    fd = a.detach()
    c = ConnectionImpl.new_server_for_test(d, fd)
    print(fd, flush=True)
    n = 0
    for turn in turns:
        for size in turn:
            c.write_for_test(bytes([65 + n % 26]) * size)
            n += 1
        d.run_for_test(0.02)
    b.setblocking(False)
    got = b""
    while True:
        try:
            chunk = b.recv(1 << 20)
        except BlockingIOError:
            break
        got += chunk
    sys.stdout.write("%d\\n" % len(got))
""")

WRITE_CALL = re.compile(r"^\d+ +(send|sendto|sendmsg|write|writev)\((\d+),")


def write_syscalls(tmp_path, turns):
    """Run SCRIPT under strace; ([syscall name of each write on the
    connection's fd], bytes the peer got)."""
    trace = tmp_path / "write.trace"
    cmd = [require_strace(), "-f", "-qq", "-e", "trace=send,sendto,sendmsg,write,writev",
           "-e", "signal=none", "-o", str(trace), sys.executable, "-c", SCRIPT,
           json.dumps(turns)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    fd, got = (int(x) for x in r.stdout.split())
    calls = []
    for line in trace.read_text().splitlines():
        m = WRITE_CALL.match(line)
        if m and int(m.group(2)) == fd:
            calls.append(m.group(1))
    return calls, got


@pytest.mark.parametrize("turns,expect", [
    ([[10, 20, 30]], ["sendto"]),                       # small pieces: one slice, one send
    ([[2000, 20000, 3000]], ["writev"]),               # several slices: one writev
    ([[100], [100]], ["sendto", "sendto"]),            # one write per turn: one send each
    ([[1], [5000, 5000, 1], [7]], ["sendto", "writev", "sendto"]),
])
def test_writes_in_one_turn_leave_in_one_syscall(tmp_path, turns, expect):
    calls, got = write_syscalls(tmp_path, turns)
    assert calls == expect
    assert got == sum(map(sum, turns))


# ------------------------------------------------------------ semantics, in process

@pytest.fixture
def pair():
    a, b = socket.socketpair()
    d = Dispatcher()
    c = ConnectionImpl.new_server_for_test(d, nonblocking(a))
    b.settimeout(5)
    yield d, c, b
    b.close()
    if c.state_for_test()[0] != CONN_CLOSED:
        c.close_for_test(False)
    d.run_for_test(0.001)


def test_write_waits_for_the_end_of_the_turn_in_order(pair):
    d, c, b = pair
    pieces = [bytes([i]) * (1 + i * 97) for i in range(30)]     # 42 KB: fits the socket
    for p in pieces:
        c.write_for_test(p)
    # Nothing went yet: all of it is in the write buffer.
    assert c.state_for_test() == (0, sum(map(len, pieces)), 0)
    d.run_for_test(0.01)
    assert c.state_for_test() == (0, 0, sum(map(len, pieces)))
    b.setblocking(False)
    got = bytearray()
    while len(got) < sum(map(len, pieces)):
        got += b.recv(1 << 20)
    assert bytes(got) == b"".join(pieces)


def test_write_above_the_buffer_limit_goes_at_once():
    a, b = socket.socketpair()
    d = Dispatcher()
    c = ConnectionImpl.new_server_for_test(d, nonblocking(a), 1000)
    try:
        c.write_for_test(b"s" * 500)
        assert c.state_for_test() == (0, 500, 0)
        c.write_for_test(b"t" * 501)                   # 1001 > 1000
        assert c.state_for_test() == (0, 0, 1001)
        b.settimeout(5)
        assert recv_exactly(b, 1001) == b"s" * 500 + b"t" * 501
        d.run_for_test(0.001)
        assert c.state_for_test() == (0, 0, 1001)
    finally:
        c.close_for_test(False)
        d.run_for_test(0.001)
        b.close()


def test_end_stream_in_the_same_turn_sends_data_then_fin(pair):
    d, c, b = pair
    c.write_for_test(b"head ")
    c.write_for_test(b"body", end_stream=True)
    c.write_for_test(b"ignored after end_stream")
    d.run_for_test(0.01)
    assert recv_until_eof(b) == b"head body"
    assert c.state_for_test()[0] == 0                  # half-closed: still open


@pytest.mark.parametrize("flush", [True, False])
def test_close_in_the_same_turn_sends_what_was_written(pair, flush):
    d, c, b = pair
    c.write_for_test(b"reply ")
    c.write_for_test(b"then close")
    c.close_for_test(flush)
    assert c.state_for_test()[0] == CONN_CLOSED
    assert recv_until_eof(b) == b"reply then close"
    d.run_for_test(0.001)


def test_close_flush_waits_for_a_blocked_write():
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    d = Dispatcher()
    c = ConnectionImpl.new_server_for_test(d, nonblocking(a))
    data = os.urandom(1 << 20)
    try:
        c.write_for_test(data)
        c.close_for_test(True)                         # flush first, close after
        assert c.state_for_test()[0] == 1              # CLOSING: the socket is full
        got = bytearray()
        b.setblocking(False)
        for _ in range(2000):
            d.run_for_test(0.002)
            try:
                got += b.recv(1 << 20)
            except BlockingIOError:
                pass
            if c.state_for_test()[0] == CONN_CLOSED:
                break
        b.setblocking(True)
        b.settimeout(5)
        got += recv_until_eof(b)
        assert bytes(got) == data
        assert c.state_for_test()[0] == CONN_CLOSED
    finally:
        b.close()


def test_close_no_flush_drops_only_what_the_socket_would_not_take():
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    d = Dispatcher()
    c = ConnectionImpl.new_server_for_test(d, nonblocking(a))
    try:
        c.write_for_test(b"x" * (1 << 20))
        c.close_for_test(False)
        assert c.state_for_test()[0] == CONN_CLOSED
        got = recv_until_eof(b)
        assert 0 < len(got) < 1 << 20 and got == b"x" * len(got)
    finally:
        b.close()
        d.run_for_test(0.001)


def test_write_to_a_closed_peer_closes_at_the_end_of_the_turn(pair):
    d, c, b = pair
    b.close()
    c.write_for_test(b"nobody reads this")
    d.run_for_test(0.01)
    assert c.state_for_test()[0] == CONN_CLOSED
