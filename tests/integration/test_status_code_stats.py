"""The response codes a cluster's stats block gives a slot of their own are
the members of the real Envoy's `Http::Code` enum. Envoy's HTTP/1 codec
writes a status line's reason phrase from that enum (`CodeUtility::toString`)
and "Unknown" for a code it does not name, so a route per code answered by
direct_response shows which codes the enum has."""
import socket

from envoy_fast import _worker
from helpers import free_port, require_peer, run_envoy

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
# 1xx are interim responses, not something a direct_response can end with.
CODES = range(200, 600)


def _status_line(port, code):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % code)
        data = b""
        while b"\r\n" not in data:
            d = s.recv(4096)
            assert d, "no status line for %d" % code
            data += d
    return data.split(b"\r\n", 1)[0].decode()


def test_codes_with_a_slot_are_the_ones_envoy_names():
    require_peer("envoy")
    port, admin = free_port(), free_port()
    routes = [{"match": {"path": "/%d" % c}, "direct_response": {"status": c}} for c in CODES]
    cfg = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "h",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": HCM, "stat_prefix": "h",
                    "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"],
                                                        "routes": routes}]},
                    "http_filters": [{"name": "envoy.filters.http.router",
                                      "typed_config": {"@type": ROUTER}}]}}]}]}]},
    }
    with run_envoy(cfg, wait=[port]):
        named = set()
        for code in CODES:
            line = _status_line(port, code)
            assert line.startswith("HTTP/1.1 %d " % code), line
            if line != "HTTP/1.1 %d Unknown" % code:
                named.add(code)
    assert named == {c for c in _worker.STATUS_CODES if c in CODES}
