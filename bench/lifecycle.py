#!/usr/bin/env python3
"""Lifecycle figures for envoy_fast: reloads under load, worker restart,
memory. One command, loopback only, every step bounded in time:

    python bench/lifecycle.py [--concurrency 2] [--duration 10] [--idle-connections 10000]

Prints (and writes to bench/results/lifecycle.json):
  * requests and failed requests over five SIGHUP reloads under wrk, with
    keep-alive and with a new connection per request;
  * the same with keep-alive GETs through an HTTP proxy config
    (http_connection_manager + router): the L7 case ("reloads_http");
  * the longest gap in service after a worker is SIGKILLed (a client connects
    every 2 ms and counts how long no connection got an answer);
  * idle RSS of the main process and of each worker;
  * RSS with N idle proxied connections open.
"""
import argparse
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from helpers import (bootstrap, cluster, free_port, listener, run_envoy_fast,  # noqa: E402
                     simple_proxy_config, wait_port)

def http_proxy_config(upstream_port, listen_port, admin_port):
    """One HTTP listener (http_connection_manager + router) to one cluster."""
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                    ".HttpConnectionManager",
           "stat_prefix": "http",
           "route_config": {"name": "local", "virtual_hosts": [{
               "name": "all", "domains": ["*"],
               "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}]},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return bootstrap([listener("l7", listen_port, [{"filters": [
        {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}])],
        [cluster("up", [upstream_port], circuit_breakers={"thresholds": [
            {"max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000}]})],
        admin_port)


def http_reloads_under_load(up, concurrency, duration):
    """Five SIGHUP reloads under wrk keep-alive GETs through the HTTP proxy:
    a draining worker answers with `connection: close`, so none may fail."""
    lp, adm = free_port(), free_port()
    cfg = http_proxy_config(up, lp, adm)
    with run_envoy_fast(cfg, concurrency=concurrency) as proxy:
        time.sleep(0.5)
        r = reloads_under_load(proxy, lp, duration, "keepalive")
    r["mode"] = "http_keepalive"
    return r


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_nginx(tmp):
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/error.log;
worker_rlimit_nofile 30000;
events { worker_connections 30000; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:%d backlog=4096; location / { return 200 "hello\\n"; } } }
""" % (tmp, tmp, port))
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", tmp],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, port


def reloads_under_load(proxy, lp, duration, mode):
    cmd = ["wrk", "-t1", "-c64", "-d%ds" % duration, "http://127.0.0.1:%d/" % lp]
    if mode == "new_connection":
        cmd[3:3] = ["-H", "Connection: close"]
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    for _ in range(5):
        time.sleep(duration / 6.0)
        proxy.proc.send_signal(signal.SIGHUP)
    out = wrk.communicate(timeout=duration + 30)[0]
    done = int(re.search(r"(\d+) requests in", out).group(1))
    errors = 0
    kinds = {}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        kinds = dict(zip(("connect", "read", "write", "timeout"), (int(x) for x in m.groups())))
        errors += sum(kinds.values())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        kinds["non_2xx"] = int(m.group(1))
        errors += int(m.group(1))
    r = {"mode": mode, "requests": done, "failed": errors, "reloads": 5}
    if errors:
        r["errors"] = kinds       # which kind: a read error is a close under a request
    return r


def restart_gap(proxy, lp):
    """Kill a worker; a client connecting every 2 ms measures the longest
    time without an answered connection."""
    stop = threading.Event()
    answered = []
    failures = [0]

    def client():
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", lp), timeout=2) as c:
                    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if c.recv(64).startswith(b"HTTP/1.1 200"):
                        answered.append(time.monotonic())
                    else:
                        failures[0] += 1
            except OSError:
                failures[0] += 1
            time.sleep(0.002)

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.5)
    before = set(proxy.pids())
    victim = proxy.pids()[1]
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (set(proxy.pids()) - before):
        time.sleep(0.001)
    replaced_after = time.monotonic() - killed_at
    time.sleep(1.0)
    stop.set()
    t.join()
    gaps = [b - a for a, b in zip(answered, answered[1:])]
    return {"worker_replaced_after_ms": round(replaced_after * 1000, 1),
            "longest_gap_between_answers_ms": round(max(gaps) * 1000, 1) if gaps else None,
            "failed_connections": failures[0], "answered": len(answered)}


def idle_connections_rss(proxy, lp, n):
    socks = []
    try:
        for i in range(n):
            socks.append(socket.create_connection(("127.0.0.1", lp), timeout=5))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proxy.stats().get("tcp.tp.downstream_cx_total", 0) >= n and \
                    proxy.stats().get("cluster.up.upstream_cx_active", 0) >= n:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        return {"connections": n, "rss_kb": {str(p): rss_kb(p) for p in proxy.pids()},
                "upstream_cx_active": proxy.stats().get("cluster.up.upstream_cx_active")}
    finally:
        for s in socks:
            s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--idle-connections", type=int, default=10000)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    # 10 000 idle connections need ~30 000 descriptors on this side alone.
    want = 3 * args.idle_connections + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        pass
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        nginx, up = start_nginx(tmp)
        try:
            lp, adm = free_port(), free_port()
            cfg = simple_proxy_config(up, lp, adm)
            cfg["static_resources"]["clusters"][0]["circuit_breakers"] = {
                "thresholds": [{"max_connections": 100000, "max_pending_requests": 100000,
                                "max_requests": 100000}]}
            with run_envoy_fast(cfg, concurrency=args.concurrency) as proxy:
                time.sleep(0.5)
                results["idle_rss_kb"] = {("main" if i == 0 else "worker_%d" % (i - 1)): rss_kb(p)
                                          for i, p in enumerate(proxy.pids())}
                results["reloads"] = [reloads_under_load(proxy, lp, args.duration, m)
                                      for m in ("keepalive", "new_connection")]
            results["reloads_http"] = http_reloads_under_load(up, args.concurrency, args.duration)
            with run_envoy_fast(cfg, concurrency=args.concurrency) as proxy:
                results["worker_kill"] = restart_gap(proxy, lp)
            with run_envoy_fast(cfg, concurrency=args.concurrency) as proxy:
                results["idle_connections"] = idle_connections_rss(proxy, lp, args.idle_connections)
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "lifecycle.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
