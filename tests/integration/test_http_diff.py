"""Differential HTTP cases: each runs the same YAML and the same raw bytes
through the real Envoy and through envoy_fast and compares what the client
got and what the upstream received (http_diff.py). The status each case
expects from Envoy is asserted too, so HTTP_DIFF_PEER=envoy (Envoy against
itself) checks the cases. A config envoy_fast refuses fails its case.
"""
import json

import pytest

from http_diff import ROUTER, assert_same, get, hcm_config, pair, upstream_cluster

BASIC = hcm_config()
TRAILERS_ON = hcm_config(hcm={"http_protocol_options": {"enable_trailers": True}}, clusters=[
    upstream_cluster("up", "UPSTREAM", typed_extension_protocol_options={
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}}}})])
STATS_4XX = ["http.ingress.downstream_rq_4xx", "http.ingress.downstream_cx_protocol_error"]


def case(name, request, status, config=None, **kw):
    return pytest.param(config or BASIC, request, status, kw, id=name)


def run(config, request, status, kw):
    r = assert_same(config, request, **kw)
    if status is not None:
        got = r.status if not isinstance(r, list) else [x.status for x in r]
        assert got == status, "Envoy answered %r, the case expects %r" % (got, status)
    return r


# ---------------------------------------------------------------- 1. codec

