"""Route configuration messages (``envoy.config.route.v3``).

PLACEHOLDER in the http_connection_manager config branch: only what the
HCM's ``route_config`` needs to load (a name and its virtual hosts, read
loosely). The route table's own messages, checks (``check_route_config``)
and plan replace this module.
"""
from typing import Any, Dict, List

from .base import Message as _Message
from .base import names as _names

__all__ = ["RouteConfiguration", "check_route_config", "FIELD_NUMBERS"]


class RouteConfiguration(_Message, kw_only=True):
    """envoy.config.route.v3.RouteConfiguration (placeholder: virtual hosts unchecked)."""

    ENVOY_TYPE = "envoy.config.route.v3.RouteConfiguration"
    ENVOY_FIELDS = _names(
        "name virtual_hosts vhds internal_only_headers response_headers_to_add"
        " response_headers_to_remove request_headers_to_add request_headers_to_remove"
        " most_specific_header_mutations_wins validate_clusters"
        " max_direct_response_body_size_bytes cluster_specifier_plugins request_mirror_policies"
        " ignore_port_in_host_matching vhost_header ignore_path_parameters_in_path_matching"
        " typed_per_filter_config metadata route_specifiers"
    )

    name: str = ""
    virtual_hosts: List[Dict[str, Any]] = []


def check_route_config(config: RouteConfiguration, checker: Any, path: str) -> None:
    """What Envoy checks of a route configuration on load (placeholder: nothing)."""


FIELD_NUMBERS: Dict[str, Dict[str, int]] = {
    "envoy.config.route.v3.RouteConfiguration": dict(
        name=1, virtual_hosts=2, internal_only_headers=3, response_headers_to_add=4,
        response_headers_to_remove=5, request_headers_to_add=6, validate_clusters=7,
        request_headers_to_remove=8, vhds=9, most_specific_header_mutations_wins=10,
        max_direct_response_body_size_bytes=11, cluster_specifier_plugins=12,
        request_mirror_policies=13, ignore_port_in_host_matching=14,
        ignore_path_parameters_in_path_matching=15, typed_per_filter_config=16, metadata=17,
        vhost_header=18, route_specifiers=19),
}
