"""Admin endpoints, compared line by line with the real Envoy on the same YAML.

Both run the same config on the same ports (one after the other) with the
same traffic, so stat names, /clusters lines and the config dump can be
compared verbatim. Values are compared only where both data planes must agree
(connection counts, thresholds, weights); everything else is compared by name,
order, label set, type and format. Stat names are compared both ways:
envoy_fast's extra names are EF_ONLY, Envoy's extra names are ENVOY_ONLY,
both exact lists, each entry with its reason.
"""
import fnmatch
import json
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

from helpers import (bootstrap, cluster, echo_server, envoy_binary, free_port, listener,
                     require_peer, run_envoy, run_envoy_fast, tcp_proxy_filter, wait_for)

# Stats only envoy_fast has (documented in envoy_fast/admin/server.py).
EF_ONLY = {"server.worker_restarts", "server.draining_generations",
           "server.reload_success", "server.reload_failure"}

# Stats (counters, gauges and histograms) the real Envoy has on this config
# and envoy_fast does not, as fnmatch patterns ("*" is any cluster, listener or
# tcp_proxy stat prefix). Every Envoy-only name must match one, every pattern
# must match an Envoy name and no envoy_fast name: a stat envoy_fast forgets,
# or starts to keep, fails test_stats_names_both_ways until this list says so.
ENVOY_ONLY = [
    # Subsystems envoy_fast does not have.
    "http.admin.*",                      # the admin is not an HTTP connection manager
    "listener.admin.*",                  # ... nor a listener
    "http.async-client.*",               # no HTTP async client (no xDS, no remote services)
    "http1.*",                           # no HTTP codec (tcp_proxy only)
    "runtime.*",                         # no runtime layers
    "filesystem.*",                      # access logs: one write() per flush, no file flusher stats
    "cluster_manager.*",                 # no CDS; clusters change only by a reload
    "listener_manager.*",                # no LDS; listeners change by reload
    "thread_local_cluster_manager.*",    # workers are processes holding the whole plan
    "main_thread.watchdog_*",            # no watchdog: main supervises workers by pidfd
    "workers.watchdog_*",
    "server.main_thread.watchdog_*",
    "server.worker_*.watchdog_*",
    "envoy.overload_actions.*",          # no overload manager
    "overload.refresh_interval_delay",
    # Server facts that do not apply.
    "server.compilation_settings.fips_mode",   # no BoringSSL
    "server.days_until_first_cert_expiring",   # no TLS
    "server.seconds_until_first_ocsp_response_expiring",
    "server.debug_assertion_failures",         # Envoy's own assertion macros
    "server.envoy_bug_failures",
    "server.envoy_notifications",
    "server.dropped_stat_flushes",             # no stats sinks
    "server.dynamic_unknown_fields",           # unknown fields are config errors here
    "server.static_unknown_fields",
    "server.wip_protos",
    "server.hot_restart_epoch",                # no hot restart: reload starts a new
    "server.hot_restart_generation",           # worker generation in the same main
    "server.parent_connections",
    "server.stats_recent_lookups",             # no symbol table: stat slots are fixed
    "server.version",                          # Envoy's build SHA as an integer
    "server.initialization_time_ms",           # not recorded
    # Cluster updates: STATIC clusters only, replaced whole by a reload.
    "cluster.*.assignment_stale",
    "cluster.*.assignment_timeout_received",
    "cluster.*.assignment_use_cached",
    "cluster.*.update_attempt",
    "cluster.*.update_empty",
    "cluster.*.update_failure",
    "cluster.*.update_no_rebuild",
    "cluster.*.update_success",
    "cluster.*.version",
    "cluster.*.warming_state",
    "cluster.*.membership_change",
    # Membership gauges and circuit-breaker state gauges: not kept.
    "cluster.*.membership_degraded",
    "cluster.*.membership_excluded",
    "cluster.*.membership_healthy",
    "cluster.*.membership_total",
    "cluster.*.max_host_weight",
    "cluster.*.circuit_breakers.*.cx_open",
    "cluster.*.circuit_breakers.*.cx_pool_open",
    "cluster.*.circuit_breakers.*.rq_open",
    "cluster.*.circuit_breakers.*.rq_pending_open",
    "cluster.*.circuit_breakers.*.rq_retry_open",
    # Buffered-byte gauges and upstream flow-control counters: not kept
    # (a gauge store per read or write would cost the hot path).
    "cluster.*.upstream_cx_rx_bytes_buffered",
    "cluster.*.upstream_cx_tx_bytes_buffered",
    "cluster.*.upstream_flow_control_backed_up_total",
    "cluster.*.upstream_flow_control_drained_total",
    "cluster.*.upstream_flow_control_paused_reading_total",
    "cluster.*.upstream_flow_control_resumed_reading_total",
    "tcp.*.downstream_cx_rx_bytes_buffered",
    "tcp.*.downstream_cx_tx_bytes_buffered",
    # Load balancing envoy_fast does not do: subsets, zones.
    "cluster.*.lb_local_cluster_not_ok",
    "cluster.*.lb_recalculate_zone_structures",
    "cluster.*.lb_subsets_*",
    "cluster.*.lb_zone_*",
    # Upstream features envoy_fast does not have: source binding, ORIGINAL_DST,
    # transport socket matches, connection-pool limits, preconnect.
    "cluster.*.bind_errors",
    "cluster.*.original_dst_host_invalid",
    "cluster.*.default.total_match_count",
    "cluster.*.upstream_cx_pool_overflow",
    "cluster.*.upstream_cx_preconnect_skipped",
    "cluster.*.upstream_queue_overloaded",
    # HTTP upstream requests (tcp_proxy makes none): protocols, retries,
    # timeouts, resets, redirects, per-connection request limits.
    "cluster.*.upstream_cx_http2_total",
    "cluster.*.upstream_cx_http3_total",
    "cluster.*.upstream_http3_broken",
    "cluster.*.upstream_cx_connect_with_0_rtt",
    "cluster.*.upstream_rq_0rtt",
    "cluster.*.upstream_cx_max_duration_reached",
    "cluster.*.upstream_rq_maintenance_mode",
    "cluster.*.upstream_rq_max_duration_reached",
    "cluster.*.upstream_rq_per_try_idle_timeout",
    "cluster.*.upstream_rq_retry_backoff_ratelimited",
    "cluster.*.upstream_rq_rx_reset",
    "cluster.*.upstream_rq_rx_reset_no_error",
    "cluster.*.upstream_rq_tx_reset",
    "cluster.*.upstream_internal_redirect_*",
    "cluster.*.upstream_rq_per_cx",
    # Listener features envoy_fast does not have: listener filters, TLS,
    # extension config discovery, overload manager; accept batches not recorded.
    "listener.*.downstream_listener_filter_error",
    "listener.*.downstream_listener_filter_remote_close",
    "listener.*.downstream_pre_cx_active",
    "listener.*.downstream_pre_cx_timeout",
    "listener.*.downstream_cx_transport_socket_connect_timeout",
    "listener.*.extension_config_missing",
    "listener.*.network_extension_config_missing",
    "listener.*.downstream_cx_overload_reject",
    "listener.*.connections_accepted_per_socket_event",
    # tcp_proxy features envoy_fast does not have: overload manager, early
    # data before the upstream connects, delayed (on-demand) routes; no
    # graceful drain close (tcp_proxy has none in envoy_fast).
    "tcp.*.downstream_cx_overload_close",
    "tcp.*.early_data_received_count_total",
    "tcp.*.route_delayed_total",
    "tcp.*.downstream_cx_drain_close",
]
# Names whose values depend on how each data plane closes connections or on
# timing; compared by name and format only.
VOLATILE = re.compile(r"(destroy|_ms|memory_|uptime|bytes|flow_control|worker_\d+)")

