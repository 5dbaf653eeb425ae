"""What an operator sees: signals at any time, hostile configs, the
application log (levels, --log-path, --log-format, application_log_config,
rate-limited upstream failures), process titles, reload outcomes and their
counters, enable_reuse_port, the flags' checks and --help."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from helpers import (ROOT, blackhole_server, bootstrap, cluster, envoy_binary, free_port, listener,
                     named_server, require_peer, run_envoy, run_envoy_fast, tcp_proxy_filter, wait_closed,
                     wait_for, wait_stat)

from test_cli import ready, serve

CMD = [sys.executable, "-m", "envoy_fast"]


def config(lp, ap, up_port, **listener_extra):
    return bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}], **listener_extra)],
                     [cluster("up", [up_port])], ap)


def write(tmp_path, cfg, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return str(p)


def run_cli(args, timeout=30):
    return subprocess.run(CMD + list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)




def caught_signals(pid):
    """The set of signals `pid` has a handler for (SigCgt)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                mask = int(line.split()[1], 16)
                return {s for s in range(1, 65) if mask & (1 << (s - 1))}
    return set()


def wait_handlers_installed(proc):
    """Wait until the interpreter runs our code: SIGTERM is handled. (Before
    that no Python program can catch anything.)"""
    wait_for(lambda: proc.poll() is not None or signal.SIGTERM in caught_signals(proc.pid),
             10, interval=0.001, what="start-up signal handlers")
    assert proc.poll() is None


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def cmdline(pid):
    """argv[0] as /proc shows it ("" once the process is gone)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode()
    except OSError:
        return ""


def require_envoy():
    """The rest of the test compares with the real Envoy."""
    require_peer("envoy")


def refused_port():
    """A port nobody listens on (connects are refused)."""
    return free_port()


# ------------------------------------------------------- signals in start-up

@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1])
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3])
def test_signal_during_start_up_does_not_kill_main(tmp_path, sig, delay):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        path = write(tmp_path, config(lp, ap, up.port))
        with serve(["-c", path, "--concurrency", "1"], tmp_path / "log") as proc:
            wait_handlers_installed(proc)
            time.sleep(delay)
            proc.send_signal(sig)
            wait_for(lambda: proc.poll() is not None or ready(ap), 15, what="live")
            log = (tmp_path / "log").read_text()
            assert proc.poll() is None, (proc.returncode, log)
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                assert s.recv(10) == b"up\n"
            if sig == signal.SIGHUP:
                # Remembered and applied once live: a reload happened.
                wait_for(lambda: "reloaded: generation 1" in (tmp_path / "log").read_text(), 10,
                         what="the deferred reload")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        assert "Traceback" not in (tmp_path / "log").read_text()


@pytest.mark.parametrize("when", ["start-up", "live"])
def test_second_ctrl_c_exits_without_traceback(tmp_path, when):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        path = write(tmp_path, config(lp, ap, up.port))
        with serve(["-c", path, "--concurrency", "2"], tmp_path / "log") as proc:
            held = None
            if when == "start-up":
                wait_handlers_installed(proc)
            else:
                wait_for(lambda: ready(ap), 15, what="live")
                # An open connection keeps the drain going: only the second
                # Ctrl-C ends it.
                held = socket.create_connection(("127.0.0.1", lp), timeout=5)
                assert held.recv(10) == b"up\n"
            t0 = time.monotonic()
            for _ in range(3):
                proc.send_signal(signal.SIGINT)
                time.sleep(0.02)
            rc = proc.wait(timeout=20)
            took = time.monotonic() - t0
            if held is not None:
                held.close()
        log = (tmp_path / "log").read_text()
        assert rc == 0, log
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
        assert took < 10, took


# ------------------------------------------------------------ hostile configs

def _nested_json(depth):
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("mode", ["validate", "serve"])
@pytest.mark.parametrize("doc", ["json-50k", "json-in-static-layer", "yaml-in-static-layer"])
def test_deep_nesting_is_a_clean_error(tmp_path, mode, doc):
    if doc == "json-50k":
        path = write(tmp_path, _nested_json(50000), "deep.json")
    else:
        # Deep enough for the parser, too deep for Envoy (100 levels).
        text = '{"layered_runtime": {"layers": [{"name": "a", "static_layer": %s}]}}' % _nested_json(900)
        path = write(tmp_path, text, "deep.json" if doc.startswith("json") else "deep.yaml")
    r = run_cli(["--mode", mode, "-c", path, "--concurrency", "1"])
    out = r.stdout + r.stderr
    assert r.returncode == 1, out[-2000:]
    assert "Traceback" not in out and "RecursionError" not in out, out[-2000:]
    assert "exceeded maximum nesting depth" in out, out[-2000:]
    assert re.search(r"line 1, column \d+", out), out[-2000:]


def test_nesting_limit_is_envoys(tmp_path):
    """100 levels load, 101 do not, in envoy_fast as in Envoy."""
    def doc(depth):
        # 4 levels above the static layer.
        return '{"layered_runtime": {"layers": [{"name": "a", "static_layer": %s}]}}' % _nested_json(depth - 4)
    cases = [(write(tmp_path, doc(depth), "d%d.json" % depth), ok) for depth, ok in ((100, True), (101, False))]
    for path, ok in cases:
        r = run_cli(["--mode", "validate", "-c", path])
        assert (r.returncode == 0) == ok, (path, r.stderr[-500:])
    require_envoy()
    for path, ok in cases:
        e = subprocess.run([envoy_binary(), "--mode", "validate", "-c", path, "-l", "critical"],
                           capture_output=True, text=True, timeout=60)
        assert (e.returncode == 0) == ok, (path, e.stdout[-300:], e.stderr[-300:])


# ------------------------------------------------------------------- logging

def test_start_up_is_logged(tmp_path):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(config(lp, ap, up.port), concurrency=2) as proxy:
            pass
    log = proxy.log()
    assert re.search(r"\[info\]\[main\] starting envoy_fast \S+: config '%s', concurrency 2"
                     % re.escape(proxy.config_path), log), log
    assert "listener 'l0' on 127.0.0.1:%d" % lp in log
    assert "cluster 'up': STATIC, ROUND_ROBIN, 1 endpoint(s)" in log
    assert "caught SIGTERM" in log


def _burst(port, n):
    """n connections through a proxy whose upstream refuses: each is closed."""
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            data, _ = wait_closed(c, 5)
            assert data == b""


def test_refused_upstream_is_logged_at_default_level_rate_limited(tmp_path):
    lp, ap = free_port(), free_port()
    with run_envoy_fast(config(lp, ap, refused_port()), concurrency=1) as proxy:
        t0 = time.monotonic()
        _burst(lp, 20)
        wait_for(lambda: "upstream connect failed" in proxy.log(), 5, what="the warning")
        time.sleep(1.2)
        _burst(lp, 5)
        wait_for(lambda: proxy.log().count("upstream connect failed") >= 2, 5, what="a second warning")
        stats = proxy.stats()
        log = proxy.log()
        took = time.monotonic() - t0
    lines = [l for l in log.splitlines() if "upstream connect failed" in l]
    assert stats["cluster.up.upstream_cx_connect_fail"] == 25
    # At most one line a second: 25 failures in ~1.5 s give 2 (or 3) lines.
    assert 2 <= len(lines) <= int(took) + 2, (took, lines)
    assert all("[warning][upstream]" in l and "cluster 'up'" in l and "Connection refused" in l
               for l in lines), lines
    # The next line says how many were left out: the second burst's first
    # failure reports all of the first burst's (its own rest is still pending).
    left_out = sum(int(m) for m in re.findall(r"and (\d+) more since the last such line", log))
    assert 21 <= left_out + len(lines) <= 25, lines
    assert "more since" not in lines[0]


@pytest.mark.parametrize("args", [["-l", "error"], ["--component-log-level", "upstream:error"]])
def test_upstream_warnings_follow_the_levels(tmp_path, args):
    lp, ap = free_port(), free_port()
    with run_envoy_fast(config(lp, ap, refused_port()), args=args) as proxy:
        _burst(lp, 3)
        wait_stat(proxy, "cluster.up.upstream_cx_connect_fail", 3)
        time.sleep(0.3)
        log = proxy.log()
    assert "upstream connect failed" not in log, log


def test_connect_timeout_is_logged():
    with blackhole_server() as hole:
        lp, ap = free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up", max_connect_attempts=2)]}])],
                        [cluster("up", [hole.port], connect_timeout="0.25s")], ap)
        with run_envoy_fast(cfg) as proxy:
            _burst(lp, 1)
            wait_for(lambda: "connect timeout" in proxy.log(), 5, what="the warning")
            log = proxy.log()
    assert re.search(r"\[warning\]\[upstream\] cluster 'up': upstream connect failed to 127.0.0.1:%d: "
                     r"connect timeout \(0.25s\) \(2 attempts\); closing the downstream connection"
                     % hole.port, log), log


def test_worker_death_and_restart_are_logged():
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(config(lp, ap, up.port)) as proxy:
            victim = children(proxy.proc.pid)[0]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: children(proxy.proc.pid) and children(proxy.proc.pid) != [victim], 10,
                     what="a new worker")
            new = children(proxy.proc.pid)[0]
            wait_for(lambda: "(pid %d)" % new in proxy.log(), 5, what="the restart logged")
            log = proxy.log()
    assert "[error][main] worker 0 killed by SIGKILL; restarting it" in log, log
    assert "worker 0 of generation 0 started (pid %d)" % new in log


def test_overflow_is_logged(tmp_path):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = config(lp, ap, up.port)
        cfg["static_resources"]["clusters"][0]["circuit_breakers"] = {
            "thresholds": [{"max_connections": 1}]}
        with run_envoy_fast(cfg) as proxy:
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as first:
                assert first.recv(10) == b"up\n"
                _burst(lp, 1)
                wait_for(lambda: "overflow" in proxy.log(), 5, what="overflow warning")
            log = proxy.log()
    assert re.search(r"\[warning\]\[upstream\] cluster 'up': upstream connection overflow "
                     r"\(max_connections 1\)", log), log


def test_listener_connection_limit_is_logged():
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = config(lp, ap, up.port)
        cfg["layered_runtime"] = {"layers": [{"name": "static", "static_layer": {
            "envoy.resource_limits.listener.l0.connection_limit": 1}}]}
        with run_envoy_fast(cfg) as proxy:
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as held:
                assert held.recv(10) == b"up\n"
                _burst(lp, 3)
                time.sleep(1.1)
                _burst(lp, 1)
                wait_stat(proxy, "listener.127.0.0.1_%d.downstream_cx_overflow" % lp, 4)
                wait_for(lambda: proxy.log().count("connection limit") >= 2, 5, what="the second warning")
            log = proxy.log()
    lines = [l for l in log.splitlines() if "connection limit" in l]
    assert "[warning][worker] listener 'l0': connection limit (1) reached: closing new connections" in lines[0]
    # The last line (the 4th refusal, a second later) counts all left out before it.
    left_out = sum(int(m) for m in re.findall(r"and (\d+) more since the last such line", log))
    assert left_out + len(lines) == 4, lines
    assert len(lines) <= 3, lines


def test_out_of_descriptors_is_logged(tmp_path):
    """accept() failing with EMFILE pauses accepting, and says so."""
    import resource
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        path = write(tmp_path, config(lp, ap, up.port))

        def low_nofile():
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        with open(tmp_path / "log", "w") as logf:
            proc = subprocess.Popen(CMD + ["-c", path, "--concurrency", "1"], stdout=logf,
                                    stderr=subprocess.STDOUT, cwd=ROOT, preexec_fn=low_nofile)
            held = []
            try:
                wait_for(lambda: ready(ap), 15, what="live")
                for _ in range(60):
                    held.append(socket.create_connection(("127.0.0.1", lp), timeout=5))
                wait_for(lambda: "Too many open files" in (tmp_path / "log").read_text(), 10,
                         what="the EMFILE warning")
            finally:
                for c in held:
                    c.close()
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=15)
    log = (tmp_path / "log").read_text()
    assert "[warning][worker] listener 'l0': accept failed: Too many open files; pausing accepts" in log, log


def test_log_path_format_and_reopen(tmp_path):
    lp, ap = free_port(), free_port()
    log_file, rotated = tmp_path / "envoy.log", tmp_path / "envoy.log.1"
    with run_envoy_fast(config(lp, ap, refused_port()), concurrency=1,
                        args=["--log-path", str(log_file), "--log-format", "%L|%n|%t|%v"]) as proxy:
        text = log_file.read_text()
        assert re.search(r"^I\|main\|%d\|all workers started" % proxy.proc.pid, text, re.M), text
        worker = children(proxy.proc.pid)[0]
        _burst(lp, 1)
        wait_for(lambda: "upstream connect failed" in log_file.read_text(), 5, what="warning")
        assert re.search(r"^W\|upstream\|%d\|cluster 'up'" % worker, log_file.read_text(), re.M)
        # Rotation: move the file away, SIGUSR1: main and the (same) worker
        # write to a new file.
        os.rename(str(log_file), str(rotated))
        proxy.proc.send_signal(signal.SIGUSR1)
        wait_for(lambda: log_file.exists(), 5, what="a new log file")
        time.sleep(1.2)          # the worker got the request; one warning a second
        _burst(lp, 1)
        wait_for(lambda: "upstream connect failed" in log_file.read_text(), 5,
                 what="the worker's warning in the new file")
        assert children(proxy.proc.pid) == [worker]
        stderr_text = proxy.log()
    assert "caught SIGUSR1" in rotated.read_text()
    assert "all workers started" not in stderr_text
    assert "Traceback" not in stderr_text, stderr_text


def test_application_log_config_json_format(tmp_path):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = config(lp, ap, up.port)
        cfg["application_log_config"] = {"log_format": {"json_format": {
            "level": "%l", "logger": "%n", "message": "%j", "n": 3}}}
        with run_envoy_fast(cfg) as proxy:
            lines = proxy.log().splitlines()
    records = [json.loads(l) for l in lines if l.startswith("{")]
    assert any(r["message"].startswith("all workers started") for r in records), lines
    assert all(set(r) == {"level", "logger", "message", "n"} and r["n"] == 3 for r in records)
    assert len(records) == len([l for l in lines if l.strip()]), lines


def test_application_log_config_text_format_and_conflict(tmp_path):
    lp, ap = free_port(), free_port()
    cfg = config(lp, ap, free_port())
    cfg["application_log_config"] = {"log_format": {"text_format": "<%l> %v"}}
    with run_envoy_fast(cfg) as proxy:
        assert re.search(r"^<info> all workers started", proxy.log(), re.M), proxy.log()
    path = write(tmp_path, cfg)
    r = run_cli(["-c", path, "--log-format", "%v", "--mode", "validate"])
    assert r.returncode == 1
    msg = "Only one of ApplicationLogConfig.log_format or CLI option --log-format can be specified."
    assert msg in r.stderr
    require_envoy()
    e = subprocess.run([envoy_binary(), "-c", path, "--log-format", "%v", "--mode", "validate"],
                       capture_output=True, text=True, timeout=60)
    assert e.returncode == 1 and msg in e.stdout + e.stderr


def test_component_log_level_checked_like_envoy(tmp_path):
    path = write(tmp_path, config(free_port(), free_port(), free_port()))
    cases = (("foo:debug", "invalid component specified 'foo'"),
             ("upstream:bogus", "invalid log level specified 'bogus'"))
    for spec, want in cases:
        r = run_cli(["-c", path, "--mode", "validate", "--component-log-level", spec])
        assert r.returncode == 1 and want in r.stderr, r.stderr
    r = run_cli(["-c", path, "--mode", "validate", "--component-log-level", "upstream:debug,http:trace"])
    assert r.returncode == 0, r.stderr
    require_envoy()
    for spec, want in cases:
        e = subprocess.run([envoy_binary(), "-c", path, "--mode", "validate",
                            "--component-log-level", spec], capture_output=True, text=True, timeout=60)
        assert e.returncode != 0 and want in e.stdout + e.stderr


def test_worker_process_titles(tmp_path):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(config(lp, ap, up.port), concurrency=2) as proxy:
            main_pid = proxy.proc.pid
            # A worker sets its title as it starts (maybe after /ready says LIVE).
            wait_for(lambda: sorted(cmdline(p) for p in children(main_pid)) == [
                "envoy-fast: worker 0 (generation 0)", "envoy-fast: worker 1 (generation 0)"],
                10, what="worker titles")
            with open("/proc/%d/cmdline" % main_pid, "rb") as f:
                assert b"envoy_fast\0-c\0" in f.read()      # main keeps its command line
            proxy.reload(config(lp, ap, up.port, stat_prefix="changed"))
            wait_for(lambda: sorted(cmdline(p) for p in children(main_pid)) == [
                "envoy-fast: worker 0 (generation 1)", "envoy-fast: worker 1 (generation 1)"],
                10, what="generation 1 titles")
            ps = subprocess.run(["ps", "-o", "args=", "--ppid", str(main_pid)],
                                capture_output=True, text=True).stdout
            assert "envoy-fast: worker 0 (generation 1)" in ps, ps


# ------------------------------------------------------------------ reloads

def test_reload_logs_changes(tmp_path):
    with named_server("a") as a, named_server("b") as b:
        lp, lp2, ap = free_port(), free_port(), free_port()
        cfg = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}]),
                         listener("gone", free_port(), [{"filters": [tcp_proxy_filter("up")]}])],
                        [cluster("up", [a.port]), cluster("old", [a.port])], ap)
        with run_envoy_fast(cfg) as proxy:
            new = bootstrap([listener("l0", lp, [{"filters": [tcp_proxy_filter("up")]}]),
                             listener("l2", lp2, [{"filters": [tcp_proxy_filter("extra")]}])],
                            [cluster("up", [b.port]), cluster("extra", [a.port])], ap)
            proxy.reload(new)
            wait_stat(proxy, "server.reload_success", 1)
            log = proxy.log()
    assert "reload: added listener: 'l2'" in log, log
    assert "reload: removed listener: 'gone'" in log
    assert "reload: added cluster: 'extra'" in log
    assert "reload: removed cluster: 'old'" in log
    assert "reload: changed cluster: 'up'" in log
    assert "changed listener" not in log


def test_failed_reload_says_what_validate_says_and_is_counted(tmp_path):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        good = config(lp, ap, up.port)
        with run_envoy_fast(good) as proxy:
            bad = yaml.safe_load(yaml.safe_dump(good))
            bad["static_resources"]["clusters"][0]["connect_timeout"] = "500ms"
            bad["static_resources"]["clusters"][0]["lb_polcy"] = "RANDOM"
            proxy.reload(bad)
            stats = wait_stat(proxy, "server.reload_failure", 1)
            assert stats["server.reload_success"] == 0
            validate = run_cli(["--mode", "validate", "-c", proxy.config_path])
            assert validate.returncode == 1
            errors = [l for l in validate.stderr.splitlines() if "(line " in l]
            assert len(errors) == 2, validate.stderr
            log = proxy.log()
            for e in errors:
                assert e in log, (e, log)
            assert "did you mean `lb_policy`" in log
            assert "reload failed, keeping the running configuration: 2 errors" in log
            # Still serving the old configuration; a good reload is counted too.
            with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                assert s.recv(10) == b"up\n"
            proxy.reload(good)
            wait_stat(proxy, "server.reload_success", 1)
            prom = proxy.admin("/stats/prometheus")
    assert re.search(r"^envoy_server_reload_failure\{\} 1$", prom, re.M), prom
    assert re.search(r"^envoy_server_reload_success\{\} 1$", prom, re.M), prom


# ---------------------------------------------------------- enable_reuse_port

def _reuseport_bind(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.mark.parametrize("impl", ["envoy_fast", "envoy"])
@pytest.mark.parametrize("reuse", [True, False])
def test_enable_reuse_port(tmp_path, impl, reuse):
    """false: nobody else can bind the port (Envoy's behaviour); true: a
    SO_REUSEPORT socket can join."""
    if impl == "envoy":
        require_envoy()
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = config(lp, ap, up.port, enable_reuse_port=reuse)
        run = run_envoy(cfg) if impl == "envoy" else run_envoy_fast(cfg, concurrency=2)
        with run as proxy:
            for _ in range(6):
                with socket.create_connection(("127.0.0.1", lp), timeout=5) as s:
                    assert s.recv(10) == b"up\n"
            assert _reuseport_bind(lp) == reuse
            if impl == "envoy_fast":
                workers = children(proxy.proc.pid)
                assert len(workers) == 2
                if not reuse:
                    # A second envoy_fast on the same port fails to start.
                    path = write(tmp_path, config(lp, free_port(), up.port), "second.yaml")
                    r = run_cli(["-c", path, "--concurrency", "1"])
                    assert r.returncode == 1
                    assert "127.0.0.1:%d" % lp in r.stderr and "in use" in r.stderr, r.stderr


def test_enable_reuse_port_false_serves_on_every_worker(tmp_path):
    """One shared socket: connections still reach both workers (not just one)."""
    # Which worker accepts is the scheduler's choice: a worker kept off the
    # CPU for a moment (a loaded machine) may miss a whole batch, so more
    # batches are tried before concluding that one worker gets nothing.
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        with run_envoy_fast(config(lp, ap, up.port, enable_reuse_port=False), concurrency=2) as proxy:
            held = []
            for _ in range(5):
                for _ in range(40):
                    s = socket.create_connection(("127.0.0.1", lp), timeout=5)
                    assert s.recv(10) == b"up\n"
                    held.append(s)
                stats = proxy.stats()
                per_worker = [stats.get("listener.127.0.0.1_%d.worker_%d.downstream_cx_total" % (lp, i), 0)
                              for i in range(2)]
                if min(per_worker) > 0:
                    break
            for s in held:
                s.close()
    assert sum(per_worker) == len(held), per_worker
    assert min(per_worker) > 0, per_worker


# --------------------------------------------------------------------- flags

@pytest.mark.parametrize("flag,value", [("--drain-time-s", "-5"), ("--parent-shutdown-time-s", "-1"),
                                        ("--concurrency", "-2"), ("--drain-time-s", "nan"),
                                        ("--base-id", "-1")])
def test_negative_durations_are_rejected(tmp_path, flag, value):
    lp, ap = free_port(), free_port()
    path = write(tmp_path, config(lp, ap, free_port()))
    r = run_cli(["-c", path, flag, value])
    assert r.returncode == 1, r.stderr
    assert flag in r.stderr and ">= 0" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_help_documents_every_flag_default_and_signals():
    r = run_cli(["--help"])
    assert r.returncode == 0
    options, _, signals = r.stdout.partition("signals:")
    # Each option's entry: from its "  -x, --flag" line to the next one.
    entries = {}
    for block in re.split(r"\n(?=  -)", options.split("options:", 1)[1]):
        flags = re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", block.split("\n")[0])
        for f in flags:
            entries[f] = " ".join(block.split())
    from envoy_fast.cli import build_parser
    for action in build_parser()._actions:
        flag = action.option_strings[-1]
        assert flag in entries, flag
        if action.nargs != 0:                     # all but --help, --version
            default = "none" if action.default in (None, "") else str(action.default)
            assert "(default: %s" % default in entries[flag] or \
                "(default: \"%s" % default in entries[flag] or flag == "--log-format", entries[flag]
    text = " ".join(signals.split())
    for sig, does in (("SIGTERM, SIGINT", "drain"), ("SIGHUP", "reload"), ("SIGUSR1", "reopen")):
        assert re.search("%s %s" % (sig, does), text, re.I), text


def test_version_agrees_with_server_info(tmp_path):
    r = run_cli(["--version"])
    version = re.search(r"version: (\S+)", r.stdout).group(1)
    lp, ap = free_port(), free_port()
    with run_envoy_fast(config(lp, ap, free_port())) as proxy:
        info = json.loads(proxy.admin("/server_info"))
    assert info["version"] == version


def test_reload_applies_application_log_config(tmp_path):
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = config(lp, ap, up.port)
        with run_envoy_fast(cfg) as proxy:
            cfg["application_log_config"] = {"log_format": {"text_format": "NEW %l %v"}}
            proxy.reload(cfg)
            wait_for(lambda: re.search(r"^NEW info reloaded: generation 1", proxy.log(), re.M), 10,
                     what="the new format")
    with named_server("up") as up:
        lp, ap = free_port(), free_port()
        cfg = config(lp, ap, up.port)
        with run_envoy_fast(cfg, args=["--log-format", "CLI %v"]) as proxy:
            cfg["application_log_config"] = {"log_format": {"text_format": "NEW %l %v"}}
            proxy.reload(cfg)
            wait_stat(proxy, "server.reload_failure", 1)
            assert "CLI   Only one of ApplicationLogConfig.log_format or CLI option --log-format" \
                in proxy.log(), proxy.log()
