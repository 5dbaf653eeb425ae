"""Peers that misbehave in every way at once: resets at random moments,
half-closes, upstreams that never read or vanish, clients that stop reading.
Nothing may crash a worker, log a handler error or leak a connection."""
import random
import socket
import threading
import time

from helpers import abort, free_port, run_envoy_fast, scripted_server, simple_proxy_config, wait_for


def _upstream(c: socket.socket):
    rnd = random.Random(c.getpeername()[1])
    how = rnd.choice(["echo", "close", "rst", "echo_then_rst", "hold", "half_close"])
    c.settimeout(3)
    try:
        if how == "close":
            c.close()
            return how
        if how == "rst":
            abort(c)
            return how
        if how == "hold":
            time.sleep(rnd.uniform(0, 1.5))
            c.close()
            return how
        moved = 0
        while True:
            data = c.recv(65536)
            if not data:
                break
            c.sendall(data)
            moved += len(data)
            if how == "echo_then_rst" and moved > 1000:
                abort(c)
                return how
        if how == "half_close":
            c.sendall(b"bye")
            c.shutdown(socket.SHUT_WR)
        c.close()
    except OSError:
        c.close()
    return how


def _client(port: int, seed: int) -> None:
    rnd = random.Random(seed)
    how = rnd.choice(["echo", "rst_early", "rst_mid", "half_close", "no_read", "close_now"])
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=3)
    except OSError:
        return
    try:
        if how == "close_now":
            c.close()
            return
        if how == "rst_early":
            abort(c)
            return
        payload = rnd.randbytes(rnd.choice([1, 100, 5000, 200000]))
        c.sendall(payload)
        if how == "rst_mid":
            time.sleep(rnd.uniform(0, 0.05))
            abort(c)
            return
        if how == "no_read":
            time.sleep(rnd.uniform(0, 0.5))
            c.close()
            return
        if how == "half_close":
            c.shutdown(socket.SHUT_WR)
        got = 0
        while got < len(payload):
            d = c.recv(65536)
            if not d:
                break
            got += len(d)
        c.close()
    except OSError:
        c.close()


def test_misbehaving_peers_leave_no_trace():
    with scripted_server(_upstream) as up:
        lp, ap = free_port(), free_port()
        cfg = simple_proxy_config(up.port, lp, ap, idle_timeout="1s")
        cfg["static_resources"]["clusters"][0]["connect_timeout"] = "0.5s"
        with run_envoy_fast(cfg, concurrency=2) as proxy:
            threads = []
            deadline = time.monotonic() + 6
            seed = 0
            while time.monotonic() < deadline and seed < 400:
                t = threading.Thread(target=_client, args=(lp, seed), daemon=True)
                t.start()
                threads.append(t)
                seed += 1
                time.sleep(0.005)
            for t in threads:
                t.join(10)
            wait_for(lambda: proxy.stats()["listener.127.0.0.1_%d.downstream_cx_active" % lp] == 0
                     and proxy.stats()["cluster.up.upstream_cx_active"] == 0,
                     timeout=10, what="every connection closed")
            s = proxy.stats()
            assert s["tcp.tp.downstream_cx_total"] == seed
            assert s["server.worker_restarts"] == 0
            assert s["cluster.up.upstream_rq_pending_active"] == 0
            log = proxy.log()
            assert "handler error" not in log and "Traceback" not in log, log[-3000:]
            # Still accepting and proxying afterwards. The upstream picks its
            # own behaviour and a loaded machine may time the connect out, so
            # only the accept and the upstream connection attempt are certain.
            with socket.create_connection(("127.0.0.1", lp), timeout=5):
                wait_for(lambda: proxy.stats()["tcp.tp.downstream_cx_total"] == seed + 1
                         and proxy.stats()["cluster.up.upstream_cx_total"] >=
                         s["cluster.up.upstream_cx_total"] + 1, timeout=10, what="one more")
            assert proxy.admin("/ready").strip() == "LIVE"
