"""Built-in network filters; importing this registers them."""
from envoy_fast.extensions.network import tcp_proxy  # noqa: F401
from envoy_fast.extensions.network import http_connection_manager  # noqa: F401  (after tcp_proxy: listed in that order)
