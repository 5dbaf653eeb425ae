"""Route configuration (config.route.v3) on load: what envoy_fast accepts and
refuses, with the YAML path, beside what the real Envoy 1.40 does with the
same route_config inside an http_connection_manager (`envoy --mode validate`).

The route_config rides in the http_connection_manager and, to keep the
route table's checks apart from the HCM's own, in a test-only network filter
too (the loader reads, converts and checks it the same way, at the same YAML
path).
"""
import base64
import subprocess

import msgspec
import pytest
import yaml

from envoy_fast.config import load_bootstrap, validate_bootstrap
from envoy_fast.config.base import Message, names
from envoy_fast.config.route_types import FIELD_NUMBERS, RouteConfiguration, check_route_config
from envoy_fast.extensions import registry
from envoy_fast.extensions.registry import NetworkFilterConfig, NetworkFilterPlan, NetworkFilterRecord
from envoy_fast.router import plan as route_plan
from envoy_fast.router.plan import build_route_table_plan
from helpers import bootstrap, cluster, listener, require_peer, tcp_proxy_filter

CARRIER_URL = "type.googleapis.com/test.filters.network.route_carrier.v1.Carrier"
HCM_URL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_URL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
AT = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config"


class Carrier(Message, NetworkFilterConfig, kw_only=True, tag_field="@type", tag=CARRIER_URL):
    ENVOY_TYPE = "test.filters.network.route_carrier.v1.Carrier"
    ENVOY_FIELDS = names("route_config")

    route_config: RouteConfiguration


class CarrierPlan(NetworkFilterPlan, tag="test.filters.network.route_carrier", kw_only=True):
    pass


@pytest.fixture(scope="module", autouse=True)
def carrier():
    record = registry.register_network_filter(NetworkFilterRecord(
        name="test.filters.network.route_carrier", config_type=Carrier, plan_type=CarrierPlan,
        build_plan=lambda config, ctx: CarrierPlan(), factory="test.nowhere:Carrier.from_plan",
        check=lambda config, checker, path: check_route_config(config.route_config, checker,
                                                               f"{path}.route_config")))
    try:
        yield record
    finally:
        registry.unregister_network_filter(record.name)


def _doc(route_config, url=CARRIER_URL):
    if url == CARRIER_URL:
        first = {"name": "carrier", "typed_config": {"@type": CARRIER_URL, "route_config": route_config}}
        chain = {"filters": [first, tcp_proxy_filter("c1")]}
    else:
        chain = {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
            "@type": HCM_URL, "stat_prefix": "h", "route_config": route_config,
            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_URL}}]}}]}
    return bootstrap([listener("l", 10000, [chain])], [cluster("c1", [1]), cluster("c2", [1])])


def errors_of(route_config, url=CARRIER_URL):
    """[(path, message)] envoy_fast reports for `route_config`."""
    errors = validate_bootstrap(config_yaml=yaml.safe_dump(_doc(route_config, url)))
    return [(e.path, e.message.split(" (in --config-yaml)")[0]) for e in errors]


def loaded(route_config) -> RouteConfiguration:
    bs = load_bootstrap(config_yaml=yaml.safe_dump(_doc(route_config)))
    return bs.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config


def envoy_validate(route_config, tmp_path):
    """(accepted, output) of the real Envoy on the same route_config in an HCM."""
    envoy = require_peer("envoy")
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(_doc(route_config, HCM_URL)))
    r = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "-l", "critical"],
                       capture_output=True, text=True, timeout=60)
    # protobuf's parse errors space their words at random: compare them collapsed
    return r.returncode == 0, " ".join((r.stdout + r.stderr).split())


def vh(name, domains, routes=None, **extra):
    v = {"name": name, "domains": domains,
         "routes": routes if routes is not None else [{"match": {"prefix": "/"}, "route": {"cluster": "c1"}}]}
    v.update(extra)
    return v