GET_PATHS = [
    "/stats", "/stats?format=json", "/stats?usedonly", "/stats?format=json&usedonly",
    "/stats?filter=%5Ecluster%5C.", "/stats?filter=zzz_nothing&format=json",
    "/stats/prometheus", "/stats/prometheus?usedonly", "/stats?format=prometheus",
    "/clusters", "/clusters?format=json", "/config_dump", "/server_info",
    "/listeners", "/listeners?format=json", "/ready", "/memory",
    "/stats?format=xml", "/healthcheck/fail", "/healthcheck/ok", "/drain_listeners",
    "/quitquitquit", "/no_such_path",
]

QUANTILE_RE = re.compile(
    r"^P0\(\S+,\S+\) P25\(\S+,\S+\) P50\(\S+,\S+\) P75\(\S+,\S+\) P90\(\S+,\S+\) "
    r"P95\(\S+,\S+\) P99\(\S+,\S+\) P99\.5\(\S+,\S+\) P99\.9\(\S+,\S+\) P100\(\S+,\S+\)$")
NUMBER = r"(nan|-?\d+(\.\d+)?(e[-+]\d+)?)"


def admin_request(port, path, method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=b"" if method == "POST" else None)
    try:
        r = urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError as e:
        r = e
    with r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()


def make_config(up_port, ports):
    l0, l1, admin = ports
    two = cluster("two", [up_port, (free_port(), 3)],
                  circuit_breakers={"thresholds": [{"max_connections": 7, "max_retries": 2},
                                                   {"priority": "HIGH", "max_requests": 9}]})
    lbe = two["load_assignment"]["endpoints"][0]["lb_endpoints"]
    lbe[0]["endpoint"]["hostname"] = "backend-1"
    lbe[1]["health_status"] = "UNHEALTHY"
    cfg = bootstrap(
        [listener("l0", l0, [{"filters": [tcp_proxy_filter("up", stat_prefix="tp")]}]),
         listener("l1", l1, [{"filters": [tcp_proxy_filter("b", stat_prefix="other")]}],
                  stat_prefix="foo")],
        [cluster("up", [up_port]), cluster("b", [up_port], alt_stat_name="alt"), two], admin)
    cfg["node"] = {"id": "node-1", "cluster": "edge"}
    cfg["stats_flush_interval"] = "1s"
    return cfg


