"""http_connection_manager's config: accepted configs and the plan they
resolve to (every default as envoy-subset.md section 4), refused configs with
their path, line and message, the HTTP filter registry, and the messages'
fields and field numbers against Envoy 1.40's own descriptors."""
import msgspec
import pytest
import yaml

from envoy_fast.config import ConfigError, load_bootstrap, validate_bootstrap
from envoy_fast.extensions import registry
from envoy_fast.extensions.http import router_config
from envoy_fast.extensions.http.router_config import Router
from envoy_fast.extensions.network import http_connection_manager as hcm_record
from envoy_fast.extensions.network import http_connection_manager_config as hcm_config
from envoy_fast.extensions.network.http_connection_manager_config import HttpConnectionManager
from envoy_fast.extensions.network.http_connection_manager_plan import (
    SERVER_HEADER_APPEND_IF_ABSENT, SERVER_HEADER_OVERWRITE, UNDERSCORES_ALLOW,
    UNDERSCORES_DROP_HEADER, HttpConnectionManagerPlan, RouterPlan)
from envoy_fast.extensions.registry import HttpFilterPlan, HttpFilterRecord
from envoy_fast.server.plan import build_plan
from envoy_fast.stats.store import StatsLayout

HCM_URL = hcm_config.HCM_TYPE_URL
ROUTER_URL = router_config.ROUTER_TYPE_URL
FILTER = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"

ROUTER_BLOCK = """\
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""
ROUTE_BLOCK = """\
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes: [{match: {prefix: /}, route: {cluster: c}}]
"""


def config_text(hcm="", router="", filters=ROUTER_BLOCK, route=ROUTE_BLOCK):
    """A bootstrap with one HCM listener, as YAML text: `hcm` lines go into
    the HCM's typed_config (10 spaces in), `router` lines into the router's
    typed_config (14 spaces in)."""
    if router:
        filters = filters + router
    return """\
