"""http_connection_manager's plan: what a worker's HttpConnectionManagerConfig
(ext/http/conn_manager_config.pyx) is built from. Every field is resolved:
defaults applied, durations in seconds (0: off), enums as ints."""
from __future__ import annotations

from typing import List, Union

from envoy_fast.accesslog.plan import AccessLogPlan
from envoy_fast.extensions.registry import HttpFilterPlan, NetworkFilterPlan
from envoy_fast.router.plan import HeaderMatcherPlan, RouteTablePlan

NAME = "envoy.filters.network.http_connection_manager"
ROUTER_NAME = "envoy.filters.http.router"
HEALTH_CHECK_NAME = "envoy.filters.http.health_check"

# ServerHeaderTransformation
SERVER_HEADER_OVERWRITE = 0
SERVER_HEADER_APPEND_IF_ABSENT = 1
SERVER_HEADER_PASS_THROUGH = 2

# HeadersWithUnderscoresAction
UNDERSCORES_ALLOW = 0
UNDERSCORES_REJECT_REQUEST = 1
UNDERSCORES_DROP_HEADER = 2


class RouterPlan(HttpFilterPlan, tag=ROUTER_NAME, kw_only=True):
    """envoy.filters.http.router."""
    suppress_envoy_headers: bool = False


class HealthCheckPlan(HttpFilterPlan, tag=HEALTH_CHECK_NAME, kw_only=True):
    """envoy.filters.http.health_check."""
    pass_through_mode: bool = False
    headers: List[HeaderMatcherPlan] = []       # all must match (Envoy's HeaderUtility::matchHeaders)
    cluster_name: str = ""                      # x-envoy-upstream-healthchecked-cluster (node.cluster)


HttpFilterPlans = Union[RouterPlan, HealthCheckPlan]


# Which port the connection manager strips from Host before routing.
STRIP_PORT_NONE = 0
STRIP_PORT_MATCHING = 1     # the listener's own port only
STRIP_PORT_ANY = 2

class HttpConnectionManagerPlan(NetworkFilterPlan, tag=NAME, kw_only=True):
    stat_prefix: str
    stats_base: int                             # http.<stat_prefix>. block (HttpConnManagerStat)
    listener_stats_base: int = -1               # listener.<address>.http.<stat_prefix>. block (-1: none)
    downstream_rq_time_slot: int = -1           # histogram slots of the block (-1: none)
    downstream_cx_length_ms_slot: int = -1
    route_table: RouteTablePlan
    http_filters: List[HttpFilterPlans]         # router last
    server_name: str = "envoy"
    server_header_transformation: int = SERVER_HEADER_OVERWRITE
    use_remote_address: bool = False
    internal_cidrs: List[str] = []              # internal_address_config, "10.0.0.0/8"
    strip_port: int = STRIP_PORT_NONE           # strip_matching_host_port / strip_any_host_port
    strip_trailing_host_dot: bool = False
    append_x_forwarded_port: bool = False
    skip_xff_append: bool = False
    xff_num_trusted_hops: int = 0
    generate_request_id: bool = True
    preserve_external_request_id: bool = False
    always_set_request_id_in_response: bool = False
    max_request_headers_kb: int = 60
    max_headers_count: int = 100
    headers_with_underscores_action: int = UNDERSCORES_ALLOW
    idle_timeout: float = 3600.0                # common_http_protocol_options.idle_timeout
    max_connection_duration: float = 0.0
    max_requests_per_connection: int = 0        # 0: no limit
    stream_idle_timeout: float = 300.0
    request_timeout: float = 0.0
    max_stream_duration: float = 0.0            # common_http_protocol_options'; 0: none
    request_headers_timeout: float = 0.0
    delayed_close_timeout: float = 1.0
    drain_timeout: float = 5.0                  # HTTP/2 GOAWAY grace in Envoy; kept for drain
    accept_http_10: bool = False
    default_host_for_http_10: str = ""
    allow_absolute_url: bool = True
    allow_chunked_length: bool = False
    enable_trailers: bool = False
    proper_case_headers: bool = False           # http_protocol_options.header_key_format.proper_case_words
    upgrade_types: List[str] = []               # enabled upgrade_configs, lower-case
    proxy_100_continue: bool = False
    via: str = ""
    access_log: List[AccessLogPlan] = []