def echo_once(port, payload=b"ping"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(payload)
        got = b""
        while len(got) < len(payload):
            d = c.recv(100)
            if not d:
                break
            got += d
        assert got == payload


def capture(impl, cfg, ports):
    run = run_envoy if impl == "envoy" else run_envoy_fast
    with run(cfg) as proxy:
        for _ in range(3):
            echo_once(ports[0])
        for _ in range(2):
            echo_once(ports[1])
        # Both count the closes; then let a stats flush (1 s) take the histograms.
        active = ["cluster.up.upstream_cx_active", "cluster.alt.upstream_cx_active",
                  "listener.127.0.0.1_%d.downstream_cx_active" % ports[0]]
        wait_for(lambda: all(proxy.stats().get(n) == 0 for n in active),
                 timeout=5, what="connections closed")
        time.sleep(2.2)
        return {p: admin_request(proxy.admin_port, p) for p in GET_PATHS}


@pytest.fixture(scope="module")
def captured():
    with echo_server() as up:
        ports = [free_port() for _ in range(3)]
        cfg = make_config(up.port, ports)
        ef = capture("envoy_fast", cfg, ports)
        ev = capture("envoy", cfg, ports) if envoy_binary() else None
        yield {"envoy_fast": ef, "envoy": ev, "ports": ports}


@pytest.fixture
def both(captured):
    if captured["envoy"] is None:
        require_peer("envoy")
    return captured["envoy_fast"], captured["envoy"]


def body(res):
    return res[2]


def stats_text(text):
    """(ordered [(name, value)], {histogram name: summary})."""
    scalars, hists = [], {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if re.fullmatch(r"\d+", value):
            scalars.append((name, int(value)))
        else:
            hists[name] = value
    return scalars, hists


# ------------------------------------------------------------------ headers


def test_status_and_headers_match_envoy(both):
    ef, ev = both
    for path in GET_PATHS:
        s1, h1, _ = ef[path]
        s2, h2, _ = ev[path]
        assert s1 == s2, path
        for h in ("content-type", "cache-control", "x-content-type-options"):
            assert h1.get(h) == h2.get(h), (path, h)
    assert ef["/healthcheck/fail"][2] == ev["/healthcheck/fail"][2] == \
        "Method GET not allowed, POST required."
    assert ef["/stats?format=xml"][2] == ev["/stats?format=xml"][2]
    assert ef["/no_such_path"][2].startswith("invalid path. admin commands are:\n")
    assert ev["/no_such_path"][2].startswith("invalid path. admin commands are:\n")
    # Every endpoint envoy_fast lists is listed by Envoy the same way.
    ours = [l for l in ef["/no_such_path"][2].splitlines()[1:] if not l.startswith("      ")]
    theirs = ev["/no_such_path"][2].splitlines()
    for line in ours:
        assert line in theirs, line


def test_envoy_fast_headers_without_envoy(captured):
    ef = captured["envoy_fast"]
    for path in GET_PATHS:
        status, headers, _ = ef[path]
        assert headers["cache-control"] == "no-cache, max-age=0"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["content-type"] in ("text/plain; charset=UTF-8", "application/json")
    assert ef["/quitquitquit"][0] == 405
    assert ef["/ready"] == (200, ef["/ready"][1], "LIVE\n")


# -------------------------------------------------------------------- /stats


def envoy_only(name):
    """The ENVOY_ONLY patterns `name` matches."""
    return [p for p in ENVOY_ONLY if fnmatch.fnmatchcase(name, p)]


def check_names_both_ways(ours, theirs):
    """`ours` and `theirs` (stat names) differ by EF_ONLY and ENVOY_ONLY exactly."""
    assert set(ours) - set(theirs) == EF_ONLY
    missing = sorted(n for n in set(theirs) - set(ours) if not envoy_only(n))
    assert not missing, "Envoy has, envoy_fast lacks (count them, or list them in " \
        "ENVOY_ONLY with the reason): %s" % missing
    kept = sorted((n, envoy_only(n)) for n in ours if envoy_only(n))
    assert not kept, "envoy_fast keeps these: drop their ENVOY_ONLY entries: %s" % kept
    unused = [p for p in ENVOY_ONLY if not any(fnmatch.fnmatchcase(n, p) for n in theirs)]
    assert not unused, "ENVOY_ONLY entries Envoy no longer has: %s" % unused


def test_stats_names_both_ways(both):
    ef, ev = both
    s1, h1 = stats_text(body(ef["/stats"]))
    s2, h2 = stats_text(body(ev["/stats"]))
    check_names_both_ways([n for n, _ in s1] + list(h1), [n for n, _ in s2] + list(h2))
    j1 = json.loads(body(ef["/stats?format=json"]))["stats"]
    j2 = json.loads(body(ev["/stats?format=json"]))["stats"]
    names = lambda j: [e["name"] for e in j if "name" in e] + [  # noqa: E731
        c["name"] for c in j[-1]["histograms"]["computed_quantiles"]]
    check_names_both_ways(names(j1), names(j2))


def test_envoy_only_list_is_checked():
    """check_names_both_ways fails on a stat envoy_fast forgot, on one it has
    that the list calls Envoy-only, and on a stale entry."""
    theirs = ["cluster.up.upstream_cx_total", "cluster.up.membership_total"] + \
        [p.replace("*", "x") for p in ENVOY_ONLY]
    ours = ["cluster.up.upstream_cx_total"] + sorted(EF_ONLY)
    check_names_both_ways(ours, theirs)
    with pytest.raises(AssertionError, match="envoy_fast lacks"):
        check_names_both_ways(ours, theirs + ["cluster.up.upstream_cx_forgotten"])
    with pytest.raises(AssertionError, match="envoy_fast keeps these"):
        check_names_both_ways(ours + ["cluster.up.membership_total"], theirs)
    with pytest.raises(AssertionError, match="no longer has"):
        check_names_both_ways(ours, theirs[:-1])


def test_stats_text_names_order_values(both):
    ef, ev = both
    s1, h1 = stats_text(body(ef["/stats"]))
    s2, h2 = stats_text(body(ev["/stats"]))
    names1 = [n for n, _ in s1]
    names2 = [n for n, _ in s2]
    assert names1 == sorted(names1)
    common = [n for n in names1 if n in set(names2)]
    assert common == [n for n in names2 if n in set(names1)]
    v1, v2 = dict(s1), dict(s2)
    for n in common:
        if not VOLATILE.search(n):
            assert v1[n] == v2[n], n
    # Histograms: the same names, after every counter and gauge, same format.
    text1 = body(ef["/stats"]).splitlines()
    assert all(": P0(" in l or "No recorded values" in l for l in text1[len(s1):])
    common_h = [n for n in h1 if n in h2]
    assert common_h == [n for n in h2 if n in h1]
    assert set(h1) <= set(h2)
    for n in common_h:
        assert (h1[n] == "No recorded values") == (h2[n] == "No recorded values"), n
        if h1[n] != "No recorded values":
            assert QUANTILE_RE.match(h1[n]) and QUANTILE_RE.match(h2[n]), n
    # A cluster that carried nothing; one that did (one flush after traffic).
    assert h1["cluster.two.upstream_cx_connect_ms"] == "No recorded values"
    assert QUANTILE_RE.match(h1["cluster.up.upstream_cx_connect_ms"])


def test_stats_usedonly(both):
    ef, ev = both
    all1, _ = stats_text(body(ef["/stats"]))
    all2, _ = stats_text(body(ev["/stats"]))
    v1, v2 = dict(all1), dict(all2)
    u1, hu1 = stats_text(body(ef["/stats?usedonly"]))
    u2, hu2 = stats_text(body(ev["/stats?usedonly"]))
    used1, used2 = {n for n, _ in u1}, {n for n, _ in u2}
    # Where both counted the same, both call the stat used (or not) alike.
    for n in v1:
        if n in v2 and v1[n] == v2[n] and not VOLATILE.search(n):
            assert (n in used1) == (n in used2), n
    assert set(hu1) == {n for n in hu2 if n in set(stats_text(body(ef["/stats"]))[1])}
    assert "cluster.two.upstream_cx_connect_ms" not in hu1
    assert all(v == "No recorded values" or QUANTILE_RE.match(v) for v in hu1.values())


def test_stats_filter(both):
    ef, ev = both
    n1 = [n for n, _ in stats_text(body(ef["/stats?filter=%5Ecluster%5C."]))[0]]
    n2 = [n for n, _ in stats_text(body(ev["/stats?filter=%5Ecluster%5C."]))[0]]
    assert n1 and all(n.startswith("cluster.") for n in n1)
    assert [n for n in n2 if n in set(n1)] == n1
    assert body(ef["/stats?filter=zzz_nothing&format=json"]) == \
        body(ev["/stats?filter=zzz_nothing&format=json"]) == '{"stats":[]}'


def test_stats_json(both):
    ef, ev = both
    for path in ("/stats?format=json", "/stats?format=json&usedonly"):
        j1 = json.loads(body(ef[path]))
        j2 = json.loads(body(ev[path]))
        assert list(j1) == ["stats"]
        scal1 = [e for e in j1["stats"] if "name" in e]
        scal2 = {e["name"]: e["value"] for e in j2["stats"] if "name" in e}
        assert all(list(e) == ["name", "value"] for e in scal1)
        for e in scal1:
            if e["name"] not in EF_ONLY and "usedonly" not in path:
                assert e["name"] in scal2
        h1 = j1["stats"][-1]["histograms"]
        h2 = j2["stats"][-1]["histograms"]
        assert h1["supported_quantiles"] == h2["supported_quantiles"] == \
            [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]
        by2 = {c["name"]: c for c in h2["computed_quantiles"]}
        for c in h1["computed_quantiles"]:
            assert c["name"] in by2
            assert list(c) == ["name", "values"]
            assert len(c["values"]) == 10
            for v, w in zip(c["values"], by2[c["name"]]["values"]):
                assert list(v) == list(w) == ["cumulative", "interval"]
                assert (v["cumulative"] is None) == (w["cumulative"] is None), c["name"]
    # Compact, as Envoy writes it.
    assert body(ef["/stats?format=json"]).startswith('{"stats":[{"name":')


# ------------------------------------------------------------------ Prometheus


def prom_groups(text):
    groups = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            groups.append((line, []))
        else:
            assert groups, line
            groups[-1][1].append(line)
    return groups


def test_prometheus(both):
    ef, ev = both
    steady = lambda text: [l for l in text.splitlines() if not VOLATILE.search(l)]  # noqa: E731
    assert steady(body(ef["/stats?format=prometheus"])) == steady(body(ef["/stats/prometheus"]))
    for path in ("/stats/prometheus", "/stats/prometheus?usedonly"):
        g1 = prom_groups(body(ef[path]))
        g2 = dict(prom_groups(body(ev[path])))
        types1 = [t for t, _ in g1]
        only_ef = [t for t in types1 if t not in g2 and not VOLATILE.search(t)]
        assert only_ef == [t for t in only_ef if "worker_restarts" in t or "draining" in t
                           or "server_reload_" in t]
        order2 = [t for t, _ in prom_groups(body(ev[path]))]
        common = [t for t in types1 if t in g2]
        assert common == [t for t in order2 if t in set(common)]
        kinds = [t.split()[-1] for t in types1]
        assert kinds == sorted(kinds, key=["counter", "gauge", "histogram"].index)
        for t, lines in g1:
            if t not in g2:
                continue
            ours = [l.rsplit(" ", 1) for l in lines]
            theirs = dict(l.rsplit(" ", 1) for l in g2[t])
            names = [n for n, _ in ours]
            if "usedonly" not in path:
                assert all(n in theirs for n in names), (t, [n for n in names if n not in theirs])
            present = [n for n in names if n in theirs]
            theirs_order = [l.rsplit(" ", 1)[0] for l in g2[t]]
            assert present == [n for n in theirs_order if n in set(present)]
            for n, v in ours:
                assert re.fullmatch(NUMBER, v), (n, v)
                if n in theirs and not VOLATILE.search(n) and "_bucket" not in n \
                        and "_sum" not in n:
                    assert v == theirs[n], n
    text = body(ef["/stats/prometheus"])
    port = captured_ports(ef)
    assert ('envoy_listener_downstream_cx_total{envoy_listener_address="127.0.0.1_%d"} 3'
            % port) in text
    assert 'envoy_listener_downstream_cx_total{envoy_listener_address="foo"} 2' in text
    assert ('envoy_listener_worker_downstream_cx_total{envoy_worker_id="0",'
            'envoy_listener_address="127.0.0.1_%d"} 3' % port) in text
    assert 'envoy_tcp_downstream_cx_total{envoy_tcp_prefix="tp"} 3' in text
    assert 'envoy_cluster_upstream_cx_total{envoy_cluster_name="alt"} 2' in text
    assert "envoy_server_live{} 1" in text


def captured_ports(ef):
    return int(re.search(r"l0::127\.0\.0\.1:(\d+)", body(ef["/listeners"])).group(1))


def test_prometheus_histogram_lines(both):
    ef, ev = both
    les = ["0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000",
           "10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"]
    for res in (ef, ev):
        groups = dict(prom_groups(body(res["/stats/prometheus"])))
        lines = groups["# TYPE envoy_cluster_upstream_cx_connect_ms histogram"]
        up = [l for l in lines if 'envoy_cluster_name="up"' in l]
        assert [re.search(r'le="([^"]+)"', l).group(1) for l in up[:-2]] == les
        assert up[-2].startswith(
            'envoy_cluster_upstream_cx_connect_ms_sum{envoy_cluster_name="up"} ')
        assert up[-1] == 'envoy_cluster_upstream_cx_connect_ms_count{envoy_cluster_name="up"} 3'
        counts = [int(l.rsplit(" ", 1)[1]) for l in up[:-2]]
        assert counts == sorted(counts) and counts[-1] == 3
        two = [l for l in lines if 'envoy_cluster_name="two"' in l]
        assert two[-1].endswith(" 0") and two[-2].endswith("} 0")
    g1 = dict(prom_groups(body(ef["/stats/prometheus"])))
    g2 = dict(prom_groups(body(ev["/stats/prometheus"])))
    for t in g1:
        if t.endswith("histogram") and t in g2:
            strip = lambda ls: [l.rsplit(" ", 1)[0] for l in ls]  # noqa: E731
            assert strip(g1[t]) == [l for l in strip(g2[t]) if l in set(strip(g1[t]))], t


# ------------------------------------------------------------------- /clusters


def test_clusters_text(both):
    ef, ev = both
    l1 = body(ef["/clusters"]).splitlines()
    l2 = body(ev["/clusters"]).splitlines()
    # Envoy lists clusters in its hash map's order; each cluster's block is
    # compared whole.
    def blocks(lines):
        out = {}
        for line in lines:
            out.setdefault(line.split("::", 1)[0], []).append(line)
        return out
    b1, b2 = blocks(l1), blocks(l2)
    assert set(b1) == set(b2) == {"up", "b", "two"}
    for name in b1:
        keys1 = [l.rsplit("::", 1)[0] for l in b1[name]]
        keys2 = [l.rsplit("::", 1)[0] for l in b2[name]]
        assert keys1 == keys2, name
        for a, b in zip(b1[name], b2[name]):
            assert a == b, (a, b)


def test_clusters_json(both):
    ef, ev = both
    j1 = json.loads(body(ef["/clusters?format=json"]))
    j2 = json.loads(body(ev["/clusters?format=json"]))
    by2 = {c["name"]: c for c in j2["cluster_statuses"]}
    assert {c["name"] for c in j1["cluster_statuses"]} == set(by2)
    for c in j1["cluster_statuses"]:
        assert json.dumps(c, indent=1) == json.dumps(by2[c["name"]], indent=1)
    assert body(ef["/clusters?format=json"]).startswith('{\n "cluster_statuses": [\n')


# ----------------------------------------------------------------- config_dump


def _without_times(doc):
    if isinstance(doc, dict):
        return {k: _without_times(v) for k, v in doc.items() if k != "last_updated"}
    if isinstance(doc, list):
        return [_without_times(v) for v in doc]
    return doc


def test_config_dump(both):
    ef, ev = both
    d1 = json.loads(body(ef["/config_dump"]))
    d2 = json.loads(body(ev["/config_dump"]))
    assert [c["@type"] for c in d1["configs"]] == [c["@type"] for c in d2["configs"]]
    b1 = dict(d1["configs"][0]["bootstrap"])
    b2 = dict(d2["configs"][0]["bootstrap"])
    n1, n2 = b1.pop("node"), b2.pop("node")
    assert (n1["id"], n1["cluster"]) == (n2["id"], n2["cluster"]) == ("node-1", "edge")
    assert list(n1)[:3] == list(n2)[:3]
    assert json.dumps(b1, indent=1) == json.dumps(b2, indent=1)
    for i in (1, 2, 3):
        assert json.dumps(_without_times(d1["configs"][i]), indent=1) == \
            json.dumps(_without_times(d2["configs"][i]), indent=1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",
                        d1["configs"][0]["last_updated"])
    assert body(ef["/config_dump"]).endswith("}\n")


# ------------------------------------------------------- server_info and others


def test_server_info(both):
    ef, ev = both
    i1 = json.loads(body(ef["/server_info"]))
    i2 = json.loads(body(ev["/server_info"]))
    assert list(i1) == list(i2)
    assert list(i1["command_line_options"]) == list(i2["command_line_options"])
    for k in ("concurrency", "drain_time", "parent_shutdown_time", "mode", "config_yaml",
              "restart_epoch", "drain_strategy", "local_address_ip_version"):
        assert i1["command_line_options"][k] == i2["command_line_options"][k], k
    assert i1["state"] == i2["state"] == "LIVE"
    assert re.fullmatch(r"\d+s", i1["uptime_current_epoch"])
    assert list(i1["node"])[:4] == list(i2["node"])[:4]
    assert (i1["node"]["id"], i1["node"]["cluster"]) == ("node-1", "edge")
    assert set(i1["node"]) <= set(i2["node"])


def test_listeners_ready_memory(both):
    ef, ev = both
    for path in ("/listeners", "/listeners?format=json", "/ready"):
        assert body(ef[path]) == body(ev[path]), path
    m1 = json.loads(body(ef["/memory"]))
    m2 = json.loads(body(ev["/memory"]))
    assert list(m1) == list(m2)
    assert all(isinstance(v, str) and v.isdigit() for v in m1.values())
    assert int(m1["total_physical_bytes"]) > 1 << 20


# -------------------------------------------------------------- mutating ones


def not_served(port) -> bool:
    """The listener takes no new connection (refused, or never answered)."""
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=1)
    except OSError:
        return True
    with c:
        try:
            c.sendall(b"x")
            return c.recv(1) == b""
        except OSError:
            return True


def transcript(impl, cfg, ports):
    run = run_envoy if impl == "envoy" else run_envoy_fast
    out = []
    with run(cfg) as proxy:
        a = proxy.admin_port

        def step(path, method="GET"):
            s, h, b = admin_request(a, path, method)
            out.append((method, path, s, h["content-type"], b))

        def live_state():
            st = proxy.stats()
            out.append(("live/state", st["server.live"], st["server.state"]))

        step("/healthcheck/fail", "POST")
        step("/ready")
        live_state()
        step("/healthcheck/ok", "POST")
        step("/ready")
        live_state()
        echo_once(ports[0])
        step("/drain_listeners?graceful", "GET")
        step("/drain_listeners", "POST")
        wait_for(lambda: not_served(ports[0]), timeout=5, what="listener drained")
        step("/ready")
        step("/quitquitquit", "POST")
        proxy.proc.wait(timeout=10)
        out.append(("exit", proxy.proc.returncode))
    return out


def test_mutating_endpoints_as_envoy():
    with echo_server() as up:
        ports = [free_port() for _ in range(3)]
        cfg = make_config(up.port, ports)
        ef = transcript("envoy_fast", cfg, ports)
        assert ef[0] == ("POST", "/healthcheck/fail", 200, "text/plain; charset=UTF-8", "OK\n")
        assert ef[1][2:] == (503, "text/plain; charset=UTF-8", "DRAINING\n")
        assert ef[2] == ("live/state", 0, 0)
        assert ef[4][2:] == (200, "text/plain; charset=UTF-8", "LIVE\n")
        assert ef[-1] == ("exit", 0)
        require_peer("envoy")
        ev = transcript("envoy", cfg, ports)
        assert ef == ev
