"""A cluster's typed_extension_protocol_options (the upstream HTTP options
its HTTP/1.1 pool reads): accepted and refused as Envoy 1.40 does (checked
against `envoy --mode validate` when the binary is there), carried into the
cluster plan, dumped so that the dump loads again."""
import json
import subprocess

import pytest

from envoy_fast.config import dump_bootstrap, load_bootstrap, validate_bootstrap
from envoy_fast.server.plan import build_cluster_plan
from envoy_fast.stats.store import StatsLayout
from helpers import envoy_binary

BASE = """
static_resources:
  clusters:
  - name: up
    connect_timeout: 1s
    typed_extension_protocol_options:
      %s:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        %s
    load_assignment:
      cluster_name: up
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]
"""
NAME = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
EXPLICIT = "explicit_http_config: {http_protocol_options: {}}"


def cfg(body, name=NAME):
    return BASE % (name, body)


def errors(text):
    result = validate_bootstrap(config_yaml=text)
    errs = result[1] if isinstance(result, tuple) else result
    return [str(e) for e in errs]


def plan_of(text):
    bs = load_bootstrap(config_yaml=text)
    return build_cluster_plan(bs.static_resources.clusters[0], StatsLayout(bs, 1))


def test_options_reach_the_cluster_plan():
    p = plan_of(cfg(EXPLICIT + "\n        common_http_protocol_options:"
                    " {idle_timeout: 2.5s, max_requests_per_connection: 3, max_headers_count: 50}"))
    assert (p.max_requests_per_connection, p.idle_timeout, p.max_headers_count) == (3, 2.5, 50)


def test_defaults_without_options():
    text = BASE.replace("    typed_extension_protocol_options:\n      %s:\n", "").replace(
        '        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n'
        "        %s\n", "")
    p = plan_of(text)
    assert (p.max_requests_per_connection, p.idle_timeout, p.max_headers_count) == (0, 3600.0, 100)
    # idle_timeout 0 disables it, as in Envoy.
    p = plan_of(cfg(EXPLICIT + "\n        common_http_protocol_options: {idle_timeout: 0s}"))
    assert p.idle_timeout == 0


def test_extension_name_is_accepted_as_the_key():
    p = plan_of(cfg(EXPLICIT + "\n        common_http_protocol_options: {max_requests_per_connection: 7}",
                    name="envoy.upstreams.http.http_protocol_options"))
    assert p.max_requests_per_connection == 7


def test_dump_loads_again_to_the_same_bootstrap():
    bs = load_bootstrap(config_yaml=cfg(EXPLICIT + "\n        common_http_protocol_options:"
                                              " {idle_timeout: 2s, max_requests_per_connection: 3}"))
    doc = dump_bootstrap(bs)
    opts = doc["static_resources"]["clusters"][0]["typed_extension_protocol_options"][NAME]
    assert opts["@type"] == "type.googleapis.com/" + NAME
    assert opts["common_http_protocol_options"]["idle_timeout"] == "2s"
    assert load_bootstrap(config_yaml=json.dumps(doc)) == bs


# (body, key, error substring or None): what Envoy 1.40 says of each.
CASES = [
    (EXPLICIT, NAME, None),
    ("common_http_protocol_options: {idle_timeout: 2s}", NAME,
     '"upstream_protocol_options", reason: is required'),
    (EXPLICIT, "foo", "Didn't find a registered network or http filter or protocol options"
                      " implementation for name: 'foo'"),
    (EXPLICIT + "\n        common_http_protocol_options: {max_headers_count: 0}", NAME,
     "max_headers_count"),
    (EXPLICIT + "\n        common_http_protocol_options: {idle_timeout: 2}", NAME, "invalid duration"),
]


@pytest.mark.parametrize("body,key,error", CASES)
def test_accepted_and_refused_as_envoy(body, key, error):
    errs = errors(cfg(body, key))
    if error is None:
        assert errs == []
    else:
        assert len(errs) == 1 and error in errs[0], errs
        assert ".typed_extension_protocol_options." + key in errs[0]


@pytest.mark.parametrize("body,key,error", CASES)
def test_envoy_agrees(body, key, error, tmp_path):
    envoy = envoy_binary()
    if envoy is None:
        pytest.skip("the real envoy is not installed")
    path = tmp_path / "c.yaml"
    path.write_text(cfg(body, key))
    r = subprocess.run([envoy, "--mode", "validate", "-c", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode == 0) == (error is None), r.stdout + r.stderr


@pytest.mark.parametrize("body,what", [
    (EXPLICIT + "\n        common_http_protocol_options: {max_connection_duration: 2s}",
     "upstream max_connection_duration"),
    (EXPLICIT + "\n        common_http_protocol_options: {max_stream_duration: 2s}",
     "upstream max_stream_duration"),
    (EXPLICIT + "\n        common_http_protocol_options: {headers_with_underscores_action: DROP_HEADER}",
     "upstream headers_with_underscores_action"),
    ("explicit_http_config: {http2_protocol_options: {}}", "http2_protocol_options"),
    ("auto_config: {}", "auto_config"),
    ("use_downstream_protocol_config: {}", "use_downstream_protocol_config"),
])
def test_what_envoy_fast_does_not_implement_is_refused(body, what):
    errs = errors(cfg(body))
    assert len(errs) == 1 and "not supported by envoy_fast" in errs[0] and what in errs[0], errs


DEPRECATED = """
static_resources:
  clusters:
  - name: up
    connect_timeout: 1s
    max_requests_per_connection: 5
%s    load_assignment:
      cluster_name: up
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]
"""
BOTH = """    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: {max_requests_per_connection: 3}
        explicit_http_config: {http_protocol_options: {}}
"""


def test_deprecated_cluster_max_requests_per_connection_is_honoured():
    assert plan_of(DEPRECATED % "").max_requests_per_connection == 5
    errs = errors(DEPRECATED % BOTH)
    assert len(errs) == 1 and "Only one of max_requests_per_connection from Cluster or" \
        " HttpProtocolOptions can be specified" in errs[0], errs
    assert "clusters[0].max_requests_per_connection" in errs[0]


@pytest.mark.parametrize("extra,ok", [("", True), (BOTH, False)])
def test_deprecated_field_as_envoy(extra, ok, tmp_path):
    envoy = envoy_binary()
    if envoy is None:
        pytest.skip("the real envoy is not installed")
    path = tmp_path / "c.yaml"
    path.write_text(DEPRECATED % extra)
    r = subprocess.run([envoy, "--mode", "validate", "-c", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert (r.returncode == 0) == ok, r.stdout + r.stderr
