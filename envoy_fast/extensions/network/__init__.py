"""Built-in network filters; importing this registers them."""
from envoy_fast.extensions.network import tcp_proxy  # noqa: F401
