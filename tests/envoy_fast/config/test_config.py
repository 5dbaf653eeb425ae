"""Tests for envoy_fast.config: parsing rules, subset limits, errors, and Envoy parity."""
import copy
import json
import subprocess

import msgspec
import pytest
import yaml

from envoy_fast.config import (
    NETWORK_FILTER_TYPES,
    Bootstrap,
    Cluster,
    ConfigError,
    TcpProxy,
    Thresholds,
    dump_bootstrap,
    load_bootstrap,
)
from envoy_fast.config import types as config_types

from helpers import require_peer

TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

# A full configuration using most of the subset: several filter chains with
# matches, weighted clusters, circuit breakers, camelCase keys, enums by number,
# wrappers written as {value: n}, a runtime layer.
FULL_EXAMPLE = f"""
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 9901}}}}
node: {{id: node1, cluster: edge}}
layered_runtime:
  layers:
  - name: static
    static_layer:
      envoy.resource_limits.listener.front.connection_limit: 100
      envoy:
        resource_limits:
          listener:
            back:
              connection_limit: 7
  - name: admin
    admin_layer: {{}}
static_resources:
  listeners:
  - name: front
    statPrefix: front_door
    address: {{socket_address: {{address: 0.0.0.0, port_value: 10000}}}}
    perConnectionBufferLimitBytes: 32768
    filter_chains:
    - name: internal
      filterChainMatch:
        sourcePrefixRanges: [{{addressPrefix: 10.0.0.0, prefixLen: 8}}]
        sourcePorts: [1000, 1001]
      filters:
      - name: tcp
        typed_config:
          "@type": {TCP_PROXY}
          statPrefix: internal
          weightedClusters:
            clusters:
            - {{name: blue, weight: 3}}
            - {{name: green, weight: 1}}
          idleTimeout: 0s
          maxConnectAttempts: 3
          maxDownstreamConnectionDuration: 1.5s
    - name: local
      filter_chain_match:
        source_type: 1
        destination_port: {{value: 10000}}
      filters:
      - name: tcp
        typed_config:
          "@type": {TCP_PROXY}
          stat_prefix: local
          cluster: blue
    - name: v6
      filter_chain_match:
        prefix_ranges: [{{address_prefix: "2001:db8::", prefix_len: 32}}]
        direct_source_prefix_ranges: [{{address_prefix: 192.168.0.0, prefix_len: 16}}]
      filters:
      - name: tcp
        typed_config:
          "@type": {TCP_PROXY}
          stat_prefix: v6
          cluster: green
    default_filter_chain:
      filters:
      - name: tcp
        typed_config:
          "@type": {TCP_PROXY}
          stat_prefix: fallback
          cluster: green
  - name: back
    address: {{socket_address: {{address: "::1", port_value: 10001}}}}
    enable_reuse_port: false
    filter_chains:
    - filters:
      - name: tcp
        typed_config: {{"@type": {TCP_PROXY}, stat_prefix: back, cluster: green}}
  clusters:
  - name: blue
    altStatName: blue_alt
    connectTimeout: 0.25s
    lbPolicy: LEAST_REQUEST
    leastRequestLbConfig: {{choiceCount: 3}}
    commonLbConfig: {{healthyPanicThreshold: {{value: 25}}}}
    circuitBreakers:
      thresholds:
      - {{priority: HIGH, maxConnections: 1}}
      - {{priority: DEFAULT, maxConnections: 10, maxPendingRequests: 5, maxRequests: 20, maxRetries: 1, trackRemaining: true}}
    loadAssignment:
      clusterName: blue
      endpoints:
      - lbEndpoints:
        - endpoint: {{address: {{socketAddress: {{address: 127.0.0.1, portValue: 9001}}}}, hostname: b1}}
          loadBalancingWeight: 2
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.2, port_value: 9002}}}}}}
          health_status: draining
  - name: green
    type: STATIC
    connect_timeout: {{seconds: 2, nanos: 500000000}}
    lb_policy: 3
    per_connection_buffer_limit_bytes: {{value: 4096}}
    load_assignment:
      cluster_name: green
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: "::1", port_value: 9003}}}}}}
"""

# A small valid configuration the error tests mutate.
BASE = {
    "static_resources": {
        "listeners": [
            {
                "name": "l1",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
                "filter_chains": [
                    {
                        "filters": [
                            {
                                "name": "tcp",
                                "typed_config": {"@type": TCP_PROXY, "stat_prefix": "tcp", "cluster": "c1"},
                            }
                        ]
                    }
                ],
            }
        ],
        "clusters": [
            {
                "name": "c1",
                "connect_timeout": "0.25s",
                "load_assignment": {
                    "cluster_name": "c1",
                    "endpoints": [
                        {
                            "lb_endpoints": [
                                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9000}}}}
                            ]
                        }
                    ],
                },
            },
            {"name": "c2", "connect_timeout": "1s"},
        ],
    }
}