CODEC = [
    case("get", get("/a?x=1"), 200),
    case("keepalive_sequence", [get("/1"), 0.1, get("/2"), 0.1, get("/3")], 200, responses=3),
    case("pipelined", get("/1") + get("/2") + get("/3"), 200, responses=3),
    case("pipelined_head_then_get", get("/1", method="HEAD") + get("/2"), 200, responses=2),
    case("post_content_length", get("/p", method="POST", body=b"hello body"), 200),
    case("post_chunked", get("/p", method="POST", headers=["transfer-encoding: chunked"])
         + b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n", 200),
    case("post_chunked_uppercase", get("/p", method="POST", headers=["Transfer-Encoding: Chunked"])
         + b"2\r\nhi\r\n0\r\n\r\n", 200),
    case("request_trailers_dropped", get("/p", method="POST", headers=["transfer-encoding: chunked"])
         + b"2\r\nhi\r\n0\r\nx-t: 1\r\n\r\n", 200),
    case("response_chunked", get("/?chunked=1"), 200),
    case("response_trailers_dropped", get("/?trailers=1"), 200),
    case("response_trailers_kept", get("/?trailers=1"), 200,
         config=hcm_config(hcm={"http_protocol_options": {"enable_trailers": True}})),
    # Observed: trailers pass only when both codecs enable them (HCM and cluster).
    case("trailers_both_ways", get("/p?trailers=1", method="POST", headers=["transfer-encoding: chunked"])
         + b"2\r\nhi\r\n0\r\nx-t: 1\r\n\r\n", 200, config=TRAILERS_ON),
    case("response_close_delimited", get("/?nolen=1"), 200),
    case("response_64k", get("/?size=65536"), 200),
    case("upload_1m", get("/p", method="POST", body=b"u" * (1 << 20)), 200),
    case("head", get("/?size=100", method="HEAD"), 200),
    case("head_chunked", get("/?chunked=1", method="HEAD"), 200),
    # Observed: a HEAD response with neither length nor chunked upstream
    # (close-delimited) or a bodiless local reply to HEAD says chunked.
    case("head_close_delimited", get("/?nolen=1", method="HEAD"), 200),
    case("head_no_route", get("/", method="HEAD"), 404,
         config=hcm_config([{"match": {"prefix": "/only"}, "route": {"cluster": "up"}}])),
    case("status_204", get("/?status=204"), 204),
    case("status_304", get("/?status=304"), 304),
    case("upstream_100_continue", get("/?early=100"), 200),
    case("upstream_103", get("/?early=103"), 200),
    case("upstream_100_continue_proxied", get("/?early=100"), 200,
         config=hcm_config(hcm={"proxy_100_continue": True})),
    case("upstream_103_proxied", get("/?early=103"), 200,
         config=hcm_config(hcm={"proxy_100_continue": True})),
    case("expect_100_continue", [get("/p", method="POST", headers=["content-length: 5", "expect: 100-continue"]),
                                 0.3, b"hello"], 200),
    case("http10_refused", get("/", version="HTTP/1.0"), 426, check_close=True, stats=STATS_4XX),
    case("http10_accepted", get("/", version="HTTP/1.0"), 200,
         config=hcm_config(hcm={"http_protocol_options": {"accept_http_10": True}}), check_close=True),
    case("http10_default_host", get("/", host=None, version="HTTP/1.0"), 200,
         config=hcm_config(hcm={"http_protocol_options": {"accept_http_10": True,
                                                          "default_host_for_http_10": "dflt.test"}})),
    case("http2_request_line", get("/", version="HTTP/2.0"), 426),
    case("absolute_form", b"GET http://abs.test:81/p?q=1 HTTP/1.1\r\nhost: other.test\r\n\r\n", 200),
    case("client_connection_close", get("/", headers=["connection: close"]), 200, check_close=True),
    case("hop_by_hop_removed", get("/", headers=["connection: keep-alive, x-drop", "keep-alive: 5",
                                                 "proxy-connection: x", "x-drop: 1", "x-keep: 2",
                                                 "te: trailers"]), 200),
    case("duplicate_host", get("/", headers=["host: b.test"]), 200),
    case("underscore_allowed", get("/", headers=["x_under: 1"]), 200),
    # Observed: Envoy 1.40 unfolds (upstream gets "x-fold: a b").
    case("obs_fold", b"GET / HTTP/1.1\r\nhost: a\r\nx-fold: a\r\n b\r\n\r\n", 200),
    case("bare_lf", b"GET / HTTP/1.1\nhost: a\nx-a: 1\n\n", 200),
    case("high_bytes_in_value", get("/", headers=["x-a: caf\xe9"]), 200),
    case("connect_no_route", b"CONNECT a.test:443 HTTP/1.1\r\nhost: a.test:443\r\n\r\n", 404),
    case("options_star", b"OPTIONS * HTTP/1.1\r\nhost: a\r\n\r\n", 404),
    case("upstream_dies_mid_body", get("/?size=1000&die=100"), 200, check_close=True),
    case("upstream_garbage", get("/?garbage=1"), 502),
]

MALFORMED = [
    case("not_http", b"hello there\r\n\r\n", 400),
    case("lowercase_method", b"get / HTTP/1.1\r\nhost: a\r\n\r\n", 400),
    case("unknown_method", b"FOO / HTTP/1.1\r\nhost: a\r\n\r\n", 400),
    case("bad_method_char", b"G(T / HTTP/1.1\r\nhost: a\r\n\r\n", 400),
    case("space_in_target", b"GET /a b HTTP/1.1\r\nhost: a\r\n\r\n", 400),
    case("target_without_slash", b"GET a HTTP/1.1\r\nhost: a\r\n\r\n", 400),
    case("space_in_name", b"GET / HTTP/1.1\r\nhost: a\r\nx y: 1\r\n\r\n", 400),
    case("space_before_colon", b"GET / HTTP/1.1\r\nhost: a\r\nx-a : 1\r\n\r\n", 400),
    case("line_without_colon", b"GET / HTTP/1.1\r\nhost: a\r\nnocolon\r\n\r\n", 400),
    case("nul_in_value", b"GET / HTTP/1.1\r\nhost: a\r\nx-a: a\x00b\r\n\r\n", 400),
    case("ctl_in_value", b"GET / HTTP/1.1\r\nhost: a\r\nx-a: a\x01b\r\n\r\n", 400),
    case("del_in_value", b"GET / HTTP/1.1\r\nhost: a\r\nx-a: a\x7fb\r\n\r\n", 400),
    # Observed: Envoy 1.40 drops a bare CR inside a value (upstream gets "ab").
    case("cr_in_value", b"GET / HTTP/1.1\r\nhost: a\r\nx-a: a\rb\r\n\r\n", 200),
    case("cl_and_te", get("/", method="POST", headers=["content-length: 3", "transfer-encoding: chunked"])
         + b"0\r\n\r\n", 400),
    case("two_content_lengths", get("/", method="POST", headers=["content-length: 2", "content-length: 2"])
         + b"hi", 400),
    case("content_length_list", get("/", method="POST", headers=["content-length: 5, 5"]) + b"hello", 400),
    case("content_length_negative", get("/", method="POST", headers=["content-length: -1"]), 400),
    case("content_length_text", get("/", method="POST", headers=["content-length: abc"]), 400),
    case("bad_chunk_size", get("/", method="POST", headers=["transfer-encoding: chunked"])
         + b"zz\r\nhi\r\n0\r\n\r\n", 400),
    case("te_gzip", get("/", method="POST", headers=["transfer-encoding: gzip"]), 501),
    case("te_gzip_chunked", get("/", method="POST", headers=["transfer-encoding: gzip, chunked"])
         + b"0\r\n\r\n", 501),
    case("te_chunked_chunked", get("/", method="POST", headers=["transfer-encoding: chunked, chunked"])
         + b"0\r\n\r\n", 501),
    case("no_host", get("/", host=None), 400),
    case("nothing_after_error", b"FOO / HTTP/1.1\r\nhost: a\r\n\r\n" + get("/after"), 400,
         responses=2, check_close=True, stats=STATS_4XX),
    case("underscore_rejected", get("/", headers=["x_under: 1"]), 400,
         config=hcm_config(hcm={"common_http_protocol_options": {
             "headers_with_underscores_action": "REJECT_REQUEST"}})),
    case("underscore_dropped", get("/", headers=["x_under: 1", "x-ok: 1"]), 200,
         config=hcm_config(hcm={"common_http_protocol_options": {
             "headers_with_underscores_action": "DROP_HEADER"}})),
    case("head_at_limit", b"GET / HTTP/1.1\r\nhost: a\r\nx-pad: " + b"p" * (1024 - 36) + b"\r\n\r\n", 200,
         config=hcm_config(hcm={"max_request_headers_kb": 1})),
    case("head_over_limit", b"GET / HTTP/1.1\r\nhost: a\r\nx-pad: " + b"p" * (1024 - 35) + b"\r\n\r\n", 431,
         config=hcm_config(hcm={"max_request_headers_kb": 1}), check_close=True),
    case("head_over_default_60k", get("/", headers=["x-pad: " + "p" * 61440]), 431),
    case("headers_100", get("/", headers=["x-h%d: v" % i for i in range(99)]), 200),
    case("headers_101", get("/", headers=["x-h%d: v" % i for i in range(100)]), 431),
    case("max_headers_count", get("/", headers=["x-h%d: v" % i for i in range(10)]), 431,
         config=hcm_config(hcm={"common_http_protocol_options": {"max_headers_count": 10}})),
]

UPGRADE_ON = hcm_config(hcm={"upgrade_configs": [{"upgrade_type": "websocket"}]})
WS = get("/ws", headers=["connection: upgrade", "upgrade: websocket"])
UPGRADE = [
    case("upgrade_not_configured", WS, 403),
    case("upgrade_websocket", [WS, 0.3, b"ping-1", 0.2, b"ping-2"], 101, config=UPGRADE_ON),
    case("upgrade_data_before_101", WS + b"early-bytes", 101, config=UPGRADE_ON),
    case("upgrade_answered_200", get("/ws?upgrade=0", headers=["connection: upgrade", "upgrade: websocket"])
         + b"smuggled", 200, config=UPGRADE_ON),
]


@pytest.mark.parametrize("config,request_,status,kw", CODEC + MALFORMED + UPGRADE)
def test_codec(config, request_, status, kw):
    run(config, request_, status, kw)


# ------------------------------------------------------------------ 2. HCM

def _hcm(**fields):
    return hcm_config(hcm=fields)


XFF = ["x-forwarded-for: 203.0.113.7, 10.1.2.3"]
# Headers a client could use to steer Envoy (cleanInternalHeaders), and
# x-envoy-internal, which only Envoy itself may assert.
ENVOY_CONTROLS = ["x-envoy-retry-on: 5xx", "x-envoy-max-retries: 1", "x-envoy-upstream-rq-timeout-ms: 900",
                  "x-envoy-upstream-rq-per-try-timeout-ms: 800", "x-envoy-retriable-status-codes: 418",
                  "x-envoy-retriable-header-names: x-h", "x-envoy-retry-grpc-on: cancelled",
                  "x-envoy-upstream-alt-stat-name: alt", "x-envoy-expected-rq-timeout-ms: 7",
                  "x-envoy-upstream-rq-timeout-alt-response: 1", "x-envoy-force-trace: 1",
                  "x-envoy-ip-tags: t", "x-envoy-original-url: http://x/", "x-envoy-hedge-on-per-try-timeout: 1",
                  "x-envoy-decorator-operation: op", "x-envoy-downstream-service-cluster: dc",
                  "x-envoy-downstream-service-node: dn", "x-envoy-internal: true", "x-envoy-other: kept",
                  "x-envoy-original-path: /o", "x-envoy-original-host: o.test", "x-envoy-attempt-count: 3",
                  "x-envoy-is-timeout-retry: true", "x-envoy-upstream-stream-duration-ms: 5",
                  "x-envoy-external-address: 198.51.100.1", "x-envoy-decorator-operation: op2"]


def _require_tls(mode, **hcm):
    return hcm_config(virtual_hosts=[{"name": "all", "domains": ["*"], "require_tls": mode,
                                      "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}], hcm=hcm)


HCM_CASES = [
    case("max_stream_duration_incomplete_request",
         b"POST / HTTP/1.1\r\nhost: a.test\r\ncontent-length: 10\r\n\r\nab", 408,
         config=_hcm(common_http_protocol_options={"max_stream_duration": "0.5s"}), check_close=True,
         stats=["http.ingress.downstream_rq_max_duration_reached"]),
    case("max_stream_duration_before_response", get("/?delay=1.5"), 504,
         config=_hcm(common_http_protocol_options={"max_stream_duration": "0.5s"}),
         stats=["http.ingress.downstream_rq_max_duration_reached"]),
    case("max_stream_duration_after_headers", get("/?size=100&body_delay=1.5"), 200,
         config=_hcm(common_http_protocol_options={"max_stream_duration": "0.5s"}), check_close=True,
         stats=["http.ingress.downstream_rq_max_duration_reached"]),
    case("max_stream_duration_not_reached", get("/"), 200,
         config=_hcm(common_http_protocol_options={"max_stream_duration": "0.5s"})),
    case("append_x_forwarded_port", get("/"), 200, config=_hcm(append_x_forwarded_port=True)),
    case("append_x_forwarded_port_kept", get("/", headers=["x-forwarded-port: 99"]), 200,
         config=_hcm(append_x_forwarded_port=True)),
    case("append_x_forwarded_port_edge", get("/", headers=["x-forwarded-port: 99"]), 200,
         config=_hcm(append_x_forwarded_port=True, use_remote_address=True)),
    case("require_tls_none", get("/a?b=1"), 200, config=_require_tls("NONE")),
    case("require_tls_all", get("/a?b=1", host="a.test:8080"), 301, config=_require_tls("ALL")),
    # A trusted x-forwarded-proto (no use_remote_address) says https: no redirect.
    case("require_tls_all_xfp_https", get("/a", headers=["x-forwarded-proto: https"]), 200,
         config=_require_tls("ALL")),
    case("require_tls_all_post", get("/a", method="POST", body=b"xy"), 301, config=_require_tls("ALL")),
    case("require_tls_external_only", get("/a"), 301, config=_require_tls("EXTERNAL_ONLY")),
    case("require_tls_all_edge_xfp_https_overwritten", get("/a", headers=["x-forwarded-proto: https"]), 301,
         config=_require_tls("ALL", use_remote_address=True)),
    case("require_tls_host_with_default_port", get("/a", host="a.test:80"), 301, config=_require_tls("ALL")),
    case("require_tls_external_only_internal", get("/a"), 200, config=_require_tls(
        "EXTERNAL_ONLY", use_remote_address=True,
        internal_address_config={"cidr_ranges": [{"address_prefix": "127.0.0.1", "prefix_len": 32}]})),
    case("strip_matching_host_port", get("/", host="a.test:{{LISTEN}}"), 200,
         config=_hcm(strip_matching_host_port=True)),
    case("strip_matching_host_port_other", get("/", host="a.test:8080"), 200,
         config=_hcm(strip_matching_host_port=True)),
    case("strip_any_host_port", get("/", host="a.test:8080"), 200, config=_hcm(strip_any_host_port=True)),
    case("strip_any_host_port_ipv6", get("/", host="[::1]:8080"), 200, config=_hcm(strip_any_host_port=True)),
    case("strip_any_host_port_no_port", get("/", host="[::1]"), 200, config=_hcm(strip_any_host_port=True)),
    case("strip_any_host_port_not_numeric", get("/", host="a.test:http"), 200,
         config=_hcm(strip_any_host_port=True)),
    case("strip_trailing_host_dot", get("/", host="a.test."), 200, config=_hcm(strip_trailing_host_dot=True)),
    case("strip_trailing_host_dot_before_port", get("/", host="a.test.:8080"), 200,
         config=_hcm(strip_trailing_host_dot=True)),
    case("strip_port_and_trailing_dot", get("/", host="a.test.:{{LISTEN}}"), 200,
         config=_hcm(strip_trailing_host_dot=True, strip_matching_host_port=True)),
    case("strip_port_routes_on_the_stripped_host", get("/", host="b.test:8080"), 200, config=hcm_config(
        virtual_hosts=[{"name": "b", "domains": ["b.test"], "routes": [
            {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "b"}}}]},
            {"name": "any", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}],
        hcm={"strip_any_host_port": True})),
    case("envoy_controls_internal_peer", get("/", headers=ENVOY_CONTROLS), 200),
    case("envoy_controls_edge", get("/", headers=ENVOY_CONTROLS), 200, config=_hcm(use_remote_address=True)),
    case("envoy_controls_trusted_hop", get("/", headers=ENVOY_CONTROLS + XFF), 200,
         config=_hcm(use_remote_address=True, xff_num_trusted_hops=1)),
    case("envoy_controls_xff_external", get("/", headers=ENVOY_CONTROLS + ["x-forwarded-for: 203.0.113.7"]), 200),
    case("envoy_controls_xff_internal", get("/", headers=ENVOY_CONTROLS + ["x-forwarded-for: 10.0.0.1"]), 200),
    case("envoy_controls_internal_config", get("/", headers=ENVOY_CONTROLS), 200,
         config=_hcm(use_remote_address=True, internal_address_config={
             "cidr_ranges": [{"address_prefix": "127.0.0.0", "prefix_len": 8}]})),
    case("envoy_controls_xff_internal_config", get("/", headers=ENVOY_CONTROLS + ["x-forwarded-for: 10.9.8.7"]),
         200, config=_hcm(internal_address_config={"cidr_ranges": [{"address_prefix": "10.0.0.0",
                                                                     "prefix_len": 8}]})),
    case("internal_only_headers", get("/", headers=["x-secret: 1", "X-Other-Secret: 2", "x-public: 3"]), 200,
         config=hcm_config(route_config={"internal_only_headers": ["x-secret", "X-Other-Secret"]})),
    case("internal_only_headers_internal", get("/", headers=["x-secret: 1", "x-public: 3"]), 200,
         config=hcm_config(route_config={"internal_only_headers": ["x-secret"]}, hcm={
             "use_remote_address": True,
             "internal_address_config": {"cidr_ranges": [{"address_prefix": "127.0.0.1", "prefix_len": 32}]}})),
    case("server_name", get("/"), 200, config=_hcm(server_name="edge-1")),
    case("server_overwrite", get("/?hdr=server:up"), 200),
    case("server_pass_through", get("/?hdr=server:up"), 200,
         config=_hcm(server_header_transformation="PASS_THROUGH")),
    case("server_append_if_absent", get("/?hdr=server:up"), 200,
         config=_hcm(server_header_transformation="APPEND_IF_ABSENT")),
    case("xff_untouched", get("/", headers=XFF), 200),
    case("xff_remote_address", get("/"), 200, config=_hcm(use_remote_address=True)),
    case("xff_remote_address_appends", get("/", headers=XFF), 200, config=_hcm(use_remote_address=True)),
    case("xff_trusted_hops", get("/", headers=XFF + ["x-forwarded-proto: https"]), 200,
         config=_hcm(use_remote_address=True, xff_num_trusted_hops=1)),
    case("xff_skip_append", get("/", headers=XFF), 200,
         config=_hcm(use_remote_address=True, skip_xff_append=True)),
    case("xfp_kept", get("/", headers=["x-forwarded-proto: https"]), 200),
    case("xfp_overwritten", get("/", headers=["x-forwarded-proto: https"]), 200,
         config=_hcm(use_remote_address=True)),
    case("request_id_kept", get("/", headers=["x-request-id: client-id-1"]), 200),
    case("request_id_replaced", get("/", headers=["x-request-id: client-id-1"]), 200,
         config=_hcm(use_remote_address=True)),
    case("request_id_preserved", get("/", headers=["x-request-id: client-id-1"]), 200,
         config=_hcm(use_remote_address=True, preserve_external_request_id=True)),
    case("request_id_in_response", get("/"), 200, config=_hcm(always_set_request_id_in_response=True)),
    case("request_id_not_generated", get("/"), 200, config=_hcm(generate_request_id=False)),
    case("expected_timeout_header", get("/"), 200,
         config=hcm_config([{"match": {"prefix": "/"}, "route": {"cluster": "up", "timeout": "2.5s"}}])),
    case("expected_timeout_absent_when_0", get("/"), 200,
         config=hcm_config([{"match": {"prefix": "/"}, "route": {"cluster": "up", "timeout": "0s"}}])),
    case("stream_idle_timeout_request_incomplete",
         get("/", method="POST", headers=["content-length: 10"]) + b"abc", 408,
         config=_hcm(stream_idle_timeout="0.5s"), stats=["http.ingress.downstream_rq_idle_timeout"]),
    case("stream_idle_timeout_response_slow", get("/?delay=1.5"), 504,
         config=_hcm(stream_idle_timeout="0.5s")),
    case("route_idle_timeout", get("/?delay=1.5"), 504,
         config=hcm_config([{"match": {"prefix": "/"}, "route": {"cluster": "up", "idle_timeout": "0.5s"}}])),
    case("request_timeout", get("/", method="POST", headers=["content-length: 10"]) + b"abc", 408,
         config=_hcm(request_timeout="0.5s"), stats=["http.ingress.downstream_rq_timeout"]),
    case("request_headers_timeout", b"GET / HTTP/1.1\r\nhost: a\r\n", 408,
         config=_hcm(request_headers_timeout="0.5s"), check_close=True),
    case("connection_idle_timeout", get("/"), 200,
         # Observed: the close comes after idle_timeout + drain_timeout + delayed_close_timeout.
         config=_hcm(common_http_protocol_options={"idle_timeout": "0.5s"}, drain_timeout="0.5s"),
         check_close=True),
    case("max_requests_per_connection", [get("/1"), 0.1, get("/2"), 0.1, get("/3")], 200,
         config=_hcm(common_http_protocol_options={"max_requests_per_connection": 2}),
         responses=2, check_close=True),
    case("max_connection_duration", [get("/1"), 0.8, get("/2")], 200,
         config=_hcm(common_http_protocol_options={"max_connection_duration": "0.5s"}, drain_timeout="0.5s"),
         responses=2, check_close=True),
]


@pytest.mark.parametrize("config,request_,status,kw", HCM_CASES)
def test_connection_manager(config, request_, status, kw):
    run(config, request_, status, kw)


# ----------------------------------------------------------- 3. route table

def _vh(name, domains, body=None):
    return {"name": name, "domains": domains, "routes": [{"match": {"prefix": "/"}, "direct_response": {
        "status": 200, "body": {"inline_string": body or name}}}]}


DOMAINS = hcm_config(virtual_hosts=[
    _vh("star", ["*"]), _vh("exact", ["exact.example.com", "port.test:8080"]),
    _vh("suffix", ["*.example.com"]), _vh("suffix_long", ["*.long.example.com"]),
    _vh("prefix", ["example.*"])])


def _route(match, **action):
    return {"match": match, "route": dict({"cluster": "up"}, **action)}


def _dr(match, body):
    return {"match": match, "direct_response": {"status": 200, "body": {"inline_string": body}}}


MATCHES = hcm_config([
    _dr({"path": "/exact"}, "path"),
    _dr({"prefix": "/CaSe", "case_sensitive": False}, "case-insensitive"),
    _dr({"safe_regex": {"regex": "/re/[0-9]+"}}, "regex"),
    _dr({"path_separated_prefix": "/sep"}, "path_separated_prefix"),
    _dr({"prefix": "/h", "headers": [{"name": "x-exact", "string_match": {"exact": "yes"}}]}, "h-exact"),
    _dr({"prefix": "/h", "headers": [{"name": "x-pre", "string_match": {"prefix": "ab"}}]}, "h-prefix"),
    _dr({"prefix": "/h", "headers": [{"name": "x-suf", "string_match": {"suffix": "yz"}}]}, "h-suffix"),
    _dr({"prefix": "/h", "headers": [{"name": "x-con", "string_match": {"contains": "mid"}}]}, "h-contains"),
    _dr({"prefix": "/h", "headers": [{"name": "x-present", "present_match": True}]}, "h-present"),
    _dr({"prefix": "/h", "headers": [{"name": "x-re", "string_match": {"safe_regex": {"regex": "v[0-9]"}}}]},
        "h-regex"),
    _dr({"prefix": "/h", "headers": [{"name": "x-inv", "string_match": {"exact": "no"},
                                      "invert_match": True}]}, "h-invert"),
    _dr({"prefix": "/q", "query_parameters": [{"name": "k", "string_match": {"exact": "v"}}]}, "q-exact"),
    _dr({"prefix": "/q", "query_parameters": [{"name": "p"}]}, "q-present"),
    _dr({"prefix": "/"}, "fallback"),
])

REWRITES = hcm_config([
    _route({"prefix": "/old/"}, prefix_rewrite="/new/"),
    _route({"prefix": "/rx/"}, regex_rewrite={"pattern": {"regex": "^/rx/([a-z]+)/(.*)$"},
                                              "substitution": "/\\2/\\1"}),
    _route({"prefix": "/host"}, host_rewrite_literal="rewritten.test"),
    _route({"prefix": "/lxfh"}, host_rewrite_literal="rewritten.test", append_x_forwarded_host=True),
    _route({"prefix": "/auto"}, cluster="named", auto_host_rewrite=True),
    _route({"prefix": "/axfh"}, cluster="named", auto_host_rewrite=True, append_x_forwarded_host=True),
    _route({"prefix": "/anon"}, auto_host_rewrite=True, append_x_forwarded_host=True),
    {"match": {"prefix": "/hdr"}, "route": {"cluster_header": "x-cluster"}},
    {"match": {"prefix": "/wc"}, "route": {"weighted_clusters": {"clusters": [
        {"name": "up", "weight": 100, "request_headers_to_add": [{"header": {"key": "x-wc", "value": "up"}}]},
        {"name": "up2", "weight": 0}]}}},
    _route({"prefix": "/"}),
], clusters=[upstream_cluster("up", "UPSTREAM"), upstream_cluster("up2", "UPSTREAM2"),
             upstream_cluster("named", "UPSTREAM3", hostname="backend.internal")])


ATTEMPTS = hcm_config(virtual_hosts=[{
    "name": "all", "domains": ["*"], "include_request_attempt_count": True,
    "include_attempt_count_in_response": True,
    "request_headers_to_add": [{"header": {"key": "x-vh-req", "value": "1"}}],
    "response_headers_to_add": [{"header": {"key": "x-vh-resp", "value": "1"}}],
    "routes": [{"match": {"prefix": "/direct"}, "direct_response": {"status": 200}},
               {"match": {"prefix": "/dead"}, "route": {"cluster": "dead", "retry_policy": {
        "retry_on": "connect-failure", "num_retries": 1, "retry_back_off": {"base_interval": "0.001s"}}}},
               {"match": {"prefix": "/"}, "route": {"cluster": "up", "retry_policy": {
                   "retry_on": "5xx", "num_retries": 2, "retry_back_off": {"base_interval": "0.001s"}}}}]}],
    clusters=[upstream_cluster("up", "UPSTREAM"), upstream_cluster("dead", "DEAD")])


def _redir(prefix, **r):
    return {"match": {"prefix": prefix}, "redirect": r}


REDIRECTS = hcm_config([
    _redir("/https", https_redirect=True),
    _redir("/host", host_redirect="new.test"),
    _redir("/port", port_redirect=8443),
    _redir("/pathq", path_redirect="/elsewhere?own=1"),
    _redir("/path", path_redirect="/elsewhere"),
    _redir("/prefix/", prefix_rewrite="/moved/"),
    _redir("/strip", path_redirect="/s", strip_query=True),
    _redir("/found", path_redirect="/f", response_code="FOUND"),
    _redir("/see", path_redirect="/s", response_code="SEE_OTHER"),
    _redir("/tmp", path_redirect="/t", response_code="TEMPORARY_REDIRECT"),
    _redir("/perm", path_redirect="/p", response_code="PERMANENT_REDIRECT"),
    {"match": {"prefix": "/dr/empty"}, "direct_response": {"status": 503}},
    {"match": {"prefix": "/dr"}, "direct_response": {"status": 418, "body": {"inline_string": "teapot"}}},
])


def _hv(key, value, action=None):
    h = {"header": {"key": key, "value": value}}
    if action:
        h["append_action"] = action
    return h


MUTATIONS = hcm_config(
    virtual_hosts=[{
        "name": "all", "domains": ["*"],
        "request_headers_to_add": [_hv("x-vh", "vh"), _hv("x-level", "vh", "OVERWRITE_IF_EXISTS_OR_ADD")],
        "response_headers_to_add": [_hv("x-resp-vh", "vh")],
        "request_headers_to_remove": ["x-remove-vh"],
        "routes": [
            {"match": {"prefix": "/dr"}, "direct_response": {"status": 200, "body": {"inline_string": "d"}},
             "response_headers_to_add": [_hv("x-resp-route", "route")]},
            {"match": {"prefix": "/"}, "route": {"cluster": "up"},
             "request_headers_to_add": [
                 _hv("x-route", "route"), _hv("x-level", "route", "OVERWRITE_IF_EXISTS_OR_ADD"),
                 _hv("x-append", "added"), _hv("x-if-absent", "added", "ADD_IF_ABSENT"),
                 _hv("x-overwrite", "new", "OVERWRITE_IF_EXISTS"),
                 _hv("x-overwrite-missing", "new", "OVERWRITE_IF_EXISTS"),
                 _hv("x-remote", "%DOWNSTREAM_REMOTE_ADDRESS%"),
                 _hv("x-remote-ip", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
                 _hv("x-local", "%DOWNSTREAM_LOCAL_ADDRESS%"),
                 _hv("x-proto", "%PROTOCOL%"),
                 _hv("x-req", "[%REQ(x-source)%]"),
                 _hv("x-pct", "100%%"),
                 {"header": {"key": "x-empty", "value": ""}, "keep_empty_value": True},
                 {"header": {"key": "x-empty-dropped", "value": ""}}],
             "request_headers_to_remove": ["x-remove-route"],
             "response_headers_to_add": [_hv("x-resp-route", "route"), _hv("x-up", "%UPSTREAM_REMOTE_ADDRESS%")],
             "response_headers_to_remove": ["x-drop-resp"]}]}],
    route_config={"request_headers_to_add": [_hv("x-level", "rc", "OVERWRITE_IF_EXISTS_OR_ADD")],
                  "response_headers_to_add": [_hv("x-resp-rc", "rc")],
                  "request_headers_to_remove": ["x-remove-rc"]})

ROUTE_CASES = [
    case("domain_exact", get("/", host="exact.example.com"), 200, config=DOMAINS),
    case("domain_exact_case", get("/", host="EXACT.Example.com"), 200, config=DOMAINS),
    case("domain_port_kept", get("/", host="exact.example.com:8080"), 200, config=DOMAINS),
    case("domain_port_exact", get("/", host="port.test:8080"), 200, config=DOMAINS),
    case("domain_suffix", get("/", host="a.example.com"), 200, config=DOMAINS),
    case("domain_suffix_longest", get("/", host="x.long.example.com"), 200, config=DOMAINS),
    case("domain_suffix_deep", get("/", host="deep.a.example.com"), 200, config=DOMAINS),
    case("domain_prefix", get("/", host="example.co.uk"), 200, config=DOMAINS),
    case("domain_star", get("/", host="other.test"), 200, config=DOMAINS),
    case("no_virtual_host", get("/"), 404, config=hcm_config(virtual_hosts=[_vh("only", ["only.test"])]),
         stats=["http.ingress.no_route", "http.ingress.downstream_rq_4xx"]),
    case("no_route", get("/zzz"), 404, config=hcm_config([_route({"prefix": "/a"})])),
    case("match_path", get("/exact"), 200, config=MATCHES),
    case("match_path_with_query", get("/exact?x=1"), 200, config=MATCHES),
    case("match_path_longer", get("/exactly"), 200, config=MATCHES),
    case("match_case_insensitive", get("/case/x"), 200, config=MATCHES),
    case("match_regex", get("/re/123"), 200, config=MATCHES),
    case("match_regex_partial", get("/re/123x"), 200, config=MATCHES),
    case("match_sep_prefix", get("/sep/x"), 200, config=MATCHES),
    case("match_sep_prefix_exact", get("/sep"), 200, config=MATCHES),
    case("match_sep_prefix_no", get("/separate"), 200, config=MATCHES),
    case("match_header_exact", get("/h", headers=["x-exact: yes"]), 200, config=MATCHES),
    case("match_header_prefix", get("/h", headers=["x-pre: abc"]), 200, config=MATCHES),
    case("match_header_suffix", get("/h", headers=["x-suf: xyz"]), 200, config=MATCHES),
    case("match_header_contains", get("/h", headers=["x-con: amidb"]), 200, config=MATCHES),
    case("match_header_present", get("/h", headers=["x-present: "]), 200, config=MATCHES),
    case("match_header_regex", get("/h", headers=["x-re: v7"]), 200, config=MATCHES),
    case("match_header_invert", get("/h", headers=["x-inv: yes"]), 200, config=MATCHES),
    case("match_header_invert_missing", get("/h"), 200, config=MATCHES),
    case("match_query_exact", get("/q?a=1&k=v"), 200, config=MATCHES),
    case("match_query_present", get("/q?p"), 200, config=MATCHES),
    case("match_query_none", get("/q?k=w"), 200, config=MATCHES),
    case("prefix_rewrite", get("/old/x?q=1"), 200, config=REWRITES),
    case("regex_rewrite", get("/rx/abc/def?q=1"), 200, config=REWRITES),
    case("host_rewrite", get("/host"), 200, config=REWRITES),
    case("route_metadata_and_decorator", get("/"), 200, config=hcm_config(virtual_hosts=[{
        "name": "all", "domains": ["*"], "metadata": {"filter_metadata": {"team": {"owner": "edge"}}},
        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"}, "name": "r1",
                    "decorator": {"operation": "get-root", "propagate": True},
                    "metadata": {"filter_metadata": {"envoy.filters.http.router": {"k": 1}}}}]}])),
    case("attempt_count", get("/"), 200, config=ATTEMPTS),
    case("attempt_count_retried", get("/?status=503"), 503, config=ATTEMPTS),
    case("attempt_count_local_reply", get("/dead"), 503, config=ATTEMPTS),
    case("attempt_count_direct_response", get("/direct"), 200, config=ATTEMPTS),
    case("host_rewrite_append_xfh", get("/lxfh", headers=["x-forwarded-host: first.test"]), 200,
         config=REWRITES),
    case("auto_host_rewrite", get("/auto"), 200, config=REWRITES),
    case("auto_host_rewrite_append_xfh", get("/axfh"), 200, config=REWRITES),
    case("auto_host_rewrite_append_xfh_no_host", get("/axfh", host=None), 400, config=REWRITES),
    case("auto_host_rewrite_without_hostname", get("/anon"), 200, config=REWRITES),
    case("cluster_header", get("/hdr", headers=["x-cluster: up2"]), 200, config=REWRITES),
    case("cluster_header_missing", get("/hdr"), 503, config=REWRITES),
    case("cluster_header_unknown", get("/hdr", headers=["x-cluster: nope"]), 503, config=REWRITES),
    case("weighted_clusters", get("/wc"), 200, config=REWRITES),
    case("redirect_https", get("/https/a?b=1", host="routes.test"), 301, config=REDIRECTS),
    case("redirect_https_port_80", get("/https/a", host="routes.test:80"), 301, config=REDIRECTS),
    case("redirect_host", get("/host?x=1"), 301, config=REDIRECTS),
    case("redirect_port", get("/port"), 301, config=REDIRECTS),
    case("redirect_path_keeps_query", get("/path?x=1"), 301, config=REDIRECTS),
    case("redirect_path_own_query", get("/pathq?x=1"), 301, config=REDIRECTS),
    case("redirect_prefix", get("/prefix/rest?x=1"), 301, config=REDIRECTS),
    case("redirect_strip_query", get("/strip?x=1"), 301, config=REDIRECTS),
    case("redirect_found", get("/found"), 302, config=REDIRECTS),
    case("redirect_see_other", get("/see"), 303, config=REDIRECTS),
    case("redirect_temporary", get("/tmp"), 307, config=REDIRECTS),
    case("redirect_permanent", get("/perm"), 308, config=REDIRECTS),
    case("direct_response_body", get("/dr"), 418, config=REDIRECTS,
         stats=["http.ingress.rq_direct_response"]),
    case("direct_response_empty", get("/dr/empty"), 503, config=REDIRECTS),
    case("direct_response_head", get("/dr", method="HEAD"), 418, config=REDIRECTS),
    case("mutations", get("/m", headers=["x-source: src", "x-append: client", "x-if-absent: client",
                                         "x-overwrite: old", "x-remove-vh: 1", "x-remove-route: 1",
                                         "x-remove-rc: 1", "x-level: client"])
         .replace(b"GET /m", b"GET /m?hdr=x-drop-resp:1"), 200, config=MUTATIONS),
    case("mutations_direct_response", get("/dr"), 200, config=MUTATIONS),
    case("mutation_value_with_crlf_never_splits", get("/", headers=["x-source: a%0d%0ab"]), 200, config=MUTATIONS),
]


@pytest.mark.parametrize("config,request_,status,kw", ROUTE_CASES)
def test_route_table(config, request_, status, kw):
    run(config, request_, status, kw)


# ------------------------------------------------------ 4. router and pool

def _retry(retry_on, **extra):
    p = {"retry_on": retry_on, "num_retries": extra.pop("num_retries", 1)}
    p.update(extra)
    return hcm_config([_route({"prefix": "/"}, retry_policy=p)],
                      clusters=[upstream_cluster("up", "UPSTREAM")])


RETRY_STATS = ["cluster.up.upstream_rq_retry", "cluster.up.upstream_rq_retry_success",
               "cluster.up.upstream_rq_total"]
BREAKER = hcm_config(clusters=[upstream_cluster("up", "UPSTREAM", circuit_breakers={"thresholds": [
    {"max_connections": 1, "max_pending_requests": 1}]})])
ROUTER_CASES = [
    case("no_healthy_upstream", get("/"), 503,
         config=hcm_config(clusters=[{"name": "up", "type": "STATIC", "connect_timeout": "1s",
                                      "load_assignment": {"cluster_name": "up", "endpoints": []}}])),
    case("connection_refused", get("/"), 503, config=hcm_config(clusters=[upstream_cluster("up", "DEAD")])),
    case("connect_timeout", get("/"), 503, config=hcm_config(clusters=[upstream_cluster("up", "BLACKHOLE")])),
    case("reset_before_headers", get("/?reset=1"), 503),
    case("upstream_503_passes", get("/?status=503"), 503),
    case("route_timeout", get("/?delay=1.5"), 504,
         config=hcm_config([_route({"prefix": "/"}, timeout="0.5s")]),
         stats=["cluster.up.upstream_rq_timeout"]),
    case("timeout_after_headers_resets", get("/?size=100&body_delay=1.5"), 200,
         config=hcm_config([_route({"prefix": "/"}, timeout="0.5s")]), check_close=True),
    case("retry_5xx", get("/?fail=1"), 200, config=_retry("5xx"), stats=RETRY_STATS),
    case("retry_5xx_exhausted", get("/?fail=5"), 503, config=_retry("5xx", num_retries=2), stats=RETRY_STATS),
    case("retry_gateway_error_not_500", get("/?fail=1&fail_status=500"), 500, config=_retry("gateway-error")),
    case("retry_status_codes", get("/?fail=1&fail_status=409"), 200,
         config=_retry("retriable-status-codes", retriable_status_codes=[409])),
    case("retry_4xx", get("/?fail=1&fail_status=409"), 200, config=_retry("retriable-4xx")),
    case("retry_reset", get("/?reset=1"), 503, config=_retry("reset")),
    case("retry_reset_before_request_not_after", get("/?reset=1"), 503, config=_retry("reset-before-request"),
         stats=RETRY_STATS),
    case("retry_reset_before_request_connect_failure", get("/"), 503, config=hcm_config(
        [_route({"prefix": "/"}, retry_policy={"retry_on": "reset-before-request", "num_retries": 1})],
        clusters=[upstream_cluster("up", "DEAD")])),
    case("retry_envoy_ratelimited", get("/?fail=1&hdr=x-envoy-ratelimited:true"), 200,
         config=_retry("envoy-ratelimited"), stats=RETRY_STATS),
    case("retry_5xx_not_when_ratelimited", get("/?fail=1&hdr=x-envoy-ratelimited:true"), 503,
         config=_retry("5xx"), stats=RETRY_STATS),
    case("retry_http3_post_connect_failure_on_http1", get("/?fail=1"), 503,
         config=_retry("http3-post-connect-failure"), stats=RETRY_STATS),
    case("retry_post_body", get("/p?fail=1", method="POST", body=b"payload"), 200, config=_retry("5xx")),
    case("retry_connect_failure", get("/"), 200, config=hcm_config(
        [_route({"prefix": "/"}, retry_policy={"retry_on": "connect-failure", "num_retries": 2})],
        clusters=[upstream_cluster("up", "DEAD", "UPSTREAM")]),
         # Round robin starts at a random host: one attempt or two.
         volatile=["x-envoy-expected-rq-timeout-ms"]),
    # A retry that could pick the refusing host again never does: previous_hosts.
    case("retry_previous_hosts", None, [200] * 10, parallel=[get("/%d" % i) for i in range(10)], stagger=0.05,
         config=hcm_config(
             [_route({"prefix": "/"}, retry_policy={
                 "retry_on": "connect-failure", "num_retries": 1, "host_selection_retry_max_attempts": 20,
                 "retry_back_off": {"base_interval": "0.001s"},
                 "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
                     "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
                              "PreviousHostsPredicate"}}]})],
             clusters=[upstream_cluster("up", "DEAD", "UPSTREAM", lb_policy="RANDOM")]),
         volatile=["x-envoy-expected-rq-timeout-ms"]),
    case("per_try_timeout", get("/?delay=0.6"), 504, config=hcm_config(
        [_route({"prefix": "/"}, timeout="3s", retry_policy={"retry_on": "5xx", "num_retries": 1,
                                                             "per_try_timeout": "0.3s"})])),
    case("upstream_keepalive_reuse", None, [200, 200, 200], parallel=[get("/1"), get("/2"), get("/3")],
         stagger=0.2),
    case("upstream_connection_close_retires", None, [200, 200], parallel=[get("/1?conn_close=1"), get("/2")],
         stagger=0.2),
    case("upstream_close_idle", [get("/1?close=1"), 0.3, get("/2")], 200, responses=2),
    case("cluster_max_requests_per_connection", None, [200, 200, 200],
         parallel=[get("/1"), get("/2"), get("/3")], stagger=0.2,
         config=hcm_config(clusters=[upstream_cluster("up", "UPSTREAM", typed_extension_protocol_options={
             "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                 "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                 "common_http_protocol_options": {"max_requests_per_connection": 2},
                 "explicit_http_config": {"http_protocol_options": {}}}})])),
    case("circuit_breaker_overflow", None, [200, 200, 503, 503, 503], config=BREAKER,
         parallel=[get("/slow?delay=1")] + [get("/%d" % i) for i in range(4)], stagger=0.1,
         stats=["cluster.up.upstream_rq_pending_overflow"]),
    case("streamed_response", get("/?size=300&body_delay=0.3"), 200),
    case("max_requests_overflow", None, [200, 503], parallel=[get("/slow?delay=0.6"), get("/b")],
         stagger=0.2, config=hcm_config(clusters=[upstream_cluster("up", "UPSTREAM", circuit_breakers={
             "thresholds": [{"max_requests": 1}]})]), stats=["cluster.up.upstream_rq_pending_overflow"]),
    case("retry_overflow", get("/?fail=1"), 503, config=hcm_config(
        [_route({"prefix": "/"}, retry_policy={"retry_on": "5xx", "num_retries": 1})],
        clusters=[upstream_cluster("up", "UPSTREAM", circuit_breakers={"thresholds": [{"max_retries": 0}]})]),
        stats=["cluster.up.upstream_rq_retry_overflow"]),
]


