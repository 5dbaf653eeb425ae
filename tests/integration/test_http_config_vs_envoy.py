"""http_connection_manager configs through the real Envoy and envoy_fast:
which ones each accepts (``--mode validate``), /config_dump's rendering of
the HCM and of its route configuration, and the ``http.<prefix>.`` and
``listener.<address>.http.<prefix>.`` stat names Envoy creates for it.

Configs are written as JSON so that both read exactly the same strings
(YAML 1.1 and yaml-cpp disagree on words such as ``y`` and on some quoted
newlines)."""
import copy
import json
import os
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT, ROUTER, free_port, http_connection_manager_filter, listener, require_peer, run_envoy

from envoy_fast.admin import config_doc, config_dump
from envoy_fast.config import load_bootstrap, validate_bootstrap
from envoy_fast.extensions.network import http_connection_manager as hcm_record

BUFFER = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer"
STDOUT_LOG = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"


def base(port=10000, admin_port=None):
    cfg = {"static_resources": {
        "listeners": [listener("l", port, [{"filters": [http_connection_manager_filter(
            [{"match": {"prefix": "/"}, "route": {"cluster": "c"}}], stat_prefix="h")]}])],
        "clusters": [{"name": "c", "connect_timeout": "1s", "load_assignment": {
            "cluster_name": "c", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": 1}}}}]}]}}]}}
    if admin_port:
        cfg["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
    return cfg


def _hcm(cfg):
    return cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def _router(cfg):
    return _hcm(cfg)["http_filters"][-1]["typed_config"]


def _set(**fields):
    return lambda cfg: _hcm(cfg).update(fields)


def _pop(*names):
    return lambda cfg: [_hcm(cfg).pop(n) for n in names]


def _filters(*filters):
    return lambda cfg: _hcm(cfg).update(http_filters=list(filters))


def _router_set(**fields):
    return lambda cfg: _router(cfg).update(fields)


def _both(*mutations):
    def mutate(cfg):
        for m in mutations:
            m(cfg)
    return mutate


ROUTER_FILTER = {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}
FULL = _set(
    codec_type="HTTP1", server_name="edge", server_header_transformation="APPEND_IF_ABSENT",
    use_remote_address=True, skip_xff_append=True, xff_num_trusted_hops=2,
    generate_request_id=False, preserve_external_request_id=True,
    always_set_request_id_in_response=True, max_request_headers_kb=80,
    common_http_protocol_options={"idle_timeout": "30s", "max_connection_duration": "600s",
                                  "max_headers_count": 50, "max_requests_per_connection": 10,
                                  "headers_with_underscores_action": "REJECT_REQUEST"},
    http_protocol_options={"accept_http_10": True, "default_host_for_http_10": "h",
                           "allow_absolute_url": False, "allow_chunked_length": True,
                           "enable_trailers": True, "header_key_format": {"proper_case_words": {}}},
    stream_idle_timeout="10s", request_timeout="20s", request_headers_timeout="5s",
    delayed_close_timeout="0.5s", drain_timeout="2s",
    upgrade_configs=[{"upgrade_type": "websocket"}, {"upgrade_type": "h2c", "enabled": False}],
    proxy_100_continue=True, via="1.1 edge",
    access_log=[{"name": "a", "typed_config": {"@type": STDOUT_LOG, "log_format": {
        "text_format_source": {"inline_string": "%REQ(:METHOD)% %RESPONSE_CODE% %PROTOCOL%\n"}}}}])

HC_FILTER = "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck"


def _health_check(**fields):
    return _filters({"name": "envoy.filters.http.health_check", "typed_config": dict({"@type": HC_FILTER},
                                                                                     **fields)}, ROUTER_FILTER)


# Both load these.
ACCEPTED = {
    "minimal": lambda cfg: None,
    "full": _both(FULL, _router_set(suppress_envoy_headers=True)),
    "camel_case_wrappers_enum_numbers": _set(
        serverHeaderTransformation=2, useRemoteAddress={"value": True},
        maxRequestHeadersKb={"value": 8192}, generateRequestId={"value": True},
        commonHttpProtocolOptions={"maxHeadersCount": {"value": 1}, "headersWithUnderscoresAction": 2}),
    "router_named_otherwise": _filters({"name": "my-router", "typed_config": {"@type": ROUTER}}),
    "zero_timeouts": _set(stream_idle_timeout="0s", request_timeout="0s", delayed_close_timeout="0s",
                          common_http_protocol_options={"idle_timeout": "0s",
                                                        "max_requests_per_connection": 0}),
    "http2_settings_ignored": _set(http2_protocol_options={"max_concurrent_streams": 10},
                                   stream_flush_timeout="3s"),
    "upgrade_without_type": _set(upgrade_configs=[{"upgrade_type": ""}]),
    "start_child_span": _router_set(start_child_span=True),
    "empty_route_config": _set(route_config={}),
    "default_host_without_accept_http_10": _set(http_protocol_options={"default_host_for_http_10": "x"}),
    "codec_auto_http1": _set(codec_type="HTTP1"),
    "json_access_log": _set(access_log=[{"typed_config": {"@type": STDOUT_LOG, "log_format": {
        "json_format": {"code": "%RESPONSE_CODE%", "ua": "%REQ(USER-AGENT)%"}}}}]),
    "is_optional_router": _filters(dict(ROUTER_FILTER, is_optional=True)),
    "internal_address_config": _set(internal_address_config={"unix_sockets": True, "cidr_ranges": [
        {"address_prefix": "10.0.0.0", "prefix_len": 8}, {"address_prefix": "fd00::", "prefix_len": 8},
        {"address_prefix": "192.168.1.7"}]}),
    # A prefix past the address's length means the whole address (Envoy clamps).
    "internal_cidr_prefix_too_long": _set(internal_address_config={"cidr_ranges": [
        {"address_prefix": "10.0.0.0", "prefix_len": 33}, {"address_prefix": "::1", "prefix_len": 128}]}),
    "strip_host_port_and_dot": _set(strip_any_host_port=True, strip_trailing_host_dot=True,
                                    append_x_forwarded_port=True),
    "attempt_counts": _set(route_config={"virtual_hosts": [{
        "name": "v", "domains": ["*"], "include_request_attempt_count": True,
        "include_attempt_count_in_response": True,
        "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]}),
    "retry_previous_hosts": _set(route_config={"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{
        "match": {"prefix": "/"}, "route": {"cluster": "c", "retry_policy": {
            "retry_on": "reset-before-request,envoy-ratelimited,http3-post-connect-failure",
            "host_selection_retry_max_attempts": 3, "retry_host_predicate": [{
                "name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
                             "PreviousHostsPredicate"}}]}}}]}]}),
    "route_metadata_decorator": _set(route_config={"virtual_hosts": [{
        "name": "v", "domains": ["*"], "metadata": {"filter_metadata": {"a": {"b": [1, "x"]}}},
        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"}, "name": "r",
                    "decorator": {"operation": "op", "propagate": False},
                    "metadata": {"filter_metadata": {"envoy.lb": {"canary": True}}}}]}]}),
    "health_check_filter": _health_check(pass_through_mode=False, headers=[
        {"name": ":path", "string_match": {"exact": "/healthz"}}, {"name": "x-hc", "present_match": True}]),
    "health_check_pass_through": _health_check(pass_through_mode={"value": True}),
    "max_stream_duration": _set(common_http_protocol_options={"max_stream_duration": "5s"}),
    "require_tls": _set(route_config={"virtual_hosts": [
        {"name": "a", "domains": ["a"], "require_tls": "ALL", "routes": []},
        {"name": "b", "domains": ["b"], "require_tls": "EXTERNAL_ONLY", "routes": []},
        {"name": "c", "domains": ["*"], "require_tls": "NONE",
         "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]}),
    "internal_only_headers": _set(route_config={"internal_only_headers": ["X-Secret", "x-b"]}),
}
# Both refuse these.
REFUSED = {
    "router_not_last": _filters(ROUTER_FILTER, ROUTER_FILTER),
    "unknown_http_filter": _filters({"name": "x", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.nosuch.v3.Nosuch"}}, ROUTER_FILTER),
    "router_without_typed_config": _filters({"name": "envoy.filters.http.router"}),
    "no_route_specifier": _pop("route_config"),
    "max_request_headers_kb_0": _set(max_request_headers_kb=0),
    "max_request_headers_kb_8193": _set(max_request_headers_kb=8193),
    "max_headers_count_0": _set(common_http_protocol_options={"max_headers_count": 0}),
    "server_name_newline": _set(server_name="a\nb"),
    "via_trailing_newline": _set(via="a\n"),
    "via_nul": _set(via="a\x00b"),
    "router_disabled": _filters(dict(ROUTER_FILTER, disabled=True)),
    "empty_filter_name": _filters(dict(ROUTER_FILTER, name="")),
    "empty_stat_prefix": _set(stat_prefix=""),
    "upgrade_twice": _set(upgrade_configs=[{"upgrade_type": "websocket"}, {"upgrade_type": "WebSocket"}]),
    "negative_duration": _set(request_headers_timeout="-1s"),
    "duration_in_ms": _set(stream_idle_timeout="500ms"),
    "strict_check_header_unknown": _router_set(strict_check_headers=["x-foo"]),
    "header_key_format_empty": _set(http_protocol_options={"header_key_format": {}}),
    "unknown_field": _set(bogus=1),
    "router_unknown_field": _router_set(bogus=1),
    "unknown_enum": _set(codec_type="HTTP9"),
    "access_log_unknown_operator": _set(access_log=[{"typed_config": {"@type": STDOUT_LOG, "log_format": {
        "text_format_source": {"inline_string": "%NO_SUCH_OPERATOR%"}}}}]),
    "both_strip_port_modes": _set(strip_matching_host_port=True, strip_any_host_port=True),
    "health_check_without_pass_through_mode": _health_check(),
    "health_check_bad_regex": _health_check(pass_through_mode=False, headers=[
        {"name": "x", "safe_regex_match": {"regex": "("}}]),
    "require_tls_unknown": _set(route_config={"virtual_hosts": [
        {"name": "a", "domains": ["*"], "require_tls": "SOME", "routes": []}]}),
    "decorator_without_operation": _set(route_config={"virtual_hosts": [{
        "name": "v", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"},
                                                   "decorator": {"propagate": True}}]}]}),
    "internal_cidr_malformed": _set(internal_address_config={"cidr_ranges": [{"address_prefix": "10.0.0"}]}),
    "internal_only_header_newline": _set(route_config={"internal_only_headers": ["x-a\nb"]}),
}
# Envoy loads these; envoy_fast refuses them, saying so (envoy-subset.md
# section 1: a field that would change behaviour and is not implemented, or
# a chain that would never answer).
ENVOY_ONLY = {
    "no_http_filters": (_pop("http_filters"), "http_filters is empty"),
    "codec_http2": (_set(codec_type="HTTP2"), "codec_type HTTP2 is not supported by envoy_fast"),
    "rds": (_both(_pop("route_config"),
                  _set(rds={"route_config_name": "r", "config_source": {"ads": {}}})),
            "rds (RDS) is not supported by envoy_fast"),
    "tracing": (_set(tracing={}), "not supported by envoy_fast"),
    "merge_slashes": (_set(merge_slashes=True), "not supported by envoy_fast"),
    "local_reply_config": (_set(local_reply_config={}), "not supported by envoy_fast"),
    "max_connection_duration_0s": (_set(common_http_protocol_options={"max_connection_duration": "0s"}),
                                   "max_connection_duration 0s is not supported by envoy_fast"),
    "drain_timeout_jitter": (_set(drain_timeout_jitter={"value": 10}), "not supported by envoy_fast"),
    "router_upstream_log": (_router_set(upstream_log=[{"typed_config": {"@type": STDOUT_LOG}}]),
                            "upstream_log is not supported by envoy_fast"),
    "router_dynamic_stats_off": (_router_set(dynamic_stats=False),
                                 "dynamic_stats: false is not supported by envoy_fast"),
    "retry_host_predicate_canary": (_set(route_config={"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{
        "match": {"prefix": "/"}, "route": {"cluster": "c", "retry_policy": {"retry_host_predicate": [{
            "name": "envoy.retry_host_predicates.omit_canary_hosts", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host.omit_canary_hosts.v3."
                         "OmitCanaryHostsPredicate"}}]}}}]}]}),
        "not supported by envoy_fast (retry host predicate"),
    "health_check_cache_time": (_health_check(pass_through_mode=True, cache_time="5s"),
                                "not supported by envoy_fast"),
    "upgrade_filters": (_set(upgrade_configs=[{"upgrade_type": "websocket", "filters": [ROUTER_FILTER]}]),
                        "not supported by envoy_fast"),
}


def _config(mutate):
    cfg = base()
    cfg["node"] = {"id": "node-1", "cluster": "edge"}      # RDS wants a node
    mutate(cfg)
    return cfg


def _write(tmp_path, cfg, name="cfg.json"):
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return str(path)


def envoy_validates(path):
    envoy = require_peer("envoy")
    r = subprocess.run([envoy, "--mode", "validate", "-c", path, "-l", "critical",
                        "--base-id", str(os.getpid() % 100000 + free_port())],
                       capture_output=True, text=True, timeout=60)
    return r.returncode == 0, (r.stdout + r.stderr)[-600:]


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_accepted_by_both(tmp_path, case):
    path = _write(tmp_path, _config(ACCEPTED[case]))
    ok, out = envoy_validates(path)
    assert ok, out
    assert [e.describe() for e in validate_bootstrap(path)] == []


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_by_both(tmp_path, case):
    path = _write(tmp_path, _config(REFUSED[case]))
    ok, out = envoy_validates(path)
    assert not ok, "Envoy accepts %s" % case
    errors = validate_bootstrap(path)
    assert errors, "envoy_fast accepts %s" % case
    # Each error names a path inside the listener's filter and its line.
    assert errors[0].path.startswith("static_resources.listeners[0].filter_chains[0].filters[0]"), errors[0]
    assert errors[0].line is not None, errors[0].describe()


@pytest.mark.parametrize("case", sorted(ENVOY_ONLY))
def test_accepted_by_envoy_only_and_said_why(tmp_path, case):
    mutate, why = ENVOY_ONLY[case]
    path = _write(tmp_path, _config(mutate))
    ok, out = envoy_validates(path)
    assert ok, out
    errors = validate_bootstrap(path)
    assert errors and why in errors[0].message, [e.describe() for e in errors]
    assert errors[0].line is not None


# YAML scalars as Envoy's YAML-to-JSON conversion reads them (yaml-cpp): `y`
# and `n` are booleans, so a string field refuses them; a mapping key keeps
# its text, so `on` and `y` name json_format fields.
YAML_SCALARS = {
    "header_value_y": (False, 'response_headers_to_add: [{header: {key: x-a, value: y}}]'),
    "header_value_N": (False, 'response_headers_to_add: [{header: {key: x-a, value: N}}]'),
    "header_value_quoted_y": (True, "response_headers_to_add: [{header: {key: x-a, value: 'y'}}]"),
    "header_value_yes_text": (True, 'response_headers_to_add: [{header: {key: x-a, value: "yes"}}]'),
}
YAML_KEYS = "access_log: [{typed_config: {'@type': %s, log_format: {json_format: {y: '%%PROTOCOL%%', on: x}}}}]"


@pytest.mark.parametrize("case", sorted(YAML_SCALARS) + ["json_format_keys_y_on"])
def test_yaml_scalars_read_as_envoy_reads_them(tmp_path, case):
    cfg = _config(lambda cfg: None)
    text = yaml.safe_dump(cfg)
    if case in YAML_SCALARS:
        accepted, line = YAML_SCALARS[case]
        text = text.replace("routes:\n", "response_headers_to_add: []\n", 0)
        marker = "routes:"
        assert marker in text
        indent = text[:text.index(marker)].rsplit("\n", 1)[1]
        text = text.replace(indent + marker, indent + line + "\n" + indent + marker, 1)
    else:
        accepted = True
        marker = "stat_prefix:"
        indent = text[:text.index(marker)].rsplit("\n", 1)[1]
        text = text.replace(indent + marker, indent + YAML_KEYS % STDOUT_LOG + "\n" + indent + marker, 1)
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    ok, out = envoy_validates(str(path))
    assert ok == accepted, out
    errors = validate_bootstrap(str(path))
    assert (not errors) == accepted, [e.describe() for e in errors]


def test_validate_mode_cli_on_an_http_config(tmp_path):
    """`envoy-fast --mode validate`, as `envoy --mode validate`, on the same files."""
    def cli(path):
        r = subprocess.run([sys.executable, "-m", "envoy_fast", "--mode", "validate", "-c", path],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
        return r.returncode, r.stdout + r.stderr
    good = _write(tmp_path, _config(ACCEPTED["full"]), "good.json")
    code, out = cli(good)
    assert (code, envoy_validates(good)[0]) == (0, True), out
    assert "configuration '%s' OK" % good in out
    bad = _write(tmp_path, _config(REFUSED["router_not_last"]), "bad.json")
    code, out = cli(bad)
    assert (code, envoy_validates(bad)[0]) == (1, False), out
    assert ("static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0]"
            " (line 1): terminal filter named envoy.filters.http.router") in out, out


# ------------------------------------------------- /config_dump and stats names

def _running_config():
    admin = free_port()
    cfg = _config(_both(FULL, _router_set(suppress_envoy_headers=True)))
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = free_port()
    cfg["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}}
    # A second listener: its route configuration is named, its HCM keys
    # come in reverse order (the dump must not depend on the input's order).
    second = copy.deepcopy(cfg["static_resources"]["listeners"][0])
    second["name"] = "second"
    second["address"]["socket_address"]["port_value"] = free_port()
    hcm = second["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["stat_prefix"] = "other"
    hcm["route_config"]["name"] = "named"
    vh = hcm["route_config"]["virtual_hosts"][0]
    # One key per Struct: Envoy prints a Struct's keys in its hash map's order.
    vh["metadata"] = {"filter_metadata": {"team": {"tags": ["a", True, 2]}}}
    vh["routes"][0].update(name="r", decorator={"operation": "op"},
                           metadata={"filter_metadata": {"envoy.lb": {"canary": True}}})
    second["filter_chains"][0]["filters"][0]["typed_config"] = dict(reversed(list(hcm.items())))
    cfg["static_resources"]["listeners"].append(second)
    return cfg


@pytest.fixture(scope="module")
def envoy_answers():
    require_peer("envoy")
    cfg = _running_config()
    with run_envoy(cfg) as proxy:
        dump = json.loads(proxy.admin("/config_dump"))
        stats = proxy.admin("/stats")
    return cfg, dump, stats


def _without(doc, key):
    if isinstance(doc, dict):
        return {k: _without(v, key) for k, v in doc.items() if k != key}
    if isinstance(doc, list):
        return [_without(v, key) for v in doc]
    return doc


def test_config_dump_prints_the_hcm_as_envoy(tmp_path, envoy_answers):
    cfg, envoy_dump, _ = envoy_answers
    path = _write(tmp_path, cfg)
    doc = config_doc.bootstrap_json(load_bootstrap(path), config_doc.read_sources(path, None).doc, "v")
    mine = config_dump.config_dump(doc, "T")
    assert [c["@type"] for c in mine["configs"]] == [c["@type"] for c in envoy_dump["configs"]]
    theirs_listeners = envoy_dump["configs"][0]["bootstrap"]["static_resources"]["listeners"]
    # Field for field and in Envoy's order (json.dumps keeps key order).
    assert json.dumps(doc["static_resources"]["listeners"], indent=1) == json.dumps(theirs_listeners, indent=1)
    listeners = [c for c in mine["configs"] if c["@type"].endswith("ListenersConfigDump")][0]
    theirs = [c for c in envoy_dump["configs"] if c["@type"].endswith("ListenersConfigDump")][0]
    assert json.dumps(_without(listeners, "last_updated")) == json.dumps(_without(theirs, "last_updated"))


def test_routes_config_dump_as_envoy(tmp_path, envoy_answers):
    cfg, envoy_dump, _ = envoy_answers
    path = _write(tmp_path, cfg)
    doc = config_doc.bootstrap_json(load_bootstrap(path), config_doc.read_sources(path, None).doc, "v")
    mine = config_dump.config_dump(doc, "T")

    def routes(dump):
        (rdump,) = [c for c in dump["configs"] if c["@type"].endswith("v3.RoutesConfigDump")]
        # Envoy lists route configurations in the order of a hash map.
        return sorted(json.dumps(_without(r, "last_updated")) for r in rdump["static_route_configs"])
    assert routes(mine) == routes(envoy_dump)
    scoped = [c for c in mine["configs"] if c["@type"].endswith("ScopedRoutesConfigDump")]
    assert scoped == [{"@type": "type.googleapis.com/envoy.admin.v3.ScopedRoutesConfigDump"}]


def test_http_stat_names_are_envoys(tmp_path, envoy_answers):
    cfg, _, stats = envoy_answers
    names = [line.split(":", 1)[0] for line in stats.splitlines()]
    config = load_bootstrap(_write(tmp_path, cfg)).static_resources.listeners[0] \
        .filter_chains[0].filters[0].typed_config
    (block,) = hcm_record.RECORD.stat_blocks(config)
    assert block.prefix == "http.h"
    envoy_http = sorted(n[len("http.h."):] for n in names if n.startswith("http.h."))
    assert sorted([n for n, _ in block.table] + list(block.histograms)) == envoy_http
    port = cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"]
    prefix = "listener.127.0.0.1_%d" % port
    lblock = hcm_record.listener_stat_block(prefix, config)
    envoy_listener = sorted(n[len(prefix) + 1:] for n in names if n.startswith(prefix + ".http."))
    assert sorted("http.h." + n for n, _ in lblock.table) == envoy_listener