def write(tmp_path, doc, name="envoy.yaml"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


def base():
    return copy.deepcopy(BASE)


def listener(doc, i=0):
    return doc["static_resources"]["listeners"][i]


def cluster(doc, i=0):
    return doc["static_resources"]["clusters"][i]


def chain(doc, i=0):
    return listener(doc)["filter_chains"][i]


def tcp_proxy(doc, i=0):
    return chain(doc, i)["filters"][0]["typed_config"]


def endpoint(doc):
    return cluster(doc)["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]


@pytest.fixture
def full(tmp_path):
    return load_bootstrap(write(tmp_path, FULL_EXAMPLE))


class TestFullExample:
    def test_listeners(self, full):
        front, back = full.static_resources.listeners
        assert front.name == "front" and front.stat_prefix == "front_door"
        assert front.address.socket_address.address == "0.0.0.0"
        assert front.address.socket_address.port_value == 10000
        assert front.per_connection_buffer_limit_bytes == 32768
        assert front.enable_reuse_port is True
        assert [c.name for c in front.filter_chains] == ["internal", "local", "v6"]
        assert back.enable_reuse_port is False
        assert back.per_connection_buffer_limit_bytes == 1048576
        assert back.stat_prefix == ""

    def test_filter_chain_matches(self, full):
        internal, local, v6 = full.static_resources.listeners[0].filter_chains
        m = internal.filter_chain_match
        assert [(r.address_prefix, r.prefix_len) for r in m.source_prefix_ranges] == [("10.0.0.0", 8)]
        assert m.source_ports == [1000, 1001]
        assert m.source_type == "ANY" and m.destination_port is None
        assert local.filter_chain_match.source_type == "SAME_IP_OR_LOOPBACK"
        assert local.filter_chain_match.destination_port == 10000
        assert v6.filter_chain_match.prefix_ranges[0].address_prefix == "2001:db8::"
        assert v6.filter_chain_match.direct_source_prefix_ranges[0].prefix_len == 16

    def test_tcp_proxy(self, full):
        front = full.static_resources.listeners[0]
        proxy = front.filter_chains[0].filters[0].typed_config
        assert isinstance(proxy, TcpProxy)
        assert proxy.stat_prefix == "internal" and proxy.cluster is None
        assert [(c.name, c.weight) for c in proxy.weighted_clusters.clusters] == [("blue", 3), ("green", 1)]
        assert proxy.idle_timeout == 0.0
        assert proxy.max_connect_attempts == 3
        assert proxy.max_downstream_connection_duration == 1.5
        simple = front.filter_chains[1].filters[0].typed_config
        assert simple.cluster == "blue" and simple.weighted_clusters is None
        assert simple.idle_timeout == 3600.0 and simple.max_connect_attempts == 1
        assert simple.max_downstream_connection_duration is None
        assert front.default_filter_chain.filters[0].typed_config.stat_prefix == "fallback"

    def test_clusters(self, full):
        blue, green = full.static_resources.clusters
        assert blue.alt_stat_name == "blue_alt"
        assert blue.type == "STATIC" and blue.connect_timeout == 0.25
        assert blue.lb_policy == "LEAST_REQUEST" and blue.least_request_lb_config.choice_count == 3
        assert blue.common_lb_config.healthy_panic_threshold == 25.0
        hosts = blue.load_assignment.endpoints[0].lb_endpoints
        assert hosts[0].endpoint.hostname == "b1" and hosts[0].load_balancing_weight == 2
        assert hosts[0].health_status == "UNKNOWN"
        assert hosts[1].load_balancing_weight == 1 and hosts[1].health_status == "DRAINING"
        assert hosts[1].endpoint.address.socket_address.port_value == 9002
        assert green.connect_timeout == 2.5
        assert green.lb_policy == "RANDOM"
        assert green.per_connection_buffer_limit_bytes == 4096
        assert green.common_lb_config is None

    def test_circuit_breakers(self, full):
        blue, green = full.static_resources.clusters
        assert blue.thresholds() == Thresholds(
            priority="DEFAULT",
            max_connections=10,
            max_pending_requests=5,
            max_requests=20,
            max_retries=1,
            track_remaining=True,
        )
        assert green.thresholds() == Thresholds()
        assert (Thresholds().max_connections, Thresholds().max_retries) == (1024, 3)

    def test_bootstrap_level(self, full):
        assert full.admin.address.socket_address.port_value == 9901
        assert (full.node.id, full.node.cluster) == ("node1", "edge")
        assert full.listener_connection_limit("front") == 100
        assert full.listener_connection_limit("back") == 7  # nested keys flatten with '.'
        assert full.listener_connection_limit("other") is None

    def test_json_input_matches_yaml(self, tmp_path, full):
        as_json = json.dumps(yaml.safe_load(FULL_EXAMPLE))
        assert load_bootstrap(write(tmp_path, as_json, "envoy.json")) == full
        # JSON in a .yaml file (YAML parses JSON) and as --config-yaml text.
        assert load_bootstrap(write(tmp_path, as_json, "other.yaml")) == full
        assert load_bootstrap(config_yaml=as_json) == full

    def test_dump_round_trip(self, tmp_path, full):
        dumped = dump_bootstrap(full)
        assert dumped["static_resources"]["clusters"][0]["connect_timeout"] == "0.25s"
        assert dumped["static_resources"]["clusters"][1]["connect_timeout"] == "2.5s"
        assert load_bootstrap(write(tmp_path, json.dumps(dumped), "dump.json")) == full


class TestParsingRules:
    def load(self, tmp_path, doc, config_yaml=None):
        return load_bootstrap(write(tmp_path, doc), config_yaml=config_yaml)

    def test_defaults(self, tmp_path):
        bs = self.load(tmp_path, base())
        assert bs.admin is None and bs.node is None and bs.layered_runtime is None
        c2 = bs.static_resources.clusters[1]
        assert (c2.type, c2.lb_policy, c2.load_assignment) == ("STATIC", "ROUND_ROBIN", None)
        assert Cluster(name="x").connect_timeout == 5.0

    def test_config_yaml_merge(self, tmp_path):
        overlay = """
        static_resources:
          clusters:
          - name: c3
            connectTimeout: 3s
          listeners:
          - name: l2
            address: {socket_address: {address: 127.0.0.1, port_value: 10001}}
            filter_chains:
            - filters:
              - name: tcp
                typed_config: {"@type": %s, stat_prefix: t2, cluster: c3}
        node: {cluster: merged}
        """ % TCP_PROXY
        doc = base()
        doc["node"] = {"id": "file-id", "cluster": "file-cluster"}
        bs = self.load(tmp_path, doc, config_yaml=overlay)
        # Lists are appended, messages merged field by field, scalars replaced.
        assert [c.name for c in bs.static_resources.clusters] == ["c1", "c2", "c3"]
        assert [l.name for l in bs.static_resources.listeners] == ["l1", "l2"]
        assert (bs.node.id, bs.node.cluster) == ("file-id", "merged")

    def test_config_yaml_alone(self):
        bs = load_bootstrap(config_yaml=yaml.safe_dump(base()))
        assert bs.static_resources.clusters[0].name == "c1"

    def test_config_yaml_appending_duplicate_cluster(self, tmp_path):
        with pytest.raises(ConfigError) as e:
            self.load(tmp_path, base(), config_yaml="staticResources: {clusters: [{name: c1}]}")
        assert e.value.path == "static_resources.clusters[2].name"
        assert e.value.message == "cluster manager: duplicate cluster 'c1'"

    def test_config_yaml_error_is_attributed(self, tmp_path):
        with pytest.raises(ConfigError) as e:
            self.load(tmp_path, base(), config_yaml="static_resources: {clusters: [{name: c9, connect_timeout: 5ms}]}")
        assert e.value.path == "static_resources.clusters[0].connect_timeout"
        assert "--config-yaml" in e.value.message

    @pytest.mark.parametrize(
        "text, seconds",
        [("5s", 5.0), ("0.25s", 0.25), ("1.000000001s", 1.000000001), ("0s", 0.0),
         ({"seconds": 3}, 3.0), ({"seconds": "1", "nanos": 500000000}, 1.5), ({"nanos": 1000}, 1e-6)],
    )
    def test_durations(self, tmp_path, text, seconds):
        doc = base()
        tcp_proxy(doc)["idle_timeout"] = text
        bs = self.load(tmp_path, doc)
        assert bs.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.idle_timeout == pytest.approx(seconds)

    @pytest.mark.parametrize("value", ["500ms", "5", "5.s", ".5s", "+1s", "5 s", "1e3s", "-1s", 5, 0.5, "1.0000000001s"])
    def test_bad_durations(self, tmp_path, value):
        doc = base()
        cluster(doc)["connect_timeout"] = value
        with pytest.raises(ConfigError) as e:
            self.load(tmp_path, doc)
        assert e.value.path == "static_resources.clusters[0].connect_timeout"
        assert "invalid duration" in e.value.message

    def test_500ms_message(self, tmp_path):
        doc = base()
        cluster(doc, 1)["connect_timeout"] = "500ms"
        with pytest.raises(ConfigError) as e:
            self.load(tmp_path, doc)
        assert str(e.value).startswith("static_resources.clusters[1].connect_timeout: invalid duration '500ms'")
        assert "'0.25s'" in e.value.message  # says how to write it

    @pytest.mark.parametrize(
        "value, name",
        [(0, "ROUND_ROBIN"), (1, "LEAST_REQUEST"), (3, "RANDOM"), ("3", "RANDOM"),
         ("least_request", "LEAST_REQUEST"), ("Random", "RANDOM")],
    )
    def test_enums(self, tmp_path, value, name):
        doc = base()
        cluster(doc)["lb_policy"] = value
        assert self.load(tmp_path, doc).static_resources.clusters[0].lb_policy == name

    @pytest.mark.parametrize("value", [99, "least-request", True])
    def test_bad_enum(self, tmp_path, value):
        doc = base()
        cluster(doc)["lb_policy"] = value
        with pytest.raises(ConfigError) as e:
            self.load(tmp_path, doc)
        assert e.value.path == "static_resources.clusters[0].lb_policy"
        assert "unknown enum value" in e.value.message

    def test_scalars_as_protobuf_json(self, tmp_path):
        doc = base()
        listener(doc)["address"]["socket_address"]["port_value"] = "10000"
        listener(doc)["enable_reuse_port"] = "false"
        listener(doc)["per_connection_buffer_limit_bytes"] = {"value": 1024}
        cluster(doc)["per_connection_buffer_limit_bytes"] = 2048.0
        bs = self.load(tmp_path, doc)
        l1 = bs.static_resources.listeners[0]
        assert l1.address.socket_address.port_value == 10000
        assert l1.enable_reuse_port is False
        assert l1.per_connection_buffer_limit_bytes == 1024
        assert bs.static_resources.clusters[0].per_connection_buffer_limit_bytes == 2048

    def test_null_means_unset(self, tmp_path):
        doc = base()
        tcp_proxy(doc)["idle_timeout"] = None
        cluster(doc)["health_checks"] = None
        cluster(doc)["outlier_detection"] = None
        bs = self.load(tmp_path, doc)
        assert bs.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.idle_timeout == 3600.0

    def test_empty_unsupported_lists_are_unset(self, tmp_path):
        doc = base()
        listener(doc)["listener_filters"] = []
        cluster(doc)["health_checks"] = []
        tcp_proxy(doc)["access_log"] = []
        assert self.load(tmp_path, doc) == self.load(tmp_path, base())
        # Not empty, they are refused.
        listener(doc)["listener_filters"] = [{"name": "x"}]
        with pytest.raises(ConfigError, match=r"listener_filters: not supported by envoy_fast"):
            self.load(tmp_path, doc)

    def test_ignored_fields(self, tmp_path):
        doc = base()
        cluster(doc)["metadata"] = {"filter_metadata": {"x": {"y": 1}}}
        cluster(doc)["dns_refresh_rate"] = "5s"
        listener(doc)["traffic_direction"] = "INBOUND"
        doc["node"] = {"id": "n1", "locality": {"zone": "z"}}
        bs = self.load(tmp_path, doc)
        assert bs.static_resources == self.load(tmp_path, base()).static_resources
        assert bs.node.id == "n1"

    def test_ignored_duration_is_still_checked(self, tmp_path):
        doc = base()
        cluster(doc)["dns_refresh_rate"] = "5m"
        with pytest.raises(ConfigError) as e:
            self.load(tmp_path, doc)
        assert e.value.path == "static_resources.clusters[0].dns_refresh_rate"

    def test_generated_listener_name(self, tmp_path):
        doc = base()
        del listener(doc)["name"]
        name = self.load(tmp_path, doc).static_resources.listeners[0].name
        assert name and name == self.load(tmp_path, doc).static_resources.listeners[0].name

    def test_admin_without_address_is_no_admin(self, tmp_path):
        doc = base()
        doc["admin"] = {}
        assert self.load(tmp_path, doc).admin is None

    def test_runtime_keys_untouched_and_later_layers_win(self, tmp_path):
        doc = base()
        doc["layeredRuntime"] = {
            "layers": [
                {"name": "a", "staticLayer": {"envoy.resource_limits.listener.l1.connection_limit": 5, "someKey": 1}},
                {"name": "b", "static_layer": {"envoy.resource_limits.listener.l1.connection_limit": "9"}},
            ]
        }
        bs = self.load(tmp_path, doc)
        assert bs.layered_runtime["layers"][0]["static_layer"]["someKey"] == 1
        assert bs.listener_connection_limit("l1") == 9

    def test_msgspec_structs(self):
        # Every modelled field is a real Envoy field, and unknown keys are refused.
        for name in config_types.__all__:
            cls = getattr(config_types, name)
            if isinstance(cls, type) and issubclass(cls, msgspec.Struct):
                assert cls.__struct_config__.forbid_unknown_fields
                fields = {f.name for f in msgspec.structs.fields(cls)}
                assert fields <= cls.ENVOY_FIELDS, name
                assert not fields & set(cls.IGNORED), name
        assert NETWORK_FILTER_TYPES[TCP_PROXY] is TcpProxy
        assert isinstance(load_bootstrap(config_yaml=yaml.safe_dump(base())), Bootstrap)


def _set(path, value):
    """A mutation setting doc[path...] = value (path items: keys / indices)."""

    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


SR = "static_resources"
L0 = (SR, "listeners", 0)
C0 = (SR, "clusters", 0)
TP0 = L0 + ("filter_chains", 0, "filters", 0, "typed_config")
EP0 = C0 + ("load_assignment", "endpoints", 0, "lb_endpoints", 0, "endpoint")


def _dup_cluster(doc):
    doc[SR]["clusters"].append({"name": "c1"})


def _dup_listener_name(doc):
    other = copy.deepcopy(listener(doc))
    other["address"]["socket_address"]["port_value"] = 10001
    doc[SR]["listeners"].append(other)


def _dup_listener_address(doc):
    other = copy.deepcopy(listener(doc))
    other["name"] = "l2"
    doc[SR]["listeners"].append(other)


def _same_match(doc):
    listener(doc)["filter_chains"] = [
        {"name": "a", "filter_chain_match": {"source_type": "EXTERNAL"}, "filters": chain(doc)["filters"]},
        {"name": "b", "filter_chain_match": {"source_type": 2}, "filters": chain(doc)["filters"]},
    ]


def _same_empty_match(doc):
    listener(doc)["filter_chains"].append(copy.deepcopy(chain(doc)))


def _overlapping_match(doc):
    listener(doc)["filter_chains"] = [
        {"name": "a", "filter_chain_match": {"source_ports": [1, 2]}, "filters": []},
        {"name": "b", "filter_chain_match": {"source_ports": [2, 3]}, "filters": []},
    ]


def _overlapping_cidr(doc):
    listener(doc)["filter_chains"] = [
        {"filter_chain_match": {"prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 8}]}, "filters": []},
        {"filter_chain_match": {"prefix_ranges": [{"address_prefix": "10.1.0.0", "prefix_len": 8}]}, "filters": []},
    ]


def _tcp_proxy_not_last(doc):
    filters = chain(doc)["filters"]
    filters.append(copy.deepcopy(filters[0]))


def _weighted_unknown(doc):
    tp = tcp_proxy(doc)
    del tp["cluster"]
    tp["weighted_clusters"] = {"clusters": [{"name": "c1", "weight": 1}, {"name": "nosuch", "weight": 1}]}


def _both_cluster_specifiers(doc):
    tcp_proxy(doc)["weighted_clusters"] = {"clusters": [{"name": "c1", "weight": 1}]}


def _no_cluster_specifier(doc):
    del tcp_proxy(doc)["cluster"]


def _weight_zero(doc):
    tp = tcp_proxy(doc)
    del tp["cluster"]
    tp["weighted_clusters"] = {"clusters": [{"name": "c1", "weight": 0}]}


def _no_filter_chains(doc):
    listener(doc)["filter_chains"] = []


def _missing_stat_prefix(doc):
    del tcp_proxy(doc)["stat_prefix"]


def _camel_and_snake(doc):
    cluster(doc)["connectTimeout"] = "1s"


ERRORS = [
    # (id, mutation, path, message fragment)
    ("unknown field", _set(C0 + ("foo",), 1), "static_resources.clusters[0].foo", "unknown field"),
    ("unknown top field", _set(("bogus",), {}), "bogus", "unknown field"),
    ("unknown nested field", _set(TP0 + ("clusterr",), "c1"), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.clusterr", "unknown field"),
    ("500ms", _set(C0 + ("connect_timeout",), "500ms"), "static_resources.clusters[0].connect_timeout", "invalid duration '500ms'"),
    ("zero connect timeout", _set(C0 + ("connect_timeout",), "0s"), "static_resources.clusters[0].connect_timeout", "greater than 0s"),
    ("duplicate cluster", _dup_cluster, "static_resources.clusters[2].name", "cluster manager: duplicate cluster 'c1'"),
    ("duplicate listener name", _dup_listener_name, "static_resources.listeners[1].name", "duplicate listener name 'l1'"),
    ("duplicate listener address", _dup_listener_address, "static_resources.listeners[1].address", "duplicate address '127.0.0.1:10000'"),
    ("unknown cluster", _set(TP0 + ("cluster",), "nosuch"), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster", "unknown cluster 'nosuch'"),
    ("unknown weighted cluster", _weighted_unknown, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.weighted_clusters.clusters[1].name", "unknown cluster 'nosuch'"),
    ("both cluster specifiers", _both_cluster_specifiers, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config", "only one of cluster and weighted_clusters"),
    ("no cluster specifier", _no_cluster_specifier, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config", "one of cluster or weighted_clusters is required"),
    ("weight 0", _weight_zero, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.weighted_clusters.clusters[0].weight", ">= 1"),
    ("max_connect_attempts 0", _set(TP0 + ("max_connect_attempts",), 0), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.max_connect_attempts", ">= 1"),
    ("missing stat_prefix", _missing_stat_prefix, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix", "missing required field"),
    ("empty stat_prefix", _set(TP0 + ("stat_prefix",), ""), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix", "length >= 1"),
    ("max duration 0s", _set(TP0 + ("max_downstream_connection_duration",), "0s"), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.max_downstream_connection_duration", "1ms"),
    ("identical match", _same_match, "static_resources.listeners[0].filter_chains[1].filter_chain_match", "filter chain 'b' has the same matching rules defined as 'a'"),
    ("identical empty match", _same_empty_match, "static_resources.listeners[0].filter_chains[1].filter_chain_match", "same matching rules"),
    ("overlapping match", _overlapping_match, "static_resources.listeners[0].filter_chains[1].filter_chain_match", "overlapping"),
    ("overlapping cidr", _overlapping_cidr, "static_resources.listeners[0].filter_chains[1].filter_chain_match", "overlapping"),
    ("tcp_proxy not last", _tcp_proxy_not_last, "static_resources.listeners[0].filter_chains[0].filters[0]", "must be the last filter"),
    ("no filter chains", _no_filter_chains, "static_resources.listeners[0]", "no filter chains"),
    ("static hostname", _set(EP0 + ("address", "socket_address", "address"), "localhost"), "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address", "malformed IP address: localhost"),
    ("listener hostname", _set(L0 + ("address", "socket_address", "address"), "localhost"), "static_resources.listeners[0].address.socket_address.address", "malformed IP address"),
    ("udp", _set(L0 + ("address", "socket_address", "protocol"), "UDP"), "static_resources.listeners[0].address.socket_address.protocol", "not supported"),
    ("port range", _set(L0 + ("address", "socket_address", "port_value"), 70000), "static_resources.listeners[0].address.socket_address.port_value", "<= 65535"),
    ("port type", _set(L0 + ("address", "socket_address", "port_value"), "http"), "static_resources.listeners[0].address.socket_address.port_value", "Expected `int`"),
    ("bool type", _set(L0 + ("enable_reuse_port",), 1), "static_resources.listeners[0].enable_reuse_port", "expected true or false"),
    ("missing address", _set(L0 + ("address",), None), "static_resources.listeners[0].address", "missing required field"),
    ("strict dns", _set(C0 + ("type",), "STRICT_DNS"), "static_resources.clusters[0].type", "STRICT_DNS is not supported yet"),
    ("eds by number", _set(C0 + ("type",), 3), "static_resources.clusters[0].type", "EDS is not supported"),
    ("ring hash", _set(C0 + ("lb_policy",), "RING_HASH"), "static_resources.clusters[0].lb_policy", "RING_HASH is not supported"),
    ("health checks", _set(C0 + ("health_checks",), [{"timeout": "1s"}]), "static_resources.clusters[0].health_checks", "not supported by envoy_fast"),
    ("outlier detection {}", _set(C0 + ("outlier_detection",), {}), "static_resources.clusters[0].outlier_detection", "not supported by envoy_fast"),
    ("transport socket", _set(C0 + ("transport_socket",), {"name": "tls"}), "static_resources.clusters[0].transport_socket", "not supported by envoy_fast"),
    ("listener filters", _set(L0 + ("listener_filters",), [{"name": "x"}]), "static_resources.listeners[0].listener_filters", "not supported by envoy_fast"),
    ("connection balance", _set(L0 + ("connection_balance_config",), {"exact_balance": {}}), "static_resources.listeners[0].connection_balance_config", "not supported by envoy_fast"),
    ("server names", _set(L0 + ("filter_chains", 0, "filter_chain_match"), {"server_names": ["a"]}), "static_resources.listeners[0].filter_chains[0].filter_chain_match.server_names", "not supported"),
    ("tcp_proxy access_log filter", _set(TP0 + ("access_log",), [{"name": "x", "filter": {"not_health_check_filter": {}}, "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"}}]), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.access_log[0].filter", "not supported"),
    ("tcp_proxy hash_policy", _set(TP0 + ("hashPolicy",), [{"source_ip": {}}]), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.hash_policy", "not supported"),
    ("tcp_proxy tunneling", _set(TP0 + ("tunneling_config",), {"hostname": "h"}), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tunneling_config", "not supported"),
    ("admin access_log", _set(("admin",), {"address": {"socket_address": {"address": "127.0.0.1"}}, "access_log": [{"name": "x"}]}), "admin.access_log", "not supported"),
    ("hcm", _set(TP0, {"@type": HCM, "stat_prefix": "h"}), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config", "route_specifier is required"),
    ("unknown @type", _set(TP0 + ("@type",), "type.googleapis.com/envoy.extensions.filters.network.foo.v3.Foo"), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type", "envoy.extensions.filters.network.foo.v3.Foo"),
    ("missing @type", _set(TP0, {"stat_prefix": "x", "cluster": "c1"}), "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.@type", "missing '@type'"),
    ("bad cidr", _set(L0 + ("filter_chains", 0, "filter_chain_match"), {"prefix_ranges": [{"address_prefix": "10.0.0.300", "prefix_len": 8}]}), "static_resources.listeners[0].filter_chains[0].filter_chain_match.prefix_ranges[0].address_prefix", "malformed IP address"),
    ("cidr prefix_len", _set(L0 + ("filter_chains", 0, "filter_chain_match"), {"prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 33}]}), "static_resources.listeners[0].filter_chains[0].filter_chain_match.prefix_ranges[0].prefix_len", "out of range for IPv4"),
    ("source type", _set(L0 + ("filter_chains", 0, "filter_chain_match"), {"source_type": "NEARBY"}), "static_resources.listeners[0].filter_chains[0].filter_chain_match.source_type", "unknown enum value"),
    ("priority", _set(C0 + ("load_assignment", "endpoints", 0, "priority"), 1), "static_resources.clusters[0].load_assignment.endpoints[0].priority", "priority 1 is not supported"),
    ("lb weight 0", _set(C0 + ("load_assignment", "endpoints", 0, "lb_endpoints", 0, "load_balancing_weight"), 0), "static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].load_balancing_weight", ">= 1"),
    ("no cluster_name", _set(C0 + ("load_assignment", "cluster_name"), ""), "static_resources.clusters[0].load_assignment.cluster_name", "at least 1"),
    ("choice_count 1", _set(C0 + ("least_request_lb_config",), {"choice_count": 1}), "static_resources.clusters[0].least_request_lb_config.choice_count", ">= 2"),
    ("panic as scalar", _set(C0 + ("common_lb_config",), {"healthy_panic_threshold": 30}), "static_resources.clusters[0].common_lb_config.healthy_panic_threshold", "expected a mapping"),
    ("panic range", _set(C0 + ("common_lb_config",), {"healthy_panic_threshold": {"value": 101}}), "static_resources.clusters[0].common_lb_config.healthy_panic_threshold", "<= 100"),
    ("common_lb_config zone aware", _set(C0 + ("common_lb_config",), {"zone_aware_lb_config": {}}), "static_resources.clusters[0].common_lb_config.zone_aware_lb_config", "not supported"),
    ("per-host thresholds", _set(C0 + ("circuit_breakers",), {"per_host_thresholds": [{"max_connections": 1}]}), "static_resources.clusters[0].circuit_breakers.per_host_thresholds", "not supported"),
    ("empty cluster name", _set(C0 + ("name",), ""), "static_resources.clusters[0].name", "length >= 1"),
    ("camel and snake", _camel_and_snake, "static_resources.clusters[0].connect_timeout", "given twice"),
    ("wrong shape", _set((SR, "clusters"), {"name": "c1"}), "static_resources.clusters", "expected a list"),
    ("runtime disk layer", _set(("layered_runtime",), {"layers": [{"name": "d", "disk_layer": {"symlink_root": "/x"}}]}), "layered_runtime.layers[0].disk_layer", "not supported"),
    ("runtime unknown field", _set(("layered_runtime",), {"layers": [{"name": "d", "static_layer": {}, "bogus": 1}]}), "layered_runtime.layers[0].bogus", "unknown field"),
]


class TestErrors:
    @pytest.mark.parametrize("mutate, path, fragment", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
    def test_error(self, tmp_path, mutate, path, fragment):
        doc = base()
        mutate(doc)
        with pytest.raises(ConfigError) as e:
            load_bootstrap(write(tmp_path, doc))
        assert e.value.path == path
        assert fragment in e.value.message
        assert str(e.value) == f"{path}: {e.value.message}"

    def test_no_input(self):
        with pytest.raises(ConfigError) as e:
            load_bootstrap()
        assert e.value.path == "" and str(e.value) == e.value.message

    def test_missing_file(self, tmp_path):
        with pytest.raises(ConfigError, match="cannot read config file .*nope.yaml"):
            load_bootstrap(str(tmp_path / "nope.yaml"))

    @pytest.mark.parametrize("text", ["", "# just a comment\n", "   \n"])
    def test_empty_file(self, tmp_path, text):
        with pytest.raises(ConfigError, match="is empty"):
            load_bootstrap(write(tmp_path, text))

    def test_empty_json_file(self, tmp_path):
        with pytest.raises(ConfigError, match="is empty"):
            load_bootstrap(write(tmp_path, "", "envoy.json"))

    def test_yaml_syntax_error_has_line(self, tmp_path):
        with pytest.raises(ConfigError) as e:
            load_bootstrap(write(tmp_path, "static_resources:\n  clusters: [\n    {name: a}\n  foo: bar\n"))
        assert e.value.path == ""
        assert "invalid YAML at line 4" in e.value.message

    def test_json_syntax_error_has_line(self, tmp_path):
        with pytest.raises(ConfigError, match="invalid JSON at line 2"):
            load_bootstrap(write(tmp_path, '{"static_resources":\n {,}}', "envoy.json"))

    def test_top_level_not_mapping(self, tmp_path):
        with pytest.raises(ConfigError, match="must be a mapping"):
            load_bootstrap(write(tmp_path, "- 1\n"))

    def test_pickles(self):
        import pickle

        err = pickle.loads(pickle.dumps(ConfigError("boom", "a.b")))
        assert (err.path, err.message, str(err)) == ("a.b", "boom", "a.b: boom")


def _doc_variant(mutate):
    doc = base()
    mutate(doc)
    return doc


# Configurations on which envoy_fast must agree with real Envoy's --mode validate.
# (Not compared: tcp_proxy naming an unknown cluster, which Envoy deliberately
# accepts and envoy_fast rejects.)
DIFFERENTIAL = [
    ("valid base", lambda: base(), True),
    ("valid full example", lambda: yaml.safe_load(FULL_EXAMPLE), True),
    ("unknown field", lambda: _doc_variant(_set(C0 + ("foo",), 1)), False),
    ("500ms duration", lambda: _doc_variant(_set(C0 + ("connect_timeout",), "500ms")), False),
    ("duplicate cluster", lambda: _doc_variant(_dup_cluster), False),
    ("STATIC hostname", lambda: _doc_variant(_set(EP0 + ("address", "socket_address", "address"), "localhost")), False),
    ("identical filter chain match", lambda: _doc_variant(_same_match), False),
    ("overlapping filter chain match", lambda: _doc_variant(_overlapping_match), False),
    ("tcp_proxy not last", lambda: _doc_variant(_tcp_proxy_not_last), False),
    ("duplicate listener address", lambda: _doc_variant(_dup_listener_address), False),
    ("weight 0", lambda: _doc_variant(_weight_zero), False),
    ("enum by number and lower case", lambda: _doc_variant(_set(C0 + ("lb_policy",), "least_request")), True),
]


class TestEnvoyDifferential:
    """envoy_fast's accept/reject decision matches ``envoy --mode validate``
    (envoy_fast's side is checked first, with or without Envoy)."""

    @staticmethod
    def envoy_accepts(path):
        proc = subprocess.run(
            [require_peer("envoy"), "--mode", "validate", "-c", path, "-l", "critical"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return proc.returncode == 0, proc.stdout + proc.stderr

    @pytest.mark.parametrize("make, valid", [d[1:] for d in DIFFERENTIAL], ids=[d[0] for d in DIFFERENTIAL])
    def test_agrees_with_envoy(self, tmp_path, make, valid):
        path = write(tmp_path, make())
        try:
            load_bootstrap(path)
            ours_ok, error = True, None
        except ConfigError as err:
            ours_ok, error = False, err
        assert ours_ok is valid, error
        envoy_ok, output = self.envoy_accepts(path)
        assert envoy_ok is valid, output

    def test_config_yaml_append_agrees(self, tmp_path):
        path = write(tmp_path, base())
        overlay = "static_resources: {clusters: [{name: c1}]}"
        with pytest.raises(ConfigError, match="duplicate cluster 'c1'"):
            load_bootstrap(path, config_yaml=overlay)
        proc = subprocess.run(
            [require_peer("envoy"), "--mode", "validate", "-c", path, "--config-yaml", overlay, "-l", "critical"],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode != 0 and "duplicate cluster 'c1'" in proc.stdout + proc.stderr


def test_yaml_timestamps_stay_text(tmp_path):
    # Envoy keeps a YAML scalar's text and lets the field decide its type: an
    # unquoted date in a json_format is the string Envoy's records print.
    doc = yaml.safe_dump(base())
    doc = doc.replace("stat_prefix: tcp", """stat_prefix: tcp
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              '@type': type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                json_format:
                  day: 2026-01-01
                  at: 2026-01-01 10:00:00
                  bytes: '%BYTES_SENT%'""", 1)
    assert "day: 2026-01-01" in doc, doc
    b = load_bootstrap(config_path=write(tmp_path, doc))
    tp = b.static_resources.listeners[0].filter_chains[0].filters[0].typed_config
    fmt = tp.access_log[0].typed_config.log_format.json_format
    assert fmt["day"] == "2026-01-01" and fmt["at"] == "2026-01-01 10:00:00"