@pytest.mark.parametrize("config,request_,status,kw", ROUTER_CASES)
def test_router(config, request_, status, kw):
    run(config, request_, status, kw)


def test_pool_reuse_across_downstream_connections():
    """One pooled upstream connection serves requests from several clients."""
    with pair(BASIC) as p:
        for path in ("/a", "/b"):
            r = p.assert_same(get(path))
            assert r.finals[0].echo()["conn"] == 1


def test_draining_answers_with_connection_close():
    """After /healthcheck/fail each keep-alive response says `connection:
    close`. Observed: Envoy closes only after drain_timeout (+ the 1 s
    delayed close) and serves requests that come meanwhile."""
    with pair(hcm_config(hcm={"drain_timeout": "0.5s"})) as p:
        p.admin("/healthcheck/fail")
        r = p.assert_same([get("/1"), 0.2, get("/2")], responses=2, check_close=True)
        assert [x.header("connection") for x in r.finals] == ["close", "close"] and r.closed


# ------------------------------------------------ envoy.filters.http.health_check

HC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck"


def _health_check(pass_through, **extra):
    hc = {"name": "envoy.filters.http.health_check", "typed_config": dict(
        {"@type": HC_TYPE, "pass_through_mode": pass_through,
         "headers": [{"name": ":path", "string_match": {"exact": "/healthz"}}]}, **extra)}
    return hcm_config(hcm={"http_filters": [hc, json.loads(json.dumps(ROUTER))]})