def one_route(**route):
    r = {"match": {"prefix": "/"}}
    r.update(route)
    return {"virtual_hosts": [vh("a", ["*"], [r])]}


def with_route_action(**action):
    return one_route(route=dict({"cluster": "c1"}, **action))


def add(key, value, **extra):
    return dict({"header": {"key": key, "value": value}}, **extra)


# (id, route_config, envoy_fast's error path under route_config, a part of
# envoy_fast's message, a part of Envoy's message)
REFUSED = [
    ("duplicate domain", {"virtual_hosts": [vh("a", ["x.com"]), vh("b", ["X.com"])]},
     ".virtual_hosts[1].domains[0]",
     "Only unique values for domains are permitted. Duplicate entry of domain x.com in route",
     "Only unique values for domains are permitted. Duplicate entry of domain x.com in route"),
    ("duplicate domain with port", {"virtual_hosts": [vh("a", ["x.com:80", "X.COM:80"])]},
     ".virtual_hosts[0].domains[1]", "Duplicate entry of domain x.com:80", "Duplicate entry of domain x.com:80"),
    ("duplicate suffix wildcard", {"virtual_hosts": [vh("a", ["*.x.com"]), vh("b", ["*.X.com"])]},
     ".virtual_hosts[1].domains[0]", "Duplicate entry of domain *.x.com", "Duplicate entry of domain *.x.com"),
    ("two * virtual hosts", {"virtual_hosts": [vh("a", ["*"]), vh("b", ["*"])]},
     ".virtual_hosts[1].domains[0]", "Only a single wildcard domain is permitted in route",
     "Only a single wildcard domain is permitted in route"),
    ("no domains", {"virtual_hosts": [{"name": "a", "domains": []}]},
     ".virtual_hosts[0].domains", "", "Domains: value must contain at least 1 item(s)"),
    ("virtual host without name", {"virtual_hosts": [{"domains": ["*"]}]},
     ".virtual_hosts[0].name", "missing required field", "Name: value length must be at least 1"),
    ("CR LF in a domain", {"virtual_hosts": [vh("a", ["a\nb"])]},
     ".virtual_hosts[0].domains[0]", "", "value does not match regex pattern"),
    ("unknown cluster", with_route_action(cluster="nosuch"),
     ".virtual_hosts[0].routes[0].route.cluster", "route: unknown cluster 'nosuch'",
     "route: unknown cluster 'nosuch'"),
    ("unknown weighted cluster",
     one_route(route={"weighted_clusters": {"clusters": [{"name": "zz", "weight": 1}]}}),
     ".virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].name",
     "route: unknown weighted cluster 'zz'", "route: unknown weighted cluster 'zz'"),
    ("weights sum to 0", one_route(route={"weighted_clusters": {"clusters": [{"name": "c1", "weight": 0}]}}),
     ".virtual_hosts[0].routes[0].route.weighted_clusters",
     "Sum of weights in the weighted_cluster must be greater than 0.",
     "Sum of weights in the weighted_cluster must be greater than 0."),
    ("weight missing",
     one_route(route={"weighted_clusters": {"clusters": [{"name": "c1"}, {"name": "c2", "weight": 1}]}}),
     ".virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0]", "Field 'weight' is missing",
     "Field 'weight' is missing"),
    ("weights overflow", one_route(route={"weighted_clusters": {"clusters": [
        {"name": "c1", "weight": 4294967295}, {"name": "c2", "weight": 10}]}}),
     ".virtual_hosts[0].routes[0].route.weighted_clusters", "exceeds 4294967295", "exceeds 4294967295"),
    ("no cluster specifier", one_route(route={"timeout": "1s"}),
     ".virtual_hosts[0].routes[0].route", 'field: "cluster_specifier", reason: is required',
     '"cluster_specifier", reason: is required'),
    ("no action", one_route(), ".virtual_hosts[0].routes[0]", 'field: "action", reason: is required',
     'field: "action", reason: is required'),
    ("two actions", one_route(route={"cluster": "c1"}, direct_response={"status": 200}),
     ".virtual_hosts[0].routes[0]", "has already been set (either directly or as part of a oneof)",
     "has already been set (either directly or as part of a oneof)"),
    ("no path specifier", {"virtual_hosts": [vh("a", ["*"], [{"match": {}, "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match", 'field: "path_specifier", reason: is required',
     'field: "path_specifier", reason: is required'),
    ("invalid regex", {"virtual_hosts": [vh("a", ["*"], [{"match": {"safe_regex": {"regex": "(a"}},
                                                         "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match.safe_regex.regex", "missing ): (a", "missing ): (a"),
    ("RE2 has no look-ahead", {"virtual_hosts": [vh("a", ["*"], [{"match": {"safe_regex": {"regex": "a(?=b)"}},
                                                                 "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match.safe_regex.regex", "invalid perl operator: (?=",
     "invalid perl operator: (?="),
    ("empty regex", {"virtual_hosts": [vh("a", ["*"], [{"match": {"safe_regex": {"regex": ""}},
                                                       "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match.safe_regex.regex", "", "Regex: value length must be at least 1"),
    ("invalid header regex", {"virtual_hosts": [vh("a", ["*"], [{"match": {"prefix": "/", "headers": [
        {"name": "x", "safe_regex_match": {"regex": "("}}]}, "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match.headers[0].safe_regex_match.regex", "missing ): (", "missing ): ("),
    ("invalid regex_rewrite", with_route_action(regex_rewrite={"pattern": {"regex": "(a"}, "substitution": "b"}),
     ".virtual_hosts[0].routes[0].route.regex_rewrite.pattern.regex", "missing ): (a", "missing ): (a"),
    ("header matcher without name", {"virtual_hosts": [vh("a", ["*"], [{"match": {"prefix": "/", "headers": [
        {"exact_match": "x"}]}, "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match.headers[0].name", "missing required field",
     "Name: value length must be at least 1"),
    ("empty prefix_match", {"virtual_hosts": [vh("a", ["*"], [{"match": {"prefix": "/", "headers": [
        {"name": "x", "prefix_match": ""}]}, "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match.headers[0].prefix_match", "", "PrefixMatch: value length must be at least 1"),
    ("string_match without pattern", {"virtual_hosts": [vh("a", ["*"], [{"match": {"prefix": "/", "headers": [
        {"name": "x", "string_match": {}}]}, "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match.headers[0].string_match", 'field: "match_pattern", reason: is required',
     'field: "match_pattern", reason: is required'),
    ("query parameter name too long", {"virtual_hosts": [vh("a", ["*"], [{"match": {
        "prefix": "/", "query_parameters": [{"name": "q" * 1025}]}, "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match.query_parameters[0].name", "", "value length must be at most 1024 bytes"),
    ("path_separated_prefix ending in /", {"virtual_hosts": [vh("a", ["*"], [{"match": {
        "path_separated_prefix": "/a/"}, "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match.path_separated_prefix", "", 'does not match regex pattern "^[^?#]+[^?#/]$"'),
    ("unknown format operator", one_route(route={"cluster": "c1"}, request_headers_to_add=[add("x", "%FOO%")]),
     ".virtual_hosts[0].routes[0].request_headers_to_add[0].header.value",
     "Not supported field in StreamInfo: FOO", "Not supported field in StreamInfo: FOO"),
    ("a lone %", one_route(route={"cluster": "c1"}, response_headers_to_add=[add("x", "100%")]),
     ".virtual_hosts[0].routes[0].response_headers_to_add[0].header.value",
     "Incorrect configuration: 100%. Couldn't find valid command at position 3",
     "Incorrect configuration: 100%. Couldn't find valid command at position 3"),
    ("REQ without a header", {"virtual_hosts": [vh("a", ["*"], request_headers_to_add=[add("x", "%REQ()%")])]},
     ".virtual_hosts[0].request_headers_to_add[0].header.value", "REQ requires parameters",
     "REQ requires parameters"),
    ("CR LF in a header value", {"request_headers_to_add": [add("x", "a\r\nb: c")], "virtual_hosts": [vh("a", ["*"])]},
     ".request_headers_to_add[0].header.value", "", 'value does not match regex pattern "^[^\\x00\\n\\r]*$"'),
    ("empty header key", one_route(route={"cluster": "c1"}, request_headers_to_add=[add("", "v")]),
     ".virtual_hosts[0].routes[0].request_headers_to_add[0].header.key", "",
     "Key: value length must be at least 1"),
    ("adding :path", one_route(route={"cluster": "c1"}, request_headers_to_add=[add(":path", "/x")]),
     ".virtual_hosts[0].routes[0].request_headers_to_add[0].header.key",
     ":-prefixed or host headers may not be modified", ":-prefixed or host headers may not be modified"),
    ("adding host", {"request_headers_to_add": [add("Host", "x")], "virtual_hosts": [vh("a", ["*"])]},
     ".request_headers_to_add[0].header.key",
     ":-prefixed or host headers may not be modified", ":-prefixed or host headers may not be modified"),
    ("response :status", one_route(route={"cluster": "c1"}, response_headers_to_add=[add(":status", "200")]),
     ".virtual_hosts[0].routes[0].response_headers_to_add[0].header.key",
     ":-prefixed or host headers may not be modified", ":-prefixed or host headers may not be modified"),
    ("removing host", one_route(route={"cluster": "c1"}, request_headers_to_remove=["host"]),
     ".virtual_hosts[0].routes[0].request_headers_to_remove[0]",
     ":-prefixed or host headers may not be removed", ":-prefixed or host headers may not be removed"),
    ("removing an empty name", one_route(route={"cluster": "c1"}, request_headers_to_remove=[""]),
     ".virtual_hosts[0].routes[0].request_headers_to_remove[0]", "",
     "RequestHeadersToRemove[0]: value length must be at least 1"),
    ("append and append_action", one_route(route={"cluster": "c1"}, request_headers_to_add=[
        add("x", "v", append=True, append_action="ADD_IF_ABSENT")]),
     ".virtual_hosts[0].routes[0].request_headers_to_add[0]",
     "Both append and append_action are set and it's not allowed",
     "Both append and append_action are set and it's not allowed"),
    ("direct response body too big", one_route(direct_response={"status": 200, "body": {"inline_string": "x" * 4097}}),
     ".virtual_hosts[0].routes[0].direct_response.body.inline_string",
     "response body size is 4097 bytes; maximum is 4096", "response body size is 4097 bytes; maximum is 4096"),
    ("max_direct_response_body_size_bytes", dict(one_route(direct_response={
        "status": 200, "body": {"inline_string": "abcd"}}), max_direct_response_body_size_bytes=3),
     ".virtual_hosts[0].routes[0].direct_response.body.inline_string",
     "response body size is 4 bytes; maximum is 3", "response body size is 4 bytes; maximum is 3"),
    ("body file missing", one_route(direct_response={"status": 200, "body": {"filename": "/nonexistent/x"}}),
     ".virtual_hosts[0].routes[0].direct_response.body.filename", "file /nonexistent/x does not exist",
     "file /nonexistent/x does not exist"),
    ("corrupt inline_bytes", one_route(direct_response={"status": 200, "body": {"inline_bytes": "!!!"}}),
     ".virtual_hosts[0].routes[0].direct_response.body.inline_bytes", "corrupt base64", "corrupt base64"),
    ("body without source", one_route(direct_response={"status": 200, "body": {}}),
     ".virtual_hosts[0].routes[0].direct_response.body", 'field: "specifier", reason: is required',
     'field: "specifier", reason: is required'),
    ("status 199", one_route(direct_response={"status": 199}),
     ".virtual_hosts[0].routes[0].direct_response.status", "", "value must be inside range [200, 600)"),
    ("status 600", one_route(direct_response={"status": 600}),
     ".virtual_hosts[0].routes[0].direct_response.status", "", "value must be inside range [200, 600)"),
    ("prefix_rewrite and regex_rewrite", with_route_action(
        prefix_rewrite="/x", regex_rewrite={"pattern": {"regex": "a"}, "substitution": "b"}),
     ".virtual_hosts[0].routes[0].route",
     "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy",
     "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy"),
    ("https_redirect and scheme_redirect", one_route(redirect={"https_redirect": True, "scheme_redirect": "http"}),
     ".virtual_hosts[0].routes[0].redirect", "only one of https_redirect, scheme_redirect",
     "has already been set"),
    ("path_redirect and prefix_rewrite", one_route(redirect={"path_redirect": "/a", "prefix_rewrite": "/b"}),
     ".virtual_hosts[0].routes[0].redirect", "only one of path_redirect, prefix_rewrite",
     "has already been set"),
    ("CR in host_redirect", one_route(redirect={"host_redirect": "a\rb"}),
     ".virtual_hosts[0].routes[0].redirect.host_redirect", "", "HostRedirect: value does not match regex pattern"),
    ("back-off max below base", with_route_action(retry_policy={"retry_on": "5xx", "retry_back_off": {
        "base_interval": "1s", "max_interval": "0.5s"}}),
     ".virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.max_interval",
     "retry_policy.max_interval must greater than or equal to the base_interval",
     "retry_policy.max_interval must greater than or equal to the base_interval"),
    ("back-off without base", with_route_action(retry_policy={"retry_on": "5xx", "retry_back_off": {
        "max_interval": "0.5s"}}),
     ".virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.base_interval", "missing required field",
     "BaseInterval: value is required"),
    ("negative timeout", with_route_action(timeout="-1s"),
     ".virtual_hosts[0].routes[0].route.timeout", "must not be negative", "Expected positive duration"),
    ("empty upgrade_type", with_route_action(upgrade_configs=[{"upgrade_type": ""}]),
     ".virtual_hosts[0].routes[0].route.upgrade_configs[0].upgrade_type", "",
     "UpgradeType: value length must be at least 1"),
    ("duplicate upgrade", with_route_action(upgrade_configs=[{"upgrade_type": "websocket"},
                                                              {"upgrade_type": "WebSocket"}]),
     ".virtual_hosts[0].routes[0].route.upgrade_configs[1]", "Duplicate upgrade WebSocket",
     "Duplicate upgrade WebSocket"),
]


@pytest.mark.parametrize("url", [CARRIER_URL, HCM_URL], ids=["carrier", "hcm"])
@pytest.mark.parametrize("route_config, path, message", [c[1:4] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_with_its_path(route_config, path, message, url):
    errors = errors_of(route_config, url)
    assert errors, "accepted"
    assert errors[0][0] == AT + path, errors
    assert message in errors[0][1], errors


@pytest.mark.parametrize("route_config, envoy_message", [(c[1], c[4]) for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_envoy_refuses_the_same(route_config, envoy_message, tmp_path):
    ok, output = envoy_validate(route_config, tmp_path)
    assert not ok
    assert envoy_message in output, output[-2000:]


ACCEPTED = [
    ("%% is a literal %", one_route(route={"cluster": "c1"}, request_headers_to_add=[add("x", "100%%")])),
    ("the formatters envoy_fast has", one_route(route={"cluster": "c1"}, request_headers_to_add=[add(
        "x", "%REQ(x-a?x-b):3% %START_TIME(%s.%3f)% %START_TIME% %DOWNSTREAM_REMOTE_ADDRESS%"
             " %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS%"
             " %UPSTREAM_REMOTE_ADDRESS% %HOSTNAME% %PROTOCOL%")])),
    ("a body of exactly 4096 bytes", one_route(direct_response={"status": 200, "body": {"inline_string": "x" * 4096}})),
    ("inline_bytes", one_route(direct_response={"status": 200, "body": {"inline_bytes": "aGVsbG8="}})),
    ("status 200 and 599", {"virtual_hosts": [vh("a", ["*"], [
        {"match": {"path": "/a"}, "direct_response": {"status": 200}},
        {"match": {"path": "/b"}, "direct_response": {"status": 599}}])]}),
    ("an empty exact string match", {"virtual_hosts": [vh("a", ["*"], [{"match": {"prefix": "/", "headers": [
        {"name": "x", "string_match": {"exact": ""}}]}, "route": {"cluster": "c1"}}])]}),
    ("a wildcard inside a domain is an exact domain", {"virtual_hosts": [vh("a", ["a.*.com"])]}),
    ("the same domain spelled with and without port", {"virtual_hosts": [vh("a", ["x.com", "x.com:80"])]}),
    ("an empty prefix", {"virtual_hosts": [vh("a", ["*"], [{"match": {"prefix": ""}, "route": {"cluster": "c1"}}])]}),
    ("prefix_rewrite on a regex route", {"virtual_hosts": [vh("a", ["*"], [{"match": {"safe_regex": {"regex": "/.*"}},
                                                                          "route": {"cluster": "c1", "prefix_rewrite": "/b"}}])]}),
    ("keep_empty_value", one_route(route={"cluster": "c1"}, request_headers_to_add=[add("x", "", keep_empty_value=True)])),
    ("a header name with upper case", one_route(route={"cluster": "c1"}, request_headers_to_remove=["X-Foo"],
                                                request_headers_to_add=[add("X-Foo", "v")])),
    ("total_weight not matching the weights", one_route(route={"weighted_clusters": {
        "total_weight": 100, "clusters": [{"name": "c1", "weight": 10}]}})),
    ("every retry_on envoy_fast has", with_route_action(retry_policy={
        "retry_on": "5xx,gateway-error,reset,connect-failure,retriable-4xx,retriable-status-codes,refused-stream",
        "retriable_status_codes": [503, 418], "num_retries": 3, "per_try_timeout": "0.5s",
        "retry_back_off": {"base_interval": "0.1s"}})),
    ("a redirect with everything", one_route(redirect={
        "scheme_redirect": "https", "host_redirect": "h.example", "port_redirect": 8443,
        "path_redirect": "/x?y=1", "strip_query": True, "response_code": "PERMANENT_REDIRECT"})),
    ("validate_clusters false allows unknown clusters", dict(with_route_action(cluster="later"),
                                                             validate_clusters=False)),
]


@pytest.mark.parametrize("route_config", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_accepted_by_both(route_config, tmp_path):
    assert errors_of(route_config) == []
    assert errors_of(route_config, HCM_URL) == []
    ok, output = envoy_validate(route_config, tmp_path)
    assert ok, output[-2000:]


# Accepted by Envoy, refused by envoy_fast as not implemented (said so, with the path).
NOT_SUPPORTED = [
    ("%RESPONSE_CODE% in a header value", one_route(route={"cluster": "c1"}, response_headers_to_add=[
        add("x", "%RESPONSE_CODE%")]),
     ".virtual_hosts[0].routes[0].response_headers_to_add[0].header.value",
     "not supported by envoy_fast (%RESPONSE_CODE% in a header value)"),
    ("a retry_on envoy_fast lacks", with_route_action(retry_policy={"retry_on": "5xx,retriable-headers"}),
     ".virtual_hosts[0].routes[0].route.retry_policy.retry_on",
     "not supported by envoy_fast (retry_on 'retriable-headers')"),
    ("a RouteAction field envoy_fast lacks", with_route_action(hash_policy=[{"header": {"header_name": "x"}}]),
     ".virtual_hosts[0].routes[0].route.hash_policy",
     "not supported by envoy_fast (envoy.config.route.v3.RouteAction.hash_policy)"),
    ("a RouteMatch field envoy_fast lacks", {"virtual_hosts": [vh("a", ["*"], [{"match": {
        "prefix": "/", "grpc": {}}, "route": {"cluster": "c1"}}])]},
     ".virtual_hosts[0].routes[0].match.grpc", "not supported by envoy_fast (envoy.config.route.v3.RouteMatch.grpc)"),
]


@pytest.mark.parametrize("route_config, path, message", [c[1:] for c in NOT_SUPPORTED],
                         ids=[c[0] for c in NOT_SUPPORTED])
def test_not_supported_is_said_with_its_path(route_config, path, message, tmp_path):
    assert (AT + path, message) in errors_of(route_config)
    ok, output = envoy_validate(route_config, tmp_path)
    assert ok, output[-2000:]


def test_unknown_field_is_unknown():
    errors = errors_of({"virtual_hosts": [vh("a", ["*"], [{"match": {"prefixx": "/"}, "route": {"cluster": "c1"}}])]})
    assert (AT + ".virtual_hosts[0].routes[0].match.prefixx",
            "unknown field: envoy.config.route.v3.RouteMatch has no field 'prefixx'") in errors


def test_defaults_and_camel_case():
    rc = loaded({"virtual_hosts": [vh("a", ["*"], [{"match": {"prefix": "/"},
                                                   "route": {"cluster": "c1", "retryPolicy": {"retryOn": "5xx"}}}])],
                 "maxDirectResponseBodySizeBytes": {"value": 10}})
    assert rc.max_direct_response_body_size_bytes == 10
    action = rc.virtual_hosts[0].routes[0].route
    assert action.retry_policy.num_retries == 1 and action.timeout is None
    assert rc.virtual_hosts[0].routes[0].match.case_sensitive is True
    plan = build_route_table_plan(rc)
    route = plan.virtual_hosts[0].routes[0]
    assert route.timeout == 15.0 and route.idle_timeout == -1.0
    assert route.retry_policy == route_plan.RetryPolicyPlan(retry_on=0x1, num_retries=1, base_interval=0.025,
                                                            max_interval=0.25)


def test_plan_resolves_everything(tmp_path):
    body = tmp_path / "body.txt"
    body.write_bytes(b"from a file\n")
    rc = loaded({
        "name": "rc",
        "request_headers_to_add": [add("x-rc", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", append=False)],
        "virtual_hosts": [vh("a", ["Example.COM", "*"], [
            {"name": "file", "match": {"path": "/file"}, "direct_response": {"status": 503, "body": {"filename": str(body)}}},
            {"name": "bytes", "match": {"path": "/bytes"}, "direct_response": {
                "status": 200, "body": {"inline_bytes": base64.b64encode(b"\x00\x01").decode()}}},
            {"name": "redir", "match": {"prefix": "/r"}, "redirect": {"https_redirect": True, "response_code": "FOUND"}},
            {"name": "w", "match": {"prefix": "/w", "case_sensitive": False}, "route": {
                "weighted_clusters": {"clusters": [{"name": "c1", "weight": 3}, {"name": "c2", "weight": 1,
                                                                                 "host_rewrite_literal": "c2.example"}]},
                "idle_timeout": "0s", "timeout": "2.5s", "cluster_not_found_response_code": "NOT_FOUND"}},
        ], retry_policy={"retry_on": "gateway-error", "num_retries": 2})],
    })
    plan = build_route_table_plan(rc)
    assert plan.virtual_hosts[0].domains == ["example.com", "*"]
    file_route, bytes_route, redirect, weighted = plan.virtual_hosts[0].routes
    assert (file_route.kind, file_route.direct_status, file_route.direct_body) == (2, 503, b"from a file\n")
    assert bytes_route.direct_body == b"\x00\x01"
    assert (redirect.kind, redirect.redirect_status, redirect.redirect_scheme) == (1, 302, "https")
    assert [(w.name, w.weight, w.host_rewrite_literal) for w in weighted.weighted_clusters] == [
        ("c1", 3, None), ("c2", 1, "c2.example")]
    assert (weighted.timeout, weighted.idle_timeout, weighted.cluster_not_found_response_code) == (2.5, 0.0, 404)
    assert weighted.case_sensitive is False
    # the virtual host's retry policy stands in for the route's
    assert weighted.retry_policy.retry_on == 0x2 and weighted.retry_policy.num_retries == 2
    assert plan.request_mutations.add[0].append_action == 2       # append: false overwrites
    assert plan.request_mutations.add[0].segments[0].kind == route_plan.FORMAT_KINDS[
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT"]
    # the plan travels to workers as msgpack and comes back equal
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(plan), type=route_plan.RouteTablePlan) == plan


def test_field_numbers_cover_every_envoy_field():
    from envoy_fast.config import route_types
    for cls in (route_types.RouteConfiguration, route_types.VirtualHost, route_types.Route, route_types.RouteMatch,
                route_types.RouteAction, route_types.RedirectAction, route_types.DirectResponseAction,
                route_types.HeaderMatcher, route_types.QueryParameterMatcher, route_types.RetryPolicy,
                route_types.WeightedCluster, route_types.ClusterWeight, route_types.HeaderValueOption,
                route_types.HeaderValue, route_types.StringMatcher, route_types.DataSource,
                route_types.RegexMatcher, route_types.UpgradeConfig, route_types.RetryBackOff,
                route_types.RegexMatchAndSubstitute, route_types.Int64Range):
        assert set(FIELD_NUMBERS[cls.ENVOY_TYPE]) == set(cls.ENVOY_FIELDS), cls.ENVOY_TYPE
        assert len(set(FIELD_NUMBERS[cls.ENVOY_TYPE].values())) == len(cls.ENVOY_FIELDS), cls.ENVOY_TYPE


def test_dump_round_trip():
    from envoy_fast.config import dump_bootstrap
    route_config = {
        "name": "rc", "most_specific_header_mutations_wins": True, "max_direct_response_body_size_bytes": 100,
        "response_headers_to_add": [add("x", "%REQ(y)%", append_action="OVERWRITE_IF_EXISTS")],
        "virtual_hosts": [vh("a", ["*"], [
            {"name": "r", "match": {"prefix": "/", "case_sensitive": False, "headers": [
                {"name": "x", "range_match": {"start": 1, "end": 5}, "invert_match": True}],
                "query_parameters": [{"name": "q", "string_match": {"safe_regex": {"regex": "a+"}}}]},
             "route": {"cluster": "c1", "timeout": "0.5s", "retry_policy": {"retry_on": "5xx", "num_retries": 2}}},
            {"match": {"path": "/d"}, "direct_response": {"status": 200, "body": {"inline_bytes": "aGk="}}},
            {"match": {"path": "/r"}, "redirect": {"https_redirect": True, "response_code": "FOUND"}},
        ])]}
    bs = load_bootstrap(config_yaml=yaml.safe_dump(_doc(route_config)))
    dumped = dump_bootstrap(bs)
    again = load_bootstrap(config_yaml=yaml.safe_dump(dumped))
    assert again == bs


def test_field_numbers_match_the_envoy_binary():
    """Every field and number above is the installed Envoy's (its embedded descriptors)."""
    from envoy_descriptors import message_fields
    known = {}
    for proto in ("envoy/config/route/v3/route.proto", "envoy/config/route/v3/route_components.proto",
                  "envoy/config/core/v3/base.proto", "envoy/type/matcher/v3/string.proto",
                  "envoy/type/matcher/v3/regex.proto", "envoy/type/v3/range.proto"):
        known.update(message_fields(proto))
    for message, numbers in FIELD_NUMBERS.items():
        assert numbers == known[message], message
