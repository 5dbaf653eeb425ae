"""OwnedBuffer (Envoy's Buffer::OwnedImpl) through its Python test API."""
import errno
import fcntl
import gc
import os
import random
import socket

import pytest

from envoy_fast import _worker
from envoy_fast._worker import OwnedBuffer

SLICE = 16384


def slices_in_use():
    """Slices allocated and not sitting in the freelist."""
    gc.collect()
    allocated, free = _worker.slice_counts_for_test()
    return allocated - free


def pattern(n, seed=0):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n))


def buf_of(data):
    b = OwnedBuffer()
    b.append(data)
    return b


@pytest.fixture(autouse=True)
def no_slice_leak():
    before = slices_in_use()
    yield
    assert slices_in_use() == before, "slices leaked by the test"


# ------------------------------------------------------------ append / bytes

def test_empty():
    b = OwnedBuffer()
    assert len(b) == 0
    assert b.bytes() == b""
    assert b.slice_count() == 0
    b.append(b"")
    assert b.slice_count() == 0
    b.drain_bytes(10)
    assert len(b) == 0 and b.slice_count() == 0


@pytest.mark.parametrize("n,slices", [
    (1, 1), (SLICE - 1, 1), (SLICE, 1), (SLICE + 1, 2), (2 * SLICE, 2),
    (2 * SLICE + 1, 3), (5 * SLICE + 7, 6)])
def test_append_across_slice_boundaries(n, slices):
    data = pattern(n, n)
    b = buf_of(data)
    assert len(b) == n
    assert b.slice_count() == slices
    assert b.bytes() == data


def test_append_fills_tail_slice_first():
    b = buf_of(b"a" * (SLICE - 10))
    assert b.slice_count() == 1
    b.append(b"b" * 10)
    assert b.slice_count() == 1
    b.append(b"c")
    assert b.slice_count() == 2
    assert b.bytes() == b"a" * (SLICE - 10) + b"b" * 10 + b"c"


def test_append_byte_by_byte():
    data = pattern(3 * SLICE + 100, 1)
    b = OwnedBuffer()
    for i in range(len(data)):
        b.append(data[i:i + 1])
    assert len(b) == len(data)
    assert b.slice_count() == 4
    assert b.bytes() == data