HC_CASES = [
    case("hc_answered", get("/healthz"), 200, config=_health_check(False), stats=["http.ingress.rq_total"]),
    case("hc_head", get("/healthz", method="HEAD"), 200, config=_health_check(False)),
    case("hc_post_body", get("/healthz", method="POST", body=b"x" * 10), 200, config=_health_check(False)),
    case("hc_query_does_not_match_exact_path", get("/healthz?x=1"), 200, config=_health_check(False)),
    case("hc_other_path_proxied", get("/other"), 200, config=_health_check(False)),
    case("hc_pass_through", get("/healthz"), 200, config=_health_check(True)),
]


@pytest.mark.parametrize("config,request_,status,kw", HC_CASES)
def test_health_check_filter(config, request_, status, kw):
    run(config, request_, status, kw)


@pytest.mark.parametrize("pass_through", [False, True])
def test_health_check_filter_when_failing(pass_through):
    """After /healthcheck/fail a health check is answered 503 (or passes
    through), other requests carry x-envoy-immediate-health-check-fail."""
    with pair(_health_check(pass_through)) as p:
        p.admin("/healthcheck/fail")
        p.assert_same(get("/healthz", headers=["connection: close"]), check_close=True)
        p.assert_same(get("/other", headers=["connection: close"]), check_close=True)