static_resources:
  clusters:
  - name: c
    connect_timeout: 1s
    load_assignment:
      cluster_name: c
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}
  listeners:
  - name: l
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: h
""" + route + filters + hcm


def load(text):
    return load_bootstrap(config_yaml=text)


def plan_of(text):
    bs = load(text)
    layout = StatsLayout(bs, 1)
    plan = build_plan(bs, layout, {"l": -1})
    return plan.listeners[0].filter_chains[0].filters[0], layout


# ------------------------------------------------------------ accepted configs

def test_defaults_resolved_as_envoy():
    """envoy-subset.md section 4: every default, resolved in the plan."""
    plan, layout = plan_of(config_text())
    assert isinstance(plan, HttpConnectionManagerPlan)
    assert plan.stat_prefix == "h"
    assert plan.stats_base == layout.block_base("http.h")
    # Envoy's per-listener block: listener.<address>.http.<stat_prefix>.
    assert plan.listener_stats_base == layout.block_base("listener.127.0.0.1_10000.http.h")
    assert layout.entries["listener.127.0.0.1_10000.http.h.downstream_rq_2xx"][0] == "counter"
    hists = layout.block_histograms("http.h")
    assert plan.downstream_rq_time_slot == hists["downstream_rq_time"]
    assert plan.downstream_cx_length_ms_slot == hists["downstream_cx_length_ms"]
    assert plan.http_filters == [RouterPlan(suppress_envoy_headers=False)]
    expected = dict(
        server_name="envoy", server_header_transformation=SERVER_HEADER_OVERWRITE,
        use_remote_address=False, skip_xff_append=False, xff_num_trusted_hops=0,
        generate_request_id=True, preserve_external_request_id=False,
        always_set_request_id_in_response=False, max_request_headers_kb=60,
        max_headers_count=100, headers_with_underscores_action=UNDERSCORES_ALLOW,
        idle_timeout=3600.0, max_connection_duration=0.0, max_requests_per_connection=0,
        stream_idle_timeout=300.0, request_timeout=0.0, request_headers_timeout=0.0,
        delayed_close_timeout=1.0, drain_timeout=5.0, accept_http_10=False,
        default_host_for_http_10="", allow_absolute_url=True, allow_chunked_length=False,
        enable_trailers=False, proper_case_headers=False, upgrade_types=[],
        proxy_100_continue=False, via="", access_log=[])
    assert {k: getattr(plan, k) for k in expected} == expected


FULL = """\
          codec_type: HTTP1
          server_name: edge
          server_header_transformation: APPEND_IF_ABSENT
          use_remote_address: true
          skip_xff_append: true
          xff_num_trusted_hops: 2
          generate_request_id: {value: false}
          preserve_external_request_id: true
          always_set_request_id_in_response: true
          max_request_headers_kb: 80
          common_http_protocol_options:
            idle_timeout: 30s
            max_connection_duration: {seconds: 600}
            max_headers_count: 50
            max_requests_per_connection: 10
            headers_with_underscores_action: DROP_HEADER
          httpProtocolOptions:
            accept_http_10: true
            default_host_for_http_10: example.com
            allowAbsoluteUrl: false
            allow_chunked_length: true
            enable_trailers: true
            header_key_format: {proper_case_words: {}}
          stream_idle_timeout: 10s
          request_timeout: 20.5s
          request_headers_timeout: 5s
          delayed_close_timeout: 0.25s
          drain_timeout: 2s
          upgrade_configs:
          - upgrade_type: WebSocket
          - {upgrade_type: h2c, enabled: false}
          proxy_100_continue: true
          via: 1.1 edge
          access_log:
          - name: out
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: {text_format_source: {inline_string: "%REQ(:METHOD)% %RESPONSE_CODE%\\n"}}
"""


def test_every_supported_field_reaches_the_plan():
    plan, _ = plan_of(config_text(FULL, router="              suppress_envoy_headers: true\n"))
    expected = dict(
        server_name="edge", server_header_transformation=SERVER_HEADER_APPEND_IF_ABSENT,
        use_remote_address=True, skip_xff_append=True, xff_num_trusted_hops=2,
        generate_request_id=False, preserve_external_request_id=True,
        always_set_request_id_in_response=True, max_request_headers_kb=80,
        max_headers_count=50, headers_with_underscores_action=UNDERSCORES_DROP_HEADER,
        idle_timeout=30.0, max_connection_duration=600.0, max_requests_per_connection=10,
        stream_idle_timeout=10.0, request_timeout=20.5, request_headers_timeout=5.0,
        delayed_close_timeout=0.25, drain_timeout=2.0, accept_http_10=True,
        default_host_for_http_10="example.com", allow_absolute_url=False,
        allow_chunked_length=True, enable_trailers=True, proper_case_headers=True,
        upgrade_types=["websocket"], proxy_100_continue=True, via="1.1 edge")
    assert {k: getattr(plan, k) for k in expected} == expected
    assert plan.http_filters == [RouterPlan(suppress_envoy_headers=True)]
    (log,) = plan.access_log
    assert (log.name, log.sink) == ("out", "stdout")
    assert [getattr(p, "command", p) for p in log.format.parts] == ["REQ", " ", "RESPONSE_CODE", "\n"]


def test_zero_disables_timeouts():
    plan, _ = plan_of(config_text(
        "          stream_idle_timeout: 0s\n          delayed_close_timeout: 0s\n"
        "          common_http_protocol_options: {idle_timeout: 0s, max_requests_per_connection: 0}\n"))
    assert (plan.stream_idle_timeout, plan.delayed_close_timeout, plan.idle_timeout,
            plan.max_requests_per_connection) == (0.0, 0.0, 0.0, 0)


def test_the_plan_round_trips_through_msgpack():
    """Workers get the plan as msgpack: it decodes back to the same Structs."""
    bs = load(config_text(FULL))
    plan = build_plan(bs, StatsLayout(bs, 1), {"l": -1})
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(plan), type=type(plan))
    assert back == plan
    assert isinstance(back.listeners[0].filter_chains[0].filters[0].http_filters[0], RouterPlan)


def test_stat_block_is_http_prefix_with_envoy_histograms():
    config = load(config_text()).static_resources.listeners[0].filter_chains[0].filters[0].typed_config
    record = registry.for_config(config)
    assert record is hcm_record.RECORD and record.terminal
    (block,) = record.stat_blocks(config)
    assert block.prefix == "http.h"
    assert block.histograms == ("downstream_cx_length_ms", "downstream_rq_time")
    names = [n for n, _ in block.table]
    for name in ("downstream_rq_total", "downstream_rq_2xx", "downstream_cx_http1_total",
                 "downstream_rq_timeout", "rq_direct_response", "no_route"):
        assert name in names
    kinds = dict(block.table)
    assert kinds["downstream_rq_active"] == kinds["downstream_cx_active"] == "gauge"
    assert kinds["downstream_rq_total"] == "counter"
    lblock = hcm_record.listener_stat_block("listener.127.0.0.1_10000", config)
    assert lblock.prefix == "listener.127.0.0.1_10000.http.h"
    assert [n for n, _ in lblock.table][-1] == "downstream_rq_completed"


def test_two_hcms_with_one_stat_prefix_share_their_block():
    text = config_text()
    doc = yaml.safe_load(text)
    chains = doc["static_resources"]["listeners"][0]["filter_chains"]
    other = yaml.safe_load(yaml.safe_dump(chains[0]))
    other["filter_chain_match"] = {"destination_port": 81}
    chains.append(other)
    bs = load(yaml.safe_dump(doc))
    layout = StatsLayout(bs, 1)
    plan = build_plan(bs, layout, {"l": -1})
    bases = {c.filters[0].stats_base for c in plan.listeners[0].filter_chains}
    assert bases == {layout.block_base("http.h")}


def test_camel_case_wrappers_and_enum_numbers():
    plan, _ = plan_of(config_text(
        "          serverHeaderTransformation: 2\n          useRemoteAddress: {value: true}\n"
        "          maxRequestHeadersKb: {value: 96}\n"
        "          commonHttpProtocolOptions: {headersWithUnderscoresAction: 2, maxHeadersCount: {value: 7}}\n"))
    assert (plan.server_header_transformation, plan.use_remote_address, plan.max_request_headers_kb,
            plan.headers_with_underscores_action, plan.max_headers_count) == (2, True, 96, 2, 7)


def test_ignored_fields_are_accepted_and_change_nothing():
    """HTTP/2-3 settings cannot act on an HTTP/1.1-only connection manager."""
    plan, _ = plan_of(config_text(
        "          http2_protocol_options: {max_concurrent_streams: 10}\n"
        "          stream_flush_timeout: 3s\n"
        "          http_protocol_options: {send_fully_qualified_url: true}\n",
        router="              start_child_span: true\n"))
    default, _ = plan_of(config_text())
    assert plan == default


def test_the_filter_name_is_a_label():
    text = config_text().replace("- name: envoy.filters.http.router", "- name: my-router")
    plan, _ = plan_of(text)
    assert plan.http_filters == [RouterPlan()]


# ------------------------------------------------------------ refused configs

NOT_SUPPORTED = "envoy_fast implements only part of Envoy's API"
REFUSED = [
    # (id, config_text kwargs, path under FILTER, marker of the line, message fragment)
    ("codec_http2", dict(hcm="          codec_type: HTTP2\n"), ".codec_type", "codec_type: HTTP2",
     "codec_type HTTP2 is not supported by envoy_fast"),
    ("codec_http3", dict(hcm="          codec_type: 3\n"), ".codec_type", "codec_type: 3",
     "codec_type HTTP3 is not supported by envoy_fast"),
    ("rds", dict(route="          rds: {route_config_name: r, config_source: {ads: {}}}\n"), ".rds", "rds:",
     "rds (RDS) is not supported by envoy_fast"),
    ("scoped_routes", dict(route="          scoped_routes: {name: s}\n"), ".scoped_routes", "scoped_routes:",
     "scoped_routes (scoped RDS) is not supported by envoy_fast"),
    ("no_route", dict(route=""), "", "        typed_config:",
     "route_specifier is required (one of rds, route_config, scoped_routes)"),
    ("unknown_field", dict(hcm="          bogus: 1\n"), ".bogus", "bogus: 1",
     "unknown field: envoy.extensions.filters.network.http_connection_manager.v3."
     "HttpConnectionManager has no field 'bogus'"),
    ("tracing", dict(hcm="          tracing: {}\n"), ".tracing", "tracing:",
     "not supported by envoy_fast (envoy.extensions.filters.network.http_connection_manager.v3."
     "HttpConnectionManager.tracing)"),
    ("local_reply_config", dict(hcm="          local_reply_config: {mappers: []}\n"), ".local_reply_config",
     "local_reply_config:", "HttpConnectionManager.local_reply_config)"),
    ("merge_slashes", dict(hcm="          merge_slashes: true\n"), ".merge_slashes", "merge_slashes:",
     "HttpConnectionManager.merge_slashes)"),
    ("normalize_path", dict(hcm="          normalize_path: true\n"), ".normalize_path", "normalize_path:",
     "path normalisation (normalize_path: true) is not supported by envoy_fast"),
    ("allow_custom_methods", dict(hcm="          http_protocol_options: {allow_custom_methods: true}\n"),
     ".http_protocol_options.allow_custom_methods", "allow_custom_methods",
     "(envoy.config.core.v3.Http1ProtocolOptions.allow_custom_methods)"),
    ("max_request_headers_kb_0", dict(hcm="          max_request_headers_kb: 0\n"), ".max_request_headers_kb",
     "max_request_headers_kb: 0", "value must be inside range (0, 8192]"),
    ("max_request_headers_kb_big", dict(hcm="          max_request_headers_kb: 8193\n"),
     ".max_request_headers_kb", "max_request_headers_kb: 8193", "value must be inside range (0, 8192]"),
    ("max_headers_count_0", dict(hcm="          common_http_protocol_options:\n            max_headers_count: 0\n"),
     ".common_http_protocol_options.max_headers_count", "max_headers_count: 0", "Expected `int` >= 1"),
    ("max_connection_duration_0",
     dict(hcm="          common_http_protocol_options:\n            max_connection_duration: 0s\n"),
     ".common_http_protocol_options.max_connection_duration", "max_connection_duration: 0s",
     "max_connection_duration 0s is not supported by envoy_fast"),
    ("server_name_newline", dict(hcm='          server_name: "a\\nb"\n'), ".server_name", "server_name:",
     'value does not match regex pattern "^[^\\x00\\n\\r]*$"'),
    ("via_cr", dict(hcm='          via: "a\\rb"\n'), ".via", "via:",
     'value does not match regex pattern "^[^\\x00\\n\\r]*$"'),
    ("bad_duration", dict(hcm="          stream_idle_timeout: 500ms\n"), ".stream_idle_timeout",
     "stream_idle_timeout: 500ms", "invalid duration '500ms'"),
    ("bad_enum", dict(hcm="          server_header_transformation: NOPE\n"), ".server_header_transformation",
     "server_header_transformation: NOPE", "unknown enum value 'NOPE'"),
    ("forward_client_cert", dict(hcm="          forward_client_cert_details: ALWAYS_FORWARD_ONLY\n"),
     ".forward_client_cert_details", "forward_client_cert_details:",
     "forward_client_cert_details ALWAYS_FORWARD_ONLY is not supported by envoy_fast"),
    ("header_key_format_empty", dict(hcm="          http_protocol_options: {header_key_format: {}}\n"),
     ".http_protocol_options.header_key_format", "header_key_format", "header_format is required"),
    ("upgrade_dup", dict(hcm="          upgrade_configs:\n          - upgrade_type: websocket\n"
                             "          - upgrade_type: WebSocket\n"),
     ".upgrade_configs[1].upgrade_type", "upgrade_type: WebSocket",
     "multiple upgrade configs with the same name: 'WebSocket'"),
    ("upgrade_filters", dict(hcm="          upgrade_configs:\n          - {upgrade_type: websocket, filters: [{name: x}]}\n"),
     ".upgrade_configs[0].filters", "upgrade_type: websocket",
     "(envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig.filters)"),
    ("no_http_filters", dict(filters="          http_filters: []\n"), ".http_filters", "http_filters: []",
     "http_filters is empty: the last HTTP filter must be envoy.filters.http.router"),
    ("http_filters_absent", dict(filters=""), ".http_filters", "        typed_config:",
     "http_filters is empty"),
    ("unknown_http_filter", dict(filters=ROUTER_BLOCK.replace(
        "envoy.extensions.filters.http.router.v3.Router", "envoy.extensions.filters.http.buffer.v3.Buffer")),
     ".http_filters[0].typed_config.@type", '"@type": type.googleapis.com/envoy.extensions.filters.http.buffer',
     "unsupported HTTP filter type 'type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer'"
     " (envoy_fast supports: type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck,"
     " type.googleapis.com/envoy.extensions.filters.http.router.v3.Router)"),
    ("http_filter_without_typed_config", dict(filters="          http_filters:\n          - name: envoy.filters.http.router\n"),
     ".http_filters[0].typed_config", "- name: envoy.filters.http.router", "missing required field"),
    ("http_filter_empty_name", dict(filters=ROUTER_BLOCK.replace("name: envoy.filters.http.router", 'name: ""')),
     ".http_filters[0].name", 'name: ""', "Expected `str` of length >= 1"),
    ("router_not_last", dict(filters=ROUTER_BLOCK + ROUTER_BLOCK.split("\n", 1)[1]), ".http_filters[0]",
     "- name: envoy.filters.http.router",
     "terminal filter named envoy.filters.http.router of type envoy.filters.http.router"
     " must be the last filter in a http filter chain"),
    ("router_disabled", dict(filters=ROUTER_BLOCK + "            disabled: true\n"), ".http_filters[0].disabled",
     "disabled: true",
     "the last (terminal) filter (envoy.filters.http.router) in the chain cannot be disabled by default"),
    ("router_unknown_field", dict(router="              bogus: 1\n"), ".http_filters[0].typed_config.bogus",
     "bogus: 1", "unknown field: envoy.extensions.filters.http.router.v3.Router has no field 'bogus'"),
    ("router_upstream_log", dict(router="              upstream_log: [{typed_config: {\"@type\": "
                                        "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog}}]\n"),
     ".http_filters[0].typed_config.upstream_log", "upstream_log:", "upstream_log is not supported by envoy_fast"),
    ("router_dynamic_stats_off", dict(router="              dynamic_stats: false\n"),
     ".http_filters[0].typed_config.dynamic_stats", "dynamic_stats: false",
     "dynamic_stats: false is not supported by envoy_fast"),
    ("router_strict_check_bad", dict(router="              strict_check_headers: [x-foo]\n"),
     ".http_filters[0].typed_config.strict_check_headers[0]", "strict_check_headers:",
     "value must be in list [x-envoy-upstream-rq-timeout-ms x-envoy-upstream-rq-per-try-timeout-ms"
     " x-envoy-max-retries x-envoy-retry-grpc-on x-envoy-retry-on]"),
    ("router_upstream_http_filters", dict(router="              upstream_http_filters: [{name: x}]\n"),
     ".http_filters[0].typed_config.upstream_http_filters", "upstream_http_filters:",
     "(envoy.extensions.filters.http.router.v3.Router.upstream_http_filters)"),
]


def _line_of(text, marker):
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


@pytest.mark.parametrize("kwargs, path, marker, fragment", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_with_path_and_line(kwargs, path, marker, fragment):
    text = config_text(**kwargs)
    errors = validate_bootstrap(config_yaml=text)
    assert errors, "accepted:\n" + text
    first = errors[0]
    assert (first.path, first.line) == (FILTER + path, _line_of(text, marker)), [e.describe() for e in errors]
    assert fragment in first.message, first.describe()
    with pytest.raises(ConfigError):
        load(text)


def test_validate_reports_every_error_in_document_order():
    text = config_text("          codec_type: HTTP2\n          bogus: 1\n          via: \"\\n\"\n",
                       router="              dynamic_stats: false\n")
    errors = validate_bootstrap(config_yaml=text)
    assert [(e.path, e.line) for e in errors] == [
        (FILTER + ".http_filters[0].typed_config.dynamic_stats", _line_of(text, "dynamic_stats")),
        (FILTER + ".codec_type", _line_of(text, "codec_type")),
        (FILTER + ".bogus", _line_of(text, "bogus")),
        (FILTER + ".via", _line_of(text, "via:")),
    ]


def test_an_unknown_http_filter_near_the_router_gets_a_hint():
    text = config_text(filters=ROUTER_BLOCK.replace("router.v3.Router", "router.v3.Routr"))
    (err,) = validate_bootstrap(config_yaml=text)
    assert err.hint == "did you mean `%s`?" % ROUTER_URL


# ------------------------------------------------------------ registry

def test_router_record():
    (rec,) = [r for r in registry.http_filters() if r.name == "envoy.filters.http.router"]
    assert rec.terminal and rec.config_type is Router and rec.plan_type is RouterPlan
    assert registry.for_http_config(Router()) is rec
    assert registry.for_http_plan(RouterPlan()) is rec
    assert registry.config_types("http_filter")[ROUTER_URL] is Router
    assert registry.config_type("http_filter", "example.org/" + router_config.ROUTER_TYPE) is Router
    assert HCM_URL in registry.config_types("network_filter")


def test_health_check_record():
    from envoy_fast.extensions.http.health_check_config import HEALTH_CHECK_TYPE_URL, HealthCheck
    from envoy_fast.extensions.network.http_connection_manager_plan import HealthCheckPlan
    (rec,) = [r for r in registry.http_filters() if r.name == "envoy.filters.http.health_check"]
    assert not rec.terminal and rec.config_type is HealthCheck and rec.plan_type is HealthCheckPlan
    assert registry.config_types("http_filter")[HEALTH_CHECK_TYPE_URL] is HealthCheck
    assert registry.for_http_plan(HealthCheckPlan()) is rec


def test_http_filter_registration_rules():
    class Mislabelled(HttpFilterPlan, tag="something.else"):
        pass
    bad = HttpFilterRecord(name="test.filters.http.x", config_type=Router, plan_type=Mislabelled,
                           build_plan=lambda c, ctx: None)
    with pytest.raises(ValueError, match="must be tagged"):
        registry.register_http_filter(bad)

    class Again(HttpFilterPlan, tag="envoy.filters.http.router"):
        pass
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_http_filter(HttpFilterRecord(
            name="envoy.filters.http.router", config_type=Router, plan_type=Again,
            build_plan=lambda c, ctx: None))
    with pytest.raises(ValueError, match="no HTTP filter for"):
        registry.for_http_config(object())


def test_modelled_fields_are_envoy_fields():
    for cls in (HttpConnectionManager, hcm_config.HttpFilter, hcm_config.UpgradeConfig,
                hcm_config.HttpProtocolOptions, hcm_config.Http1ProtocolOptions,
                hcm_config.HeaderKeyFormat, Router):
        fields = {f.name for f in msgspec.structs.fields(cls)}
        assert cls.__struct_config__.forbid_unknown_fields
        assert fields <= cls.ENVOY_FIELDS, cls
        assert not fields & set(cls.IGNORED), cls
        assert cls.ENVOY_FIELDS <= set(hcm_config.FIELD_NUMBERS.get(cls.ENVOY_TYPE)
                                       or router_config.FIELD_NUMBERS[cls.ENVOY_TYPE]), cls


# ------------------------------------------------- against Envoy 1.40's descriptors

MESSAGES = [
    ("envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
     [HttpConnectionManager, hcm_config.HttpFilter, hcm_config.UpgradeConfig]),
    ("envoy/config/core/v3/protocol.proto",
     [hcm_config.HttpProtocolOptions, hcm_config.Http1ProtocolOptions, hcm_config.HeaderKeyFormat]),
    ("envoy/extensions/filters/http/router/v3/router.proto", [Router]),
]


@pytest.mark.parametrize("proto_file, classes", MESSAGES, ids=[m[0].rsplit("/", 1)[-1] for m in MESSAGES])
def test_fields_and_numbers_are_envoys(proto_file, classes):
    """ENVOY_FIELDS is every field of Envoy 1.40's message, FIELD_NUMBERS its
    numbers, read from the descriptors compiled into the real binary."""
    from envoy_descriptors import message_fields
    descriptors = message_fields(proto_file)
    numbers = {**hcm_config.FIELD_NUMBERS, **router_config.FIELD_NUMBERS}
    for cls in classes:
        envoy = descriptors[cls.ENVOY_TYPE]
        assert set(cls.ENVOY_FIELDS) == set(envoy), cls.ENVOY_TYPE
        assert numbers[cls.ENVOY_TYPE] == envoy, cls.ENVOY_TYPE
