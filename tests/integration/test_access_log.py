"""tcp_proxy access logs through real processes, compared with the real Envoy."""
import os
import re
import signal
import socket
import time

from helpers import (bootstrap, cluster, echo_server, free_port, hello_world_connection, listener,
                     recv_exactly, require_peer, run_impl, run_envoy_fast, tcp_proxy_filter,
                     wait_for)

FILE = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
L4_TEXT = ("%START_TIME% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS% "
           "%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
           "%RESPONSE_FLAGS% %RESPONSE_CODE% %PROTOCOL%\n")
L4_JSON = {"bytes_received": "%BYTES_RECEIVED%", "bytes_sent": "%BYTES_SENT%",
           "flags": "%RESPONSE_FLAGS%", "cluster": "%UPSTREAM_CLUSTER%",
           "upstream": "%UPSTREAM_HOST%", "duration": "%DURATION%"}


def _config(listen_port, upstream_port, admin_port, log_path):
    logs = [
        {"name": "default", "typed_config": {"@type": FILE, "path": log_path}},
        {"name": "text", "typed_config": {"@type": FILE, "path": log_path,
                                          "log_format": {"text_format_source": {"inline_string": L4_TEXT}}}},
        {"name": "json", "typed_config": {"@type": FILE, "path": log_path,
                                          "log_format": {"json_format": L4_JSON}}},
    ]
    return bootstrap([listener("l0", listen_port, [{"filters": [
        tcp_proxy_filter("up", access_log=logs)]}])], [cluster("up", [upstream_port])], admin_port)


def _normalise(line: str, ports) -> str:
    for p, name in ports:
        line = line.replace(":%d" % p, ":<%s>" % name)
    line = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<time>", line)
    line = re.sub(r":\d{4,5}\b", ":<port>", line)
    # durations: the field after the byte counts in each format
    line = re.sub(r'("duration":)\d+', r"\1<ms>", line)
    line = re.sub(r"^(\[<time>\] \"- - -\" 0 \S+ \d+ \d+ )\d+", r"\1<ms>", line)
    line = re.sub(r"^(<time> \S+ \S+ \S+ \S+ \d+ \d+ )\d+", r"\1<ms>", line)
    return line


def _records(impl, tmp_path):
    out = {}
    with echo_server() as up:
        for case in ("ok", "refused"):
            lp, ap = free_port(), free_port()
            upstream = up.port
            while case == "refused" and upstream in (up.port, lp, ap):
                upstream = free_port()      # a closed port, and none of ours
            log_path = str(tmp_path / ("%s-%s.log" % (impl, case)))
            with run_impl(impl, _config(lp, upstream, ap, log_path)):
                hello_world_connection(lp, echoed=(case == "ok"))
                try:
                    wait_for(lambda: os.path.exists(log_path) and
                             len(open(log_path).read().splitlines()) >= 3, timeout=5,
                             what="3 access log records")
                except AssertionError:
                    raise AssertionError("%s %s: access log is %r" % (
                        impl, case, open(log_path).read() if os.path.exists(log_path) else None))
            ports = [(lp, "listener"), (upstream, "upstream")]
            out[case] = [_normalise(l, ports) for l in open(log_path).read().splitlines()]
    return out


# What Envoy 1.40 writes for the two cases (normalised): the default format,
# L4_TEXT and L4_JSON (keys sorted, numbers unquoted), in config order.
EXPECTED = {
    "ok": [
        '[<time>] "- - -" 0 - 11 11 <ms> - "-" "-" "-" "-" "127.0.0.1:<upstream>"',
        '<time> 127.0.0.1 127.0.0.1:<listener> 127.0.0.1:<upstream> up 11 11 <ms> - 0 -',
        '{"bytes_received":11,"bytes_sent":11,"cluster":"up","duration":<ms>,"flags":"-",'
        '"upstream":"127.0.0.1:<upstream>"}',
    ],
    "refused": [
        '[<time>] "- - -" 0 UF,URX 0 0 <ms> - "-" "-" "-" "-" "127.0.0.1:<upstream>"',
        '<time> 127.0.0.1 127.0.0.1:<listener> 127.0.0.1:<upstream> up 0 0 <ms> UF,URX 0 -',
        '{"bytes_received":0,"bytes_sent":0,"cluster":"up","duration":<ms>,"flags":"UF,URX",'
        '"upstream":"127.0.0.1:<upstream>"}',
    ],
}


def test_access_log_records_match_envoy(tmp_path):
    ours = _records("envoy_fast", tmp_path)
    assert ours == EXPECTED
    require_peer("envoy")
    # json key order is Envoy's (sorted); compare line by line.
    assert _records("envoy", tmp_path) == ours


def test_sigusr1_reopens_log_files(tmp_path):
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        log_path = str(tmp_path / "access.log")
        with run_envoy_fast(_config(lp, up.port, ap, log_path), concurrency=2) as proxy:
            def one():
                with socket.create_connection(("127.0.0.1", lp), timeout=5) as c:
                    c.sendall(b"x")
                    assert recv_exactly(c, 1) == b"x"

            one()
            wait_for(lambda: len(open(log_path).read().splitlines()) == 3, what="first records")
            os.rename(log_path, log_path + ".1")           # logrotate
            proxy.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.3)
            one()
            wait_for(lambda: os.path.exists(log_path) and
                     len(open(log_path).read().splitlines()) == 3, what="records in the new file")
            assert len(open(log_path + ".1").read().splitlines()) == 3


def test_recycled_connections_log_their_own_bytes_and_peers(tmp_path):
    # A closed connection's objects serve the next one (the worker recycles
    # them): each record has its own connection's byte counts and peer,
    # whatever the one before it did (half-closed, reset, bulk).
    log_path = str(tmp_path / "seq.log")
    fmt = "%BYTES_RECEIVED% %BYTES_SENT% %DOWNSTREAM_REMOTE_ADDRESS%\n"
    logs = [{"name": "text", "typed_config": {"@type": FILE, "path": log_path,
                                              "log_format": {"text_format_source": {"inline_string": fmt}}}}]
    sizes = [1, 70000, 5, 300, 2, 131072, 9, 40, 3, 11]
    peers = []
    with echo_server() as up:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up", access_log=logs)]}])],
                        [cluster("up", [up.port])], ap)
        with run_envoy_fast(cfg):
            for i, n in enumerate(sizes):
                c = socket.create_connection(("127.0.0.1", lp), timeout=10)
                peers.append("127.0.0.1:%d" % c.getsockname()[1])
                c.sendall(b"x" * n)
                assert recv_exactly(c, n) == b"x" * n
                if i % 3 == 0:
                    c.shutdown(socket.SHUT_WR)          # half-close, read to the end
                    assert c.recv(1) == b""
                elif i % 3 == 1:
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()                               # i % 3 == 1: a reset
                wait_for(lambda: os.path.exists(log_path) and
                         len(open(log_path).read().splitlines()) == i + 1, timeout=5,
                         what="record %d" % (i + 1))
    records = [l.split() for l in open(log_path).read().splitlines()]
    assert [(int(r[0]), int(r[1]), r[2]) for r in records] == [(n, n, p) for n, p in zip(sizes, peers)]
