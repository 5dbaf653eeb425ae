"""Shared test machinery: real processes, real sockets, bounded waits.

Everything binds 127.0.0.1 and stops by itself (every wait has a deadline).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Dict, Iterator, List, Optional

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s" % what)


def wait_port(port: int, timeout: float = 10.0) -> None:
    def ok():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False
    wait_for(ok, timeout, what="port %d" % port)


# ---------------------------------------------------------------- upstreams

class EchoServer:
    """Threaded TCP echo server; half-close aware (echoes, then shuts down
    its write side when the client does)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self._threads: List[threading.Thread] = []
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            t.start()

    def _serve(self, c: socket.socket) -> None:
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    c.shutdown(socket.SHUT_WR)
                    break
                c.sendall(data)
        except OSError:
            pass
        finally:
            c.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@contextlib.contextmanager
def echo_server() -> Iterator[EchoServer]:
    s = EchoServer()
    try:
        yield s
    finally:
        s.close()


# ------------------------------------------------------------------ configs

def cluster(name: str, ports: List[int], **extra) -> dict:
    """A STATIC cluster of 127.0.0.1 hosts; a port may be (port, weight)."""
    eps = []
    for p in ports:
        port, weight = (p if isinstance(p, tuple) else (p, 1))
        eps.append({"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": port}}},
            "load_balancing_weight": weight})
    c = {"name": name, "connect_timeout": "1s", "type": "STATIC",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": eps}]}}
    c.update(extra)
    return c


def tcp_proxy_filter(cluster_name: Optional[str] = None, stat_prefix: str = "tp", **extra) -> dict:
    cfg = {"@type": TCP_PROXY, "stat_prefix": stat_prefix}
    if cluster_name is not None:
        cfg["cluster"] = cluster_name
    cfg.update(extra)
    return {"name": "envoy.filters.network.tcp_proxy", "typed_config": cfg}


def listener(name: str, port: int, chains: List[dict], **extra) -> dict:
    l = {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
         "filter_chains": chains}
    l.update(extra)
    return l


def bootstrap(listeners: List[dict], clusters: List[dict], admin_port: Optional[int] = None) -> dict:
    b = {"static_resources": {"listeners": listeners, "clusters": clusters}}
    if admin_port is not None:
        b["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
    return b


def simple_proxy_config(upstream_port: int, listen_port: int, admin_port: int, **tcp_extra) -> dict:
    return bootstrap([listener("l0", listen_port, [{"filters": [tcp_proxy_filter("up", **tcp_extra)]}])],
                     [cluster("up", [upstream_port])], admin_port)


# ---------------------------------------------------------------- processes

class Proxy:
    """A running envoy-fast (or envoy) process."""

    def __init__(self, proc: subprocess.Popen, admin_port: Optional[int], log_path: str) -> None:
        self.proc = proc
        self.admin_port = admin_port
        self.log_path = log_path

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def admin(self, path: str, method: str = "GET") -> str:
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path), method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.read().decode()

    def stats(self) -> Dict[str, int]:
        out = {}
        for line in self.admin("/stats").splitlines():
            name, _, value = line.partition(": ")
            try:
                out[name] = int(value)
            except ValueError:
                pass
        return out

    def pids(self) -> List[int]:
        """The main process and its workers."""
        pids = [self.proc.pid]
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return pids


def _write_config(cfg: dict) -> str:
    fd, path = tempfile.mkstemp(suffix=".yaml", prefix="ef-test-")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


@contextlib.contextmanager
def run_envoy_fast(cfg: dict, concurrency: int = 1, args: Optional[List[str]] = None,
                   wait: Optional[List[int]] = None) -> Iterator[Proxy]:
    """Start `python -m envoy_fast` on `cfg`; wait for the admin (or `wait` ports)."""
    path = _write_config(cfg)
    log_path = path + ".log"
    logf = open(log_path, "w")
    cmd = [sys.executable, "-m", "envoy_fast", "-c", path, "--concurrency", str(concurrency),
           "-l", "info"] + (args or [])
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
    admin_port = (cfg.get("admin") or {}).get("address", {}).get("socket_address", {}).get("port_value")
    proxy = Proxy(proc, admin_port, log_path)
    try:
        for p in (wait if wait is not None else ([admin_port] if admin_port else [])):
            wait_port(p)
        if admin_port:
            wait_for(lambda: _ready(proxy), what="envoy_fast /ready")
        yield proxy
    finally:
        _stop(proc)
        logf.close()
        os.unlink(path)


def _ready(proxy: Proxy) -> bool:
    try:
        return proxy.admin("/ready").strip() == "LIVE"
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def envoy_binary() -> Optional[str]:
    return shutil.which("envoy")


@contextlib.contextmanager
def run_envoy(cfg: dict, wait: Optional[List[int]] = None) -> Iterator[Proxy]:
    """The real Envoy on the same config (the oracle)."""
    path = _write_config(cfg)
    log_path = path + ".log"
    logf = open(log_path, "w")
    cmd = [envoy_binary(), "-c", path, "--concurrency", "1", "-l", "warning",
           "--base-id", str(os.getpid() % 100000 + free_port())]
    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    admin_port = (cfg.get("admin") or {}).get("address", {}).get("socket_address", {}).get("port_value")
    proxy = Proxy(proc, admin_port, log_path)
    try:
        for p in (wait if wait is not None else ([admin_port] if admin_port else [])):
            wait_port(p, timeout=30)
        if admin_port:
            wait_for(lambda: _ready(proxy), timeout=30, what="envoy /ready")
        yield proxy
    finally:
        _stop(proc)
        logf.close()
        os.unlink(path)
