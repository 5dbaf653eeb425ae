"""Built-in HTTP filters (an http_connection_manager's ``http_filters``);
importing this registers them."""
from envoy_fast.extensions.http import health_check, router  # noqa: F401
