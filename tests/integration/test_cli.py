"""The command line: --version, --mode validate, config errors before any
bind, a busy port, clean stop on SIGTERM/SIGINT, the bundled example."""
import contextlib
import copy
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from helpers import (ROOT, bootstrap, cluster, free_port, listener, named_server,
                     require_peer, require_strace, tcp_proxy_filter, wait_closed, wait_for,
                     wait_port)

import envoy_fast

CMD = [sys.executable, "-m", "envoy_fast"]
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def run_cli(args, timeout=20, wrap=()):
    return subprocess.run(list(wrap) + CMD + list(args), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def good_config(lp=None, ap=None, up_port=None):
    lp, ap = lp or free_port(), ap or free_port()
    return bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}])],
                     [cluster("up", [up_port or free_port()])], ap)


def write(tmp_path, cfg, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


def port_free(port):
    """Nobody listens on 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@contextlib.contextmanager
def holding_ports(*ports):
    """Listening sockets on `ports` (no SO_REUSEPORT: anyone else's bind fails)."""
    socks = []
    try:
        for p in ports:
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            s.listen(8)
            socks.append(s)
        yield
    finally:
        for s in socks:
            s.close()


def inet_binds(args, tmp_path, timeout=30):
    """Run the CLI under strace; (CompletedProcess, [AF_INET/AF_INET6 bind() lines])."""
    log = tmp_path / "strace.txt"
    r = run_cli(args, timeout=timeout,
                wrap=[require_strace(), "-f", "-qq", "-e", "trace=bind", "-e", "signal=none", "-o", str(log)])
    binds = [l for l in log.read_text().splitlines() if "AF_INET" in l]
    return r, binds


# ------------------------------------------------------------------- version

def test_version():
    r = run_cli(["--version"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"version: \S*%s" % re.escape(envoy_fast.__version__), r.stdout), r.stdout


def test_console_script():
    exe = require_peer("envoy-fast")
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert envoy_fast.__version__ in r.stdout


def test_no_config_is_an_error():
    r = run_cli([])
    assert r.returncode != 0
    assert "config" in r.stderr


# ------------------------------------------------------------- validate mode

def test_validate_good_config(tmp_path):
    lp, ap = free_port(), free_port()
    path = write(tmp_path, good_config(lp, ap))
    # Its ports are taken: validate must not need them.
    with holding_ports(lp, ap):
        r = run_cli(["--mode", "validate", "-c", path])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration '%s' OK" % path in r.stdout
    assert port_free(lp) and port_free(ap)


def test_strace_sees_a_bind(tmp_path):
    """The control for the "binds nothing" tests: serving a good config whose
    ports are taken, the failed bind() is in the trace."""
    lp, ap = free_port(), free_port()
    path = write(tmp_path, good_config(lp, ap))
    with holding_ports(lp, ap):
        r, binds = inet_binds(["-c", path, "--concurrency", "1"], tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert any("EADDRINUSE" in b and str(p) in b for b in binds for p in (lp, ap)), binds


def test_validate_binds_nothing(tmp_path):
    path = write(tmp_path, good_config())
    r, binds = inet_binds(["--mode", "validate", "-c", path], tmp_path)
    assert r.returncode == 0, r.stderr
    assert binds == []


def _bad_duration(c):
    c["static_resources"]["clusters"][0]["connect_timeout"] = "500ms"


def _unknown_field(c):
    c["static_resources"]["clusters"][0]["bogus_field"] = 1


def _unknown_cluster(c):
    c["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["cluster"] = "nosuch"


def _duplicate_cluster(c):
    cs = c["static_resources"]["clusters"]
    cs.append(copy.deepcopy(cs[0]))


def _http_connection_manager(c):
    # An HCM field envoy_fast does not implement (RDS).
    c["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0] = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {"@type": HCM, "stat_prefix": "h",
                         "rds": {"route_config_name": "r", "config_source": {"ads": {}}},
                         "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                             "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}


FILTER0 = "static_resources.listeners[0].filter_chains[0].filters[0]"
BAD = {
    "bad_duration": (_bad_duration, ["static_resources.clusters[0].connect_timeout", "500ms"]),
    "unknown_field": (_unknown_field, ["static_resources.clusters[0]", "bogus_field"]),
    "unknown_cluster": (_unknown_cluster, [FILTER0, "nosuch"]),
    "duplicate_cluster": (_duplicate_cluster, ["static_resources.clusters[1]", "duplicate cluster 'up'"]),
    "http_connection_manager": (_http_connection_manager, [FILTER0 + ".typed_config.rds", "not supported"]),
}


def _bad_config(tmp_path, which):
    lp, ap = free_port(), free_port()
    cfg = good_config(lp, ap)
    BAD[which][0](cfg)
    return write(tmp_path, cfg), lp, ap


@pytest.mark.parametrize("mode", ["validate", "serve"])
@pytest.mark.parametrize("which", sorted(BAD))
def test_bad_config_exits_1_naming_the_path(tmp_path, which, mode):
    path, lp, ap = _bad_config(tmp_path, which)
    r = run_cli(["--mode", mode, "-c", path, "--concurrency", "1"])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    for needle in BAD[which][1]:
        assert needle in out, (needle, out)
    assert path in out
    assert "OK" not in r.stdout
    assert port_free(lp) and port_free(ap)


@pytest.mark.parametrize("which", ["bad_duration", "unknown_cluster", "duplicate_cluster"])
def test_bad_config_in_serve_mode_binds_nothing(tmp_path, which):
    path, lp, ap = _bad_config(tmp_path, which)
    r, binds = inet_binds(["-c", path, "--concurrency", "1"], tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert binds == []


# ----------------------------------------------------------------- serve mode

@contextlib.contextmanager
def serve(args, log_path):
    """`python -m envoy_fast ARGS` with output to `log_path`; always stopped."""
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(CMD + list(args), stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def ready(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/ready" % port, timeout=2) as r:
            return r.read().decode().strip() == "LIVE"
    except OSError:
        return False


@pytest.mark.parametrize("busy", ["listener", "admin"])
def test_port_in_use(tmp_path, busy):
    lp, ap = free_port(), free_port()
    path = write(tmp_path, good_config(lp, ap))
    port = lp if busy == "listener" else ap
    with holding_ports(port):
        r = run_cli(["-c", path, "--concurrency", "2"], timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Traceback" not in out, out
    assert "127.0.0.1:%d" % port in out, out
    assert re.search(r"(?i)in use|cannot bind", out), out
    # The message names what could not bind: the admin, or which listener.
    if busy == "admin":
        assert "cannot bind admin address '127.0.0.1:%d'" % port in out, out
    else:
        assert "cannot bind '127.0.0.1:%d' for listener" % port in out, out
    started = [int(p) for p in re.findall(r"worker \d+ started \(pid (\d+)\)", out)]
    wait_for(lambda: not any(_alive(p) for p in started), 5, what="workers gone")
    other = ap if busy == "listener" else lp
    wait_for(lambda: port_free(other), 5, what="port %d released" % other)


def _alive(pid):
    """Running (a zombie counts as gone: a container's init may not reap it)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(tmp_path, sig):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        path = write(tmp_path, good_config(lp, ap, up.port))
        with serve(["-c", path, "--concurrency", "2"], tmp_path / "log") as proc:
            wait_for(lambda: ready(ap), 10, what="ready")
            workers = wait_for(lambda: len(_children(proc.pid)) == 2 and _children(proc.pid), 5,
                               what="2 workers")
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                assert s.recv(10) == b"up\n"
            time.sleep(0.1)
            proc.send_signal(sig)
            rc = proc.wait(timeout=10)
        log = (tmp_path / "log").read_text()
        assert rc == 0, log
        wait_for(lambda: not any(_alive(p) for p in workers), 5, what="workers gone")
        assert port_free(lp) and port_free(ap)


def test_sigterm_with_open_connection_exits_after_drain_time(tmp_path):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        path = write(tmp_path, good_config(lp, ap, up.port))
        with serve(["-c", path, "--concurrency", "1", "--drain-time-s", "1"], tmp_path / "log") as proc:
            wait_for(lambda: ready(ap), 10, what="ready")
            workers = _children(proc.pid)
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                assert s.recv(10) == b"up\n"
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(timeout=10)
                took = time.monotonic() - t0
                data, _ = wait_closed(s, 5)
        assert rc == 0, (tmp_path / "log").read_text()
        assert took < 5, took
        assert data == b""
        wait_for(lambda: not any(_alive(p) for p in workers), 5, what="workers gone")


# ------------------------------------------------------------ bundled example

def test_bundled_example(tmp_path):
    curl = require_peer("curl")
    example = os.path.join(ROOT, "examples", "envoy-demo.yaml")
    for p in (10000, 10001, 9901):
        if not port_free(p):
            pytest.skip("port %d is busy" % p)
    r = run_cli(["--mode", "validate", "-c", example])
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
    with serve(["-c", example, "--concurrency", "1"], tmp_path / "log") as proc:
        wait_port(9901)
        wait_for(lambda: ready(9901), 10, what="admin ready")
        assert ready(10000), "GET /ready through the tcp_proxy on :10000"
        out = subprocess.run([curl, "-s", "--max-time", "5", "localhost:10000/ready"],
                             capture_output=True, text=True, timeout=10).stdout
        assert out.strip() == "LIVE"
        out = subprocess.run([curl, "-s", "--max-time", "5", "localhost:10001/"],
                             capture_output=True, text=True, timeout=10).stdout
        assert out == "Hello from envoy_fast\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def _http_example_on_free_ports(tmp_path):
    """examples/envoy-demo.yaml with its three ports moved to free ones
    (so it runs beside anything): (path, {old port: new port})."""
    with open(os.path.join(ROOT, "examples", "envoy-demo.yaml")) as f:
        text = f.read()
    ports = {old: free_port() for old in (9901, 10000, 10001)}
    for old, new in ports.items():
        text = text.replace("port_value: %d " % old, "port_value: %d " % new)
    path = tmp_path / "http-demo.yaml"
    path.write_text(text)
    return str(path), ports


def _get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return r.status, r.read().decode()


def test_bundled_http_example_validates():
    example = os.path.join(ROOT, "examples", "envoy-demo.yaml")
    r = run_cli(["--mode", "validate", "-c", example])
    assert r.returncode == 0 and "configuration '%s' OK" % example in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("impl", ["envoy", "envoy_fast"])
def test_bundled_http_example_answers_as_its_comments_say(tmp_path, impl):
    """What the example's header promises, through the real Envoy (which
    shows the example itself is right) and through envoy_fast."""
    from helpers import run_envoy, run_envoy_fast
    path, ports = _http_example_on_free_ports(tmp_path)
    with open(path) as f:
        cfg = yaml.safe_load(f)
    run = run_envoy if impl == "envoy" else run_envoy_fast
    with run(cfg, wait=[ports[9901], ports[10000], ports[10001]]):
        assert _get(ports[10000], "/ready") == (200, "LIVE\n")
        assert _get(ports[10001], "/") == (200, "Hello from envoy_fast\n")
        assert _get(ports[10001], "/ready") == (200, "LIVE\n")
        status, body = _get(ports[10001], "/stats")
        assert status == 200 and "http.demo_http.downstream_rq_total: " in body
