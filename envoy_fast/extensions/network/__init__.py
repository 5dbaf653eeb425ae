"""Built-in network filters; importing this registers them."""
from envoy_fast.extensions import registry as _registry
from envoy_fast.extensions.network import tcp_proxy  # noqa: F401

_registry.not_supported_yet(
    "network_filter",
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    "http_connection_manager is not supported yet by envoy_fast (L4 tcp_proxy only)",
)
