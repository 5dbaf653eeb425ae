"""A worker holds only the descriptors it needs: its own listen sockets, its
control channel, its epoll and stdio; nothing of the main process (admin
connections, the main loop's eventfd/epoll/io_uring, pidfds, pipes) nor of
other workers."""
import http.client
import os
import signal
import socket

from helpers import (bootstrap, cluster, echo_server, free_port, listener, recv_exactly,
                     run_envoy_fast, tcp_proxy_filter, wait_for)

CLOSE_WAIT = "08"
LISTEN = "0A"


def _tcp_sockets(state: str, port: int) -> set:
    """Inodes of IPv4 TCP sockets in `state` whose local port is `port`."""
    out = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] == state and int(parts[1].split(":")[1], 16) == port:
                out.add(int(parts[9]))
    return out


def _unix_sockets() -> set:
    with open("/proc/net/unix") as f:
        next(f)
        return {int(line.split()[6]) for line in f}


def _descriptors(pid: int) -> dict:
    """fd -> readlink target, stdio excluded."""
    d = "/proc/%d/fd" % pid
    out = {}
    for name in os.listdir(d):
        if int(name) > 2:
            try:
                out[int(name)] = os.readlink(os.path.join(d, name))
            except OSError:
                pass
    return out


def _assert_only_its_own(pid: int, ports) -> None:
    fds = _descriptors(pid)
    listening = {p: _tcp_sockets(LISTEN, p) for p in ports}
    unix = _unix_sockets()
    kinds = {"listen": [], "control": [], "epoll": [], "other": []}
    for fd, target in fds.items():
        if target.startswith("socket:["):
            inode = int(target[8:-1])
            owner = [p for p, inodes in listening.items() if inode in inodes]
            if owner:
                kinds["listen"].append(owner[0])
            elif inode in unix:
                kinds["control"].append(fd)
            else:
                kinds["other"].append(target)
        elif target == "anon_inode:[eventpoll]":
            kinds["epoll"].append(fd)
        else:
            kinds["other"].append(target)
    assert kinds["other"] == [], (pid, fds)
    # One listen socket per listener: this worker's slot only.
    assert sorted(kinds["listen"]) == sorted(ports), (pid, fds)
    assert len(kinds["control"]) == 1 and len(kinds["epoll"]) == 1, (pid, fds)


def test_reload_started_and_restarted_workers_hold_only_their_descriptors():
    with echo_server() as up:
        p1, p2, ap = free_port(), free_port(), free_port()
        chain = [{"filters": [tcp_proxy_filter("up")]}]
        cfg = bootstrap([listener("a", p1, chain), listener("b", p2, chain)],
                        [cluster("up", [up.port])], ap)
        with run_envoy_fast(cfg, concurrency=2) as proxy:
            admin = http.client.HTTPConnection("127.0.0.1", ap, timeout=5)
            admin.request("GET", "/ready")
            assert admin.getresponse().read().strip() == b"LIVE"     # kept alive
            first = set(proxy.pids()[1:])
            proxy.reload(cfg)
            wait_for(lambda: "reloaded:" in proxy.log(), timeout=5, what="reload")
            wait_for(lambda: not first & set(proxy.pids()[1:]), timeout=5,
                     what="old generation gone")
            new = proxy.pids()[1:]
            assert len(new) == 2
            for pid in new:
                _assert_only_its_own(pid, [p1, p2])
            # A worker restarted by main's loop too.
            os.kill(new[0], signal.SIGKILL)
            wait_for(lambda: len(proxy.pids()) == 3 and new[0] not in proxy.pids(),
                     timeout=5, what="a replacement worker")
            for pid in proxy.pids()[1:]:
                _assert_only_its_own(pid, [p1, p2])
            with socket.create_connection(("127.0.0.1", p1), timeout=5) as c:
                c.sendall(b"x")
                assert recv_exactly(c, 1) == b"x"


def test_closed_admin_connection_leaves_no_close_wait_after_reload():
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        chain = [{"filters": [tcp_proxy_filter("up")]}]
        cfg = bootstrap([listener("l0", lp, chain)], [cluster("up", [up.port])], ap)
        with run_envoy_fast(cfg, concurrency=2) as proxy:
            admin = http.client.HTTPConnection("127.0.0.1", ap, timeout=5)
            admin.request("GET", "/ready")
            assert admin.getresponse().read().strip() == b"LIVE"
            proxy.reload(cfg)
            wait_for(lambda: "reloaded:" in proxy.log(), timeout=5, what="reload")
            wait_for(lambda: len(proxy.pids()) == 3, timeout=5, what="old generation gone")
            admin.close()
            # main closes its side on EOF; no worker may keep it open.
            wait_for(lambda: not _tcp_sockets(CLOSE_WAIT, ap), timeout=5,
                     what="no admin connection left in CLOSE-WAIT")