def test_append_random_splits():
    rnd = random.Random(1234)
    data = pattern(200000, 2)
    b = OwnedBuffer()
    i = 0
    while i < len(data):
        k = rnd.choice([1, 2, 7, 100, 1023, 1024, 1025, SLICE - 1, SLICE, SLICE + 1, 40000])
        b.append(data[i:i + k])
        i += k
    assert b.bytes() == data
    # Appending packs slices: no slice is left part-full except the last.
    assert b.slice_count() == -(-len(data) // SLICE)


def test_append_accepts_bytearray_and_memoryview():
    b = OwnedBuffer()
    b.append(bytearray(b"abc"))
    b.append(memoryview(b"defgh")[1:4])
    assert b.bytes() == b"abcefg"


# ------------------------------------------------------------ drain

def test_drain_partial_whole_and_over_length():
    data = pattern(3 * SLICE, 3)
    b = buf_of(data)
    b.drain_bytes(0)
    assert b.bytes() == data and b.slice_count() == 3
    b.drain_bytes(10)
    assert b.bytes() == data[10:] and b.slice_count() == 3
    b.drain_bytes(SLICE - 10)            # exactly the first slice
    assert b.bytes() == data[SLICE:] and b.slice_count() == 2
    b.drain_bytes(SLICE + 1)             # across a boundary
    assert b.bytes() == data[2 * SLICE + 1:] and b.slice_count() == 1
    b.drain_bytes(10 * SLICE)            # more than there is
    assert len(b) == 0 and b.bytes() == b"" and b.slice_count() == 0
    b.drain_bytes(5)
    assert len(b) == 0
    # Still usable after being emptied.
    b.append(b"again")
    assert b.bytes() == b"again" and b.slice_count() == 1


def test_drain_whole_exact_length():
    b = buf_of(pattern(2 * SLICE + 5))
    b.drain_bytes(2 * SLICE + 5)
    assert len(b) == 0 and b.slice_count() == 0


def test_drain_byte_by_byte():
    data = pattern(2 * SLICE + 3, 4)
    b = buf_of(data)
    for i in range(len(data)):
        b.drain_bytes(1)
        assert len(b) == len(data) - i - 1
        if i % 4099 == 0:
            assert b.bytes() == data[i + 1:]
    assert b.slice_count() == 0


def test_drain_then_append_reuses_tail():
    b = buf_of(b"x" * 100)
    b.drain_bytes(60)
    b.append(b"y" * 100)
    assert b.bytes() == b"x" * 40 + b"y" * 100
    assert b.slice_count() == 1


# ------------------------------------------------------------ move

def test_move_large_slices_hands_them_over():
    a = buf_of(b"A" * 5000)
    src = pattern(2 * SLICE + 5000, 5)
    b = buf_of(src)
    assert b.slice_count() == 3
    alloc_before = _worker.slice_counts_for_test()
    a.move_from(b)
    # No slice was allocated or freed: they changed hands.
    assert _worker.slice_counts_for_test() == alloc_before
    assert len(b) == 0 and b.slice_count() == 0 and b.bytes() == b""
    assert a.slice_count() == 4
    assert a.bytes() == b"A" * 5000 + src
    assert len(a) == 5000 + len(src)


def test_move_small_slice_coalesces_into_tail():
    a = buf_of(b"head")
    b = buf_of(b"tail")
    a.move_from(b)
    assert a.slice_count() == 1
    assert a.bytes() == b"headtail"
    assert b.slice_count() == 0 and len(b) == 0
    # 1024 bytes is still "small"; 1025 is not.
    a.move_from(buf_of(b"s" * 1024))
    assert a.slice_count() == 1
    a.move_from(buf_of(b"L" * 1025))
    assert a.slice_count() == 2
    assert a.bytes() == b"headtail" + b"s" * 1024 + b"L" * 1025


def test_move_small_slice_without_room_becomes_its_own_slice():
    a = buf_of(b"a" * (SLICE - 3))
    a.move_from(buf_of(b"bbbb"))
    assert a.slice_count() == 2
    assert a.bytes() == b"a" * (SLICE - 3) + b"bbbb"


def test_move_into_empty_buffer():
    a = OwnedBuffer()
    a.move_from(buf_of(b"xyz"))
    assert a.bytes() == b"xyz" and a.slice_count() == 1


def test_move_empty_buffer_is_noop():
    a = buf_of(b"abc")
    a.move_from(OwnedBuffer())
    assert a.bytes() == b"abc" and a.slice_count() == 1


def test_move_partially_drained_source():
    src = pattern(SLICE + 100, 6)
    b = buf_of(src)
    b.drain_bytes(50)
    a = buf_of(b"P")
    a.move_from(b)
    assert a.bytes() == b"P" + src[50:]
    assert len(a) == 1 + len(src) - 50


def test_many_tiny_moves_do_not_build_a_long_chain():
    a = OwnedBuffer()
    expect = bytearray()
    for i in range(2000):
        piece = bytes([i % 251]) * (1 + i % 7)
        a.move_from(buf_of(piece))
        expect += piece
    assert a.bytes() == bytes(expect)
    assert a.slice_count() == -(-len(expect) // SLICE)


def test_ring_grows_beyond_inline_slices():
    # More slices than the inline ring (4), with the ring head wrapped.
    b = buf_of(pattern(3 * SLICE, 7))
    b.drain_bytes(2 * SLICE)             # head moves to index 2
    more = pattern(10 * SLICE + 3, 8)
    b.append(more)
    assert b.slice_count() == 12
    assert b.bytes() == pattern(3 * SLICE, 7)[2 * SLICE:] + more
    c = OwnedBuffer()
    c.move_from(b)
    assert c.slice_count() == 12
    assert c.bytes() == pattern(3 * SLICE, 7)[2 * SLICE:] + more


# ------------------------------------------------------------ fd I/O

def nonblocking_pipe():
    r, w = os.pipe()
    for fd in (r, w):
        fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fl | os.O_NONBLOCK)
    return r, w


def test_read_from_fd_partial_reads_and_commit():
    r, w = nonblocking_pipe()
    try:
        b = OwnedBuffer()
        os.write(w, b"hello")
        assert b.read_from_fd(r) == 5
        assert b.bytes() == b"hello"
        # Reserved but unused slices went back: one slice holds the data.
        assert b.slice_count() == 1
        # Nothing to read: -EAGAIN and the buffer is unchanged.
        assert b.read_from_fd(r) == -errno.EAGAIN
        assert b.bytes() == b"hello" and b.slice_count() == 1
        # A read lands first in the tail slice's free room.
        data = pattern(20000, 9)
        os.write(w, data)
        assert b.read_from_fd(r) == 20000
        assert b.bytes() == b"hello" + data
        assert b.slice_count() == 2
        assert len(b) == 20005
    finally:
        os.close(r)
        os.close(w)


def test_read_from_fd_eof_returns_zero():
    r, w = nonblocking_pipe()
    os.write(w, b"last")
    os.close(w)
    try:
        b = OwnedBuffer()
        assert b.read_from_fd(r) == 4
        assert b.read_from_fd(r) == 0
        assert b.bytes() == b"last" and b.slice_count() == 1
    finally:
        os.close(r)


def test_read_from_fd_bad_fd():
    b = buf_of(b"keep")
    assert b.read_from_fd(-1) == -errno.EBADF
    assert b.bytes() == b"keep" and b.slice_count() == 1


def test_read_from_fd_respects_max_bytes_in_slices():
    a, c = socket.socketpair()
    try:
        a.setblocking(False)
        c.sendall(pattern(200000, 10))
        b = OwnedBuffer()
        got = b.read_from_fd(a.fileno(), SLICE)
        # One slice is reserved for max_bytes <= SLICE.
        assert 0 < got <= SLICE
        assert b.slice_count() == 1
        got2 = b.read_from_fd(a.fileno(), 65536)
        assert 0 < got2 <= 65536 + SLICE
        assert b.bytes() == pattern(200000, 10)[:got + got2]
    finally:
        a.close()
        c.close()


def test_read_from_fd_tail_with_little_room_gets_new_slice():
    r, w = nonblocking_pipe()
    try:
        b = buf_of(b"t" * (SLICE - 100))       # only 100 bytes of room
        os.write(w, b"0123456789" * 30)
        assert b.read_from_fd(r) == 300
        assert b.bytes() == b"t" * (SLICE - 100) + b"0123456789" * 30
        assert b.slice_count() == 2
    finally:
        os.close(r)
        os.close(w)


def test_read_from_fd_byte_by_byte():
    r, w = nonblocking_pipe()
    try:
        data = pattern(SLICE + 50, 11)
        b = OwnedBuffer()
        for i in range(len(data)):
            os.write(w, data[i:i + 1])
            assert b.read_from_fd(r) == 1
        assert b.bytes() == data
        assert b.slice_count() == 2
    finally:
        os.close(r)
        os.close(w)


def small_socketpair():
    a, c = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    a.setblocking(False)
    c.setblocking(False)
    return a, c


def drain_sock(c, out):
    while True:
        try:
            chunk = c.recv(1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            return
        out += chunk


def test_write_to_fd_partial_writes_on_full_socket():
    a, c = small_socketpair()
    try:
        data = pattern(6 * SLICE + 123, 12)
        b = buf_of(data)
        n = b.write_to_fd(a.fileno())
        assert 0 < n < len(data), n
        assert len(b) == len(data) - n
        assert b.bytes() == data[n:]
        # Full: nothing more goes.
        assert b.write_to_fd(a.fileno()) == -errno.EAGAIN
        assert len(b) == len(data) - n
        got = bytearray()
        writes = 1
        while len(b):
            drain_sock(c, got)
            r = b.write_to_fd(a.fileno())
            assert r > 0 or r == -errno.EAGAIN
            writes += 1
            assert writes < 100000
        drain_sock(c, got)
        assert bytes(got) == data
        assert b.slice_count() == 0
        assert b.write_to_fd(a.fileno()) == 0       # nothing to write
    finally:
        a.close()
        c.close()


def test_write_to_fd_after_partial_drain_and_small_slices():
    a, c = socket.socketpair()
    try:
        b = buf_of(pattern(SLICE + 10, 13))
        b.drain_bytes(5)
        b.move_from(buf_of(pattern(30000, 14)))
        expect = b.bytes()
        assert b.write_to_fd(a.fileno()) == len(expect)
        assert len(b) == 0 and b.slice_count() == 0
        got = bytearray()
        c.setblocking(False)
        drain_sock(c, got)
        assert bytes(got) == expect
    finally:
        a.close()
        c.close()


def test_write_to_fd_closed_peer():
    a, c = socket.socketpair()
    c.close()
    try:
        b = buf_of(b"x" * 10)
        r = b.write_to_fd(a.fileno())
        assert r in (-errno.EPIPE, -errno.ECONNRESET)
        assert b.bytes() == b"x" * 10
    finally:
        a.close()


# ------------------------------------------------------------ watermarks

def test_watermark_fires_once_above_and_once_at_low():
    events = []
    b = OwnedBuffer()
    b.set_high_watermark_for_test(100, events.append)
    b.append(b"x" * 100)                 # == high: not above
    assert events == []
    b.append(b"x")                       # 101 > 100
    assert events == [True]
    b.append(b"x" * 1000)
    b.append(b"x")
    assert events == [True]
    b.drain_bytes(len(b) - 51)           # 51 > low (50)
    assert events == [True]
    b.drain_bytes(1)                     # 50 == low
    assert events == [True, False]
    b.drain_bytes(10)
    b.append(b"x" * 60)                  # 100: not above
    assert events == [True, False]
    b.append(b"x")                       # 101
    assert events == [True, False, True]
    b.drain_bytes(10000)
    assert events == [True, False, True, False]


def test_watermark_odd_high_low_is_half_rounded_down():
    events = []
    b = OwnedBuffer()
    b.set_high_watermark_for_test(101, events.append)
    b.append(b"x" * 102)
    assert events == [True]
    b.drain_bytes(102 - 51)              # 51 > 50
    assert events == [True]
    b.drain_bytes(1)                     # 50 <= 101 // 2
    assert events == [True, False]


def test_watermark_single_large_append_and_drain():
    events = []
    b = OwnedBuffer()
    b.set_high_watermark_for_test(SLICE, events.append)
    b.append(b"y" * (3 * SLICE))
    assert events == [True]
    b.drain_bytes(3 * SLICE)
    assert events == [True, False]


def test_watermark_zero_disables():
    events = []
    b = OwnedBuffer()
    b.set_high_watermark_for_test(0, events.append)
    b.append(b"x" * 100000)
    b.drain_bytes(100000)
    assert events == []


def test_watermark_on_move_both_sides():
    src_events, dst_events = [], []
    src = OwnedBuffer()
    dst = OwnedBuffer()
    src.set_high_watermark_for_test(1000, src_events.append)
    dst.set_high_watermark_for_test(1000, dst_events.append)
    src.append(b"z" * 5000)
    assert src_events == [True]
    dst.move_from(src)
    assert src_events == [True, False]   # emptied: below low
    assert dst_events == [True]
    assert len(dst) == 5000


def test_watermark_on_read_and_write_fd():
    events = []
    r, w = nonblocking_pipe()
    try:
        b = OwnedBuffer()
        b.set_high_watermark_for_test(1000, events.append)
        os.write(w, b"r" * 1500)
        assert b.read_from_fd(r) == 1500
        assert events == [True]
        os.write(w, b"r" * 10)
        assert b.read_from_fd(r) == 10
        assert events == [True]
        a, c = socket.socketpair()
        try:
            assert b.write_to_fd(a.fileno()) == 1510
            assert events == [True, False]
        finally:
            a.close()
            c.close()
    finally:
        os.close(r)
        os.close(w)


def test_watermark_callback_exception_is_contained():
    def boom(above):
        raise RuntimeError("callback failed")
    b = OwnedBuffer()
    b.set_high_watermark_for_test(10, boom)
    b.append(b"x" * 20)
    b.drain_bytes(20)
    assert len(b) == 0


# ------------------------------------------------------------ freelist / leaks

def test_freelist_accounting_after_dropping_buffers():
    bufs = [buf_of(pattern(3 * SLICE + i, i)) for i in range(10)]
    allocated, free = _worker.slice_counts_for_test()
    assert allocated - free >= 39          # 3 + 9 * 4 slices
    del bufs
    gc.collect()
    allocated, free = _worker.slice_counts_for_test()
    # Nothing else holds slices in this test: all of them are in the freelist.
    assert allocated == free, (allocated, free)


def test_freelist_reuse_means_no_new_allocation():
    b = buf_of(b"w" * (8 * SLICE))
    del b
    gc.collect()
    allocated_before, free_before = _worker.slice_counts_for_test()
    assert free_before >= 8
    for _ in range(50):
        b = buf_of(b"w" * (8 * SLICE))
        b.drain_bytes(4 * SLICE)
        b.append(b"v" * (4 * SLICE))
        c = OwnedBuffer()
        c.move_from(b)
        c.drain_bytes(len(c))
        del b, c
    allocated_after, _ = _worker.slice_counts_for_test()
    assert allocated_after == allocated_before


def test_no_leak_through_fd_io():
    """Reads reserve up to 64 KiB of slices; what they do not fill goes back
    (no_slice_leak checks the freelist after the test)."""
    r, w = nonblocking_pipe()
    try:
        in_use = slices_in_use()
        for i in range(20):
            b = OwnedBuffer()
            data = pattern(1000 + i, i)
            os.write(w, data)
            assert b.read_from_fd(r) == len(data)
            assert b.read_from_fd(r) == -errno.EAGAIN     # reserved slices given back
            assert b.bytes() == data and b.slice_count() == 1
            assert slices_in_use() == in_use + 1
            del b
    finally:
        os.close(r)
        os.close(w)


# ------------------------------------------------------------ model check

def test_random_operations_against_model():
    rnd = random.Random(42)
    sizes = [0, 1, 2, 3, 10, 1023, 1024, 1025, 2047, 2048, SLICE - 1, SLICE, SLICE + 1, 50000]
    b = OwnedBuffer()
    model = bytearray()
    other = OwnedBuffer()
    other_model = bytearray()
    events = []
    b.set_high_watermark_for_test(3 * SLICE, events.append)
    above = False
    counter = 0
    r, w = nonblocking_pipe()
    a, c = small_socketpair()
    sent = bytearray()
    try:
        for step in range(3000):
            op = rnd.randrange(8)
            n = rnd.choice(sizes) if rnd.random() < 0.5 else rnd.randrange(0, 3 * SLICE)
            counter += 1
            if op in (0, 1):
                data = bytes([counter % 256]) * n
                b.append(data)
                model += data
            elif op == 2:
                b.drain_bytes(n)
                del model[:n]
            elif op == 3:
                data = bytes([(counter * 7) % 256]) * n
                other.append(data)
                other_model += data
            elif op == 4:
                b.move_from(other)
                model += other_model
                other_model = bytearray()
            elif op == 5 and n:
                data = bytes([(counter * 3) % 256]) * min(n, 60000)
                os.write(w, data)
                got = 0
                while got < len(data):
                    k = b.read_from_fd(r, rnd.choice([1, 2048, SLICE, 65536, 1 << 20]))
                    assert k > 0
                    got += k
                model += data
            elif op == 6:
                k = b.write_to_fd(a.fileno())
                if k > 0:
                    sent += model[:k]
                    del model[:k]
                else:
                    assert k in (0, -errno.EAGAIN)
                got = bytearray()
                drain_sock(c, got)
                assert len(got) <= len(sent)
                assert got == sent[:len(got)]
                del sent[:len(got)]
            else:
                k = rnd.randrange(0, len(model) + 2)
                b.drain_bytes(k)
                del model[:k]
            assert len(b) == len(model), step
            assert len(other) == len(other_model)
            # watermark model
            if not above and len(model) > 3 * SLICE:
                above = True
            elif above and len(model) <= 3 * SLICE // 2:
                above = False
            if events:
                assert events[-1] == above, (step, events[-3:], len(model))
            if step % 50 == 0:
                assert b.bytes() == bytes(model), step
                assert other.bytes() == bytes(other_model), step
                # slices are not wasted: at most one partly used slice per
                # small move plus the first and last
                assert b.slice_count() <= len(model) // 1024 + 2 or len(model) == 0
        for x, y in zip(events, events[1:]):
            assert x != y, events          # strictly alternating
        assert b.bytes() == bytes(model)
    finally:
        os.close(r)
        os.close(w)
        a.close()
        c.close()


# ------------------------------------------------------------ parsing in place

def layout(*parts):
    """A buffer whose slices hold exactly `parts`, in order: each part is put
    at the end of its own slice (a full tail never takes a small slice's
    bytes, so nothing coalesces)."""
    b = OwnedBuffer()
    for part in parts:
        t = OwnedBuffer()
        t.append(b"\0" * (SLICE - len(part)) + part)
        t.drain_bytes(SLICE - len(part))
        b.move_from(t)
    assert b.slice_count() == len(parts)
    assert b.bytes() == b"".join(parts)
    return b


PATTERNS = [b"\r\n\r\n", b"\r\n", b"ab", b"abc", b"aab", b"xyzzy", b"\x00\x01\x00\x01\x02"]


@pytest.mark.parametrize("pat", PATTERNS)
def test_search_pattern_split_at_every_position_across_two_slices(pat):
    for k in range(1, len(pat)):
        for head, tail in ((b"", b""), (b"GET / HTTP/1.1", b"body"), (b"x" * 3000, b"y" * 2000)):
            b = layout(head + pat[:k], pat[k:] + tail)
            data = b.bytes()
            assert b.search_bytes(pat) == len(head) == data.find(pat), (pat, k)
            assert b.search_bytes(pat, len(head)) == len(head)
            assert b.search_bytes(pat, len(head) + 1) == data.find(pat, len(head) + 1)
            # `end` one byte short of the match hides it.
            assert b.search_bytes(pat, 0, len(head) + len(pat) - 1) == -1
            assert b.search_bytes(pat, 0, len(head) + len(pat)) == len(head)


@pytest.mark.parametrize("pat", [p for p in PATTERNS if len(p) >= 3])
def test_search_pattern_split_at_every_position_across_three_slices(pat):
    m = len(pat)
    for k1 in range(1, m - 1):
        for k2 in range(k1 + 1, m):
            b = layout(b"pre" + pat[:k1], pat[k1:k2], pat[k2:] + b"post")
            assert b.search_bytes(pat) == 3, (pat, k1, k2)
            assert b.search_bytes(pat, 4) == b.bytes().find(pat, 4)
            assert b.search_bytes(pat, 0, 3 + m - 1) == -1


def test_search_pattern_over_many_one_byte_slices():
    pat = b"\r\n\r\n"
    b = layout(b"H", b"\r", b"\n", b"\r", b"\n", b"B")
    assert b.search_bytes(pat) == 1
    assert b.search_bytes(pat, 2) == -1
    assert b.search_bytes(b"\n\r") == 2


def test_search_near_misses_at_boundaries_are_not_matches():
    pat = b"\r\n\r\n"
    for k in range(1, 4):
        # The slice ends with the pattern's first k bytes, the next slice
        # does not go on with it; the real match comes later.
        b = layout(b"a" + pat[:k], b"Z" + pat[k:] + b"b" * 10, b"cc" + pat)
        data = b.bytes()
        assert b.search_bytes(pat) == data.find(pat) == len(data) - 4
    # Overlapping prefixes: "\r\n\r\r\n\r\n" has the match at 3.
    b = layout(b"\r\n\r", b"\r\n", b"\r\n")
    assert b.search_bytes(pat) == 3


def test_search_first_match_wins_inside_before_straddling():
    b = layout(b"ab" + b"xx" + b"a", b"b")
    assert b.search_bytes(b"ab") == 0
    assert b.search_bytes(b"ab", 1) == 4


def test_search_empty_pattern_and_out_of_range():
    b = layout(b"abc", b"def")
    assert b.search_bytes(b"") == 0
    assert b.search_bytes(b"", 6) == 6
    assert b.search_bytes(b"", 7) == -1
    assert b.search_bytes(b"c", 4) == -1
    assert b.search_bytes(b"abcdefg") == -1
    assert b.search_bytes(b"f", 0, 100) == 5
    assert b.search_bytes(b"d", 4, 2) == -1
    assert OwnedBuffer().search_bytes(b"a") == -1


def test_find_byte_at_every_offset():
    parts = [b"0123", b"4", b"56789ab", b"c"]
    b = layout(*parts)
    data = b.bytes()
    for i, c in enumerate(data):
        assert b.find_byte_for_test(c) == i
        assert b.find_byte_for_test(c, i) == i
        assert b.find_byte_for_test(c, i + 1) == -1
        assert b.find_byte_for_test(c, 0, i) == -1
    assert b.find_byte_for_test(ord("z")) == -1


def test_peek_at_every_offset_and_length():
    parts = [b"abc", b"d", b"efgh", b"ij"]
    b = layout(*parts)
    data = b.bytes()
    for off in range(len(data) + 2):
        for n in range(len(data) + 2):
            assert b.peek_bytes(off, n) == data[off:off + n], (off, n)
    assert b.bytes() == data and b.slice_count() == 4        # nothing drained


def test_cursor_walks_contiguous_chunks_from_every_offset():
    parts = [b"abc", b"d", b"efgh", b"ij"]
    b = layout(*parts)
    bounds = [0, 3, 4, 8, 10]
    for off in range(11):
        chunks = b.chunks_for_test(off)
        assert b"".join(chunks) == b"".join(parts)[off:]
        # One chunk per slice from the one holding `off`: never a copy.
        first = max(i for i, s in enumerate(bounds[:-1]) if s <= off) if off < 10 else 4
        assert chunks == ([b"".join(parts)[off:bounds[first + 1]]] + parts[first + 1:]
                          if off < 10 else [])


def test_move_n_at_every_offset():
    parts = [b"a" * 3, b"b" * 1500, b"c" * 2, b"d" * 2000]
    src_data = b"".join(parts)
    for n in range(len(src_data) + 2):
        if not (n < 10 or abs(n - 1503) < 3 or abs(n - 1505) < 3 or n > len(src_data) - 3
                or n % 97 == 0):
            continue
        src = layout(*parts)
        dst = buf_of(b"DST")
        dst.move_from(src, n)
        assert dst.bytes() == b"DST" + src_data[:n], n
        assert src.bytes() == src_data[n:], n
        assert len(src) == max(0, len(src_data) - n) and len(dst) == 3 + min(n, len(src_data))
        # The source stays usable, in order.
        src.append(b"tail")
        assert src.bytes() == src_data[n:] + b"tail"


def test_move_n_hands_whole_slices_over_without_copying():
    src = layout(b"x" * 5000, b"y" * 6000, b"z" * 7000)
    dst = OwnedBuffer()
    before = _worker.slice_counts_for_test()
    dst.move_from(src, 11000)
    assert _worker.slice_counts_for_test() == before
    assert dst.slice_count() == 2 and src.slice_count() == 1
    # Split in the middle of a slice: the first part is copied into a slice.
    dst.move_from(src, 100)
    assert dst.bytes() == b"x" * 5000 + b"y" * 6000 + b"z" * 100
    assert src.bytes() == b"z" * 6900


def test_move_n_watermarks_both_sides():
    src_events, dst_events = [], []
    src, dst = OwnedBuffer(), OwnedBuffer()
    src.set_high_watermark_for_test(1000, src_events.append)
    dst.set_high_watermark_for_test(1000, dst_events.append)
    src.append(b"q" * 3000)
    dst.move_from(src, 1001)
    assert dst_events == [True] and src_events == [True]
    dst.move_from(src, 1498)            # 501 left: above the low watermark
    assert src_events == [True]
    dst.move_from(src, 1)               # 500: at it
    assert src_events == [True, False] and dst_events == [True]


def test_linearize_inside_first_slice_copies_nothing():
    b = layout(b"GET / HTTP/1.1\r\n\r\n", b"body")
    got, copied = b.linearize_for_test(18)
    assert got == b"GET / HTTP/1.1\r\n\r\n" and not copied
    assert b.slice_count() == 2


@pytest.mark.parametrize("parts", [
    [b"ab", b"cd"], [b"a", b"b", b"c", b"d"], [b"x" * 3000, b"y" * 3000, b"z"],
    [b"p" * (SLICE - 1), b"q" * SLICE, b"r" * 10]])
def test_linearize_every_length_across_slices(parts):
    data = b"".join(parts)
    first = len(parts[0])
    lengths = sorted({n for n in range(0, len(data) + 2)
                      if n < 8 or abs(n - first) < 3 or n > len(data) - 3 or n % 1009 == 0})
    for n in lengths:
        b = layout(*parts)
        got, copied = b.linearize_for_test(n)
        if n > len(data):
            assert got is None
            continue
        assert got == data[:n], n
        assert copied == (n > first), n
        assert b.bytes() == data and len(b) == len(data)
        # Linearizing again is free.
        again, copied = b.linearize_for_test(n)
        assert again == data[:n] and not copied
        # Then the buffer works as before.
        b.append(b"more")
        b.drain_bytes(n)
        assert b.bytes() == data[n:] + b"more"


def test_linearize_larger_than_a_slice():
    data = pattern(3 * SLICE + 17, 21)
    b = buf_of(data)
    got, copied = b.linearize_for_test(2 * SLICE + 5)
    assert got == data[:2 * SLICE + 5] and copied
    assert b.bytes() == data
    b.drain_bytes(SLICE)            # part of the big slice
    assert b.bytes() == data[SLICE:]
    c = OwnedBuffer()
    c.move_from(b, SLICE + 10)      # the rest of it, and more
    assert c.bytes() == data[SLICE:2 * SLICE + 10]
    del b, c                        # the big slice goes back to malloc (no leak)


def test_linearize_keeps_watermark_state():
    events = []
    b = layout(b"a" * 2000, b"b" * 2000)
    b.set_high_watermark_for_test(3000, events.append)
    b.append(b"c")
    assert events == [True]
    b.linearize_for_test(3000)
    assert events == [True]


def test_linearize_on_empty_buffer():
    assert OwnedBuffer().linearize_for_test(0) == (None, False)
    assert OwnedBuffer().linearize_for_test(1) == (None, False)


def random_layout(rnd, n_slices, alphabet=b"ab\r\n"):
    parts = []
    for _ in range(n_slices):
        k = rnd.choice([1, 1, 2, 3, 4, 5, 10, 1500, SLICE - 1, SLICE])
        parts.append(bytes(rnd.choice(alphabet) for _ in range(k)) if k < 100
                     else bytes([rnd.choice(alphabet)]) * (k - 8) + bytes(
                         rnd.choice(alphabet) for _ in range(8)))
    return parts


def test_search_peek_linearize_random_layouts_against_bytes():
    rnd = random.Random(77)
    pats = [b"\r\n\r\n", b"\r\n", b"\n", b"a", b"ab\r", b"\r\na", b"b\r\n\r\na", b""]
    for trial in range(300):
        parts = random_layout(rnd, rnd.randrange(1, 7))
        b = layout(*parts)
        data = b.bytes()
        for _ in range(10):
            pat = rnd.choice(pats)
            start = rnd.randrange(0, len(data) + 2)
            end = rnd.randrange(0, len(data) + 3)
            assert b.search_bytes(pat, start, end) == data.find(pat, start, end), \
                (trial, [len(p) for p in parts], pat, start, end)
            assert b.search_bytes(pat, start) == data.find(pat, start)
            off = rnd.randrange(0, len(data) + 1)
            n = rnd.randrange(0, len(data) + 1)
            assert b.peek_bytes(off, n) == data[off:off + n]
        n = rnd.randrange(0, len(data) + 1)
        got, _ = b.linearize_for_test(n)
        assert got == (data[:n] if len(data) else None)
        assert b.bytes() == data


def test_random_parser_style_operations_against_model():
    """A codec's life: bytes arrive in random pieces, the parser finds the
    end of a header block, linearizes it, moves a body of known length on
    and drains; every step is checked against a bytes model."""
    rnd = random.Random(99)
    inbuf, out = OwnedBuffer(), OwnedBuffer()
    model, out_model = bytearray(), bytearray()
    for step in range(4000):
        op = rnd.randrange(7)
        if op <= 1:
            piece = bytes(rnd.choice(b"ab\r\n") for _ in range(rnd.choice([1, 2, 3, 50, 700])))
            if rnd.random() < 0.1:
                piece *= rnd.choice([10, 40])
            if rnd.random() < 0.5:
                inbuf.append(piece)
            else:
                inbuf.move_from(layout(piece[:len(piece) // 2], piece[len(piece) // 2:])
                                if len(piece) > 1 else buf_of(piece))
            model += piece
        elif op == 2:
            k = inbuf.search_bytes(b"\r\n\r\n")
            assert k == model.find(b"\r\n\r\n"), step
            if k >= 0:
                got, _ = inbuf.linearize_for_test(k + 4)
                assert got == bytes(model[:k + 4])
                inbuf.drain_bytes(k + 4)
                del model[:k + 4]
        elif op == 3:
            n = rnd.randrange(0, len(model) + 5)
            out.move_from(inbuf, n)
            out_model += model[:n]
            del model[:n]
        elif op == 4:
            n = rnd.randrange(0, len(out_model) + 5)
            out.drain_bytes(n)
            del out_model[:n]
        elif op == 5:
            c = rnd.choice(b"ab\r\nz")
            s = rnd.randrange(0, len(model) + 1)
            assert inbuf.find_byte_for_test(c, s) == model.find(bytes([c]), s)
        else:
            off = rnd.randrange(0, len(model) + 1)
            assert inbuf.peek_bytes(off, 64) == bytes(model[off:off + 64])
        assert len(inbuf) == len(model) and len(out) == len(out_model)
        if step % 100 == 0:
            assert inbuf.bytes() == bytes(model) and out.bytes() == bytes(out_model)
    assert inbuf.bytes() == bytes(model) and out.bytes() == bytes(out_model)
