"""The write path's cost through tcp_proxy, counted by strace: with writes
queued to the end of the loop turn, a small echo through the proxy still
costs exactly one send per message each way and no epoll_ctl per message."""
import re
import socket

from helpers import echo_server, envoy_fast_under_strace, free_port, simple_proxy_config

TRIPS = 200
MSG = b"m" * 100

# "1234 sendto(12<TCP:[127.0.0.1:40000->127.0.0.1:50000]>, ..." and epoll_ctl lines
CALL = re.compile(r"^(\d+) +(sendto|sendmsg|writev|write|epoll_ctl)\((\d+)<(.+?)>,")


def test_small_echo_costs_one_send_per_message_and_no_epoll_ctl(tmp_path):
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        cfg = simple_proxy_config(up.port, lp, ap)
        with envoy_fast_under_strace(cfg, tmp_path, "sendto,sendmsg,write,writev,epoll_ctl") \
                as (proxy, trace):
            with socket.create_connection(("127.0.0.1", lp), timeout=10) as c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client_port = c.getsockname()[1]
                for _ in range(TRIPS):
                    c.sendall(MSG)
                    got = b""
                    while len(got) < len(MSG):
                        d = c.recv(4096)
                        assert d, "proxy closed"
                        got += d
                    assert got == MSG
        with open(trace) as f:
            lines = [m.groups() for m in map(CALL.match, f) if m]
    down = "127.0.0.1:%d->127.0.0.1:%d" % (lp, client_port)
    up_side = "->127.0.0.1:%d]" % up.port
    sends = [i for i, (_, call, _, addr) in enumerate(lines)
             if call != "epoll_ctl" and (down in addr or up_side in addr)]
    to_client = [i for i in sends if down in lines[i][3]]
    assert len(to_client) == TRIPS
    assert len(sends) == 2 * TRIPS, [lines[i] for i in sends[:6]]
    worker = {lines[i][0] for i in sends}
    assert len(worker) == 1
    # From the first message to the last, the worker changes no epoll interest.
    ctl = [lines[i] for i in range(sends[0], sends[-1])
           if lines[i][1] == "epoll_ctl" and lines[i][0] in worker]
    assert ctl == []
