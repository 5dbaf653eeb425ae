"""/config_dump's resource, mask and name_regex, compared with the real Envoy.

Both run the same YAML; each query's status, content type and body must be
the same (timestamps aside, and the node, which names each build, is left
out by the masks used here).
"""
import json
import re

import pytest

from helpers import (bootstrap, cluster, envoy_binary, free_port, listener, require_peer,
                     run_envoy, run_envoy_fast, tcp_proxy_filter)
from test_admin import admin_request

QUERIES = [
    "resource=static_clusters&mask=cluster.name",
    "resource=static_listeners&mask=listener.name,listener.address.socket_address.port_value",
    "resource=static_clusters",
    "resource=static_listeners",
    "resource=static_clusters&mask=last_updated",
    "resource=static_clusters&mask=",
    "resource=static_clusters&mask=cluster.load_assignment.cluster_name,cluster.load_assignment",
    "resource=static_clusters&mask=cluster.connect_timeout.seconds,last_updated.seconds",
    "resource=static_clusters&mask=cluster.connect_timeout.nanos,cluster.name",
    "resource=static_clusters&mask=cluster.connect_timeout.seconds,cluster.name",
    "resource=static_clusters&mask=cluster.circuit_breakers,cluster.name",
    "resource=static_secrets",
    "resource=dynamic_active_clusters",
    "resource=static_listeners&mask=listener.name&name_regex=l.",
    "resource=static_clusters&mask=cluster.name&name_regex=u",
    "mask=static_clusters",
    "mask=static_listeners,,version_info",
    "mask=version_info",
    "mask=last_updated",
    "mask=bootstrap.admin",
    "mask=bootstrap.static_resources.clusters",
    "mask=bootstrap.node.id,bootstrap.admin.address.socket_address.port_value",
    "mask=bootstrap.stats_flush_interval.seconds",
    "mask=static_clusters&name_regex=two|up",
    # Refused, each with Envoy's status and words.
    "resource=foo",
    "resource=configs",
    "resource=bootstrap",
    "resource=version_info",
    "resource=static_clusters&mask=cluster",
    "resource=static_clusters&mask=foo",
    "resource=static_clusters&mask=cluster.name,cluster.load_assignment.endpoints.lb_endpoints",
    "resource=static_clusters&mask=cluster.name.foo",
    "mask=foo",
    "mask=bootstrap.foo",
    "mask=bootstrap.static_resources.clusters.name",
    "mask=bootstrap.admin,static_clusters",
    "name_regex=(",
]

STAMP = re.compile(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"')
# protobuf's DebugString opens with a marker it varies from run to run
# ("goo.gle/debugproto", "goo.gle/debugonly") so that nobody parses it.
DEBUG_MARKER = re.compile(r"goo\.gle/debug\w+ +\n")


def config():
    ports = [free_port() for _ in range(4)]
    two = cluster("two", [ports[3]], circuit_breakers={"thresholds": [{"max_connections": 7}]})
    return bootstrap(
        [listener("l0", ports[0], [{"filters": [tcp_proxy_filter("up")]}]),
         listener("l1", ports[1], [{"filters": [tcp_proxy_filter("two", stat_prefix="t2")]}])],
        [cluster("up", [ports[3]], connect_timeout="1.250s"), two], ports[2])


def answers(run, cfg):
    with run(cfg) as proxy:
        out = {}
        for q in QUERIES:
            status, headers, body = admin_request(proxy.admin_port, "/config_dump?" + q)
            body = DEBUG_MARKER.sub("<marker>\n", STAMP.sub('"T"', body))
            out[q] = (status, headers["content-type"], body.rstrip("\n"))
        return out


@pytest.fixture(scope="module")
def both():
    cfg = config()
    mine = answers(run_envoy_fast, cfg)
    theirs = answers(run_envoy, cfg) if envoy_binary() else None
    return mine, theirs


@pytest.mark.parametrize("query", QUERIES)
def test_config_dump_query_as_envoy(both, query):
    mine, theirs = both
    if theirs is None:
        require_peer("envoy")
    assert mine[query] == theirs[query]


def test_config_dump_queries_without_envoy(both):
    mine, _ = both
    doc = json.loads(mine["resource=static_clusters&mask=cluster.name"][2])
    assert [c["cluster"]["name"] for c in doc["configs"]] == ["two", "up"]
    assert all(set(c) == {"@type", "cluster"} for c in doc["configs"])
    assert mine["resource=foo"] == (404, "text/plain", "foo not found in config dump")
    assert mine["mask=foo"] == (
        400, "text/plain", "FieldMask foo could not be successfully applied to any configs.")
    assert mine["resource=bootstrap"][0] == 400
    assert mine["name_regex=("][0] == 400
    doc = json.loads(mine["mask=static_clusters&name_regex=two|up"][2])
    assert [c["cluster"]["name"] for c in doc["configs"][0]["static_clusters"]] == ["two", "up"]
    doc = json.loads(mine["resource=static_clusters&mask=cluster.name&name_regex=u"][2])
    assert doc == {}                      # "u" matches no whole name


def test_include_eds_is_refused_not_ignored():
    with run_envoy_fast(config()) as proxy:
        status, headers, body = admin_request(proxy.admin_port, "/config_dump?include_eds")
    assert status == 400 and headers["content-type"] == "text/plain"
    assert body.startswith("include_eds is not supported")
