"""systemd readiness: READY=1 once live, RELOADING=1/READY=1 around a SIGHUP
reload, STOPPING=1 on drain, read from a real NOTIFY_SOCKET datagram socket."""
import signal
import socket

from helpers import echo_server, free_port, run_envoy_fast, simple_proxy_config, wait_for


def _messages(sock: socket.socket) -> list:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_notify_ready_reload_stopping(tmp_path, monkeypatch):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    got = []
    with echo_server() as up:
        cfg = simple_proxy_config(up.port, free_port(), free_port())
        with run_envoy_fast(cfg) as proxy:
            wait_for(lambda: got.extend(_messages(sock)) or any("READY=1" in m for m in got),
                     what="READY=1")
            ready = next(m for m in got if "READY=1" in m)
            assert "MAINPID=%d" % proxy.proc.pid in ready.split("\n")
            got.clear()
            proxy.reload(cfg)
            wait_for(lambda: got.extend(_messages(sock)) or len(got) >= 2, what="reload notices")
            assert got[0].startswith("RELOADING=1\nMONOTONIC_USEC=")
            assert "READY=1" in got[1]
            got.clear()
            proxy.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: got.extend(_messages(sock)) or got, what="STOPPING=1")
            assert got[0].startswith("STOPPING=1")
            assert proxy.proc.wait(timeout=10) == 0
    sock.close()


def test_no_notify_socket_no_message(tmp_path, monkeypatch):
    # Without NOTIFY_SOCKET nothing is sent (a stale socket path is not used).
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    from envoy_fast.server import sd_notify
    assert sd_notify.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert sd_notify.ready() is False
