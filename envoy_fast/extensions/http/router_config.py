"""The router's configuration: its ``typed_config`` message, the checks Envoy
makes on it, and its proto field numbers (no Cython: the loader imports it)."""
from __future__ import annotations

from typing import Any, Dict, List

from envoy_fast.config.accesslog_types import AccessLog
from envoy_fast.config.base import Message as _Message
from envoy_fast.config.base import names as _names
from envoy_fast.config.errors import ConfigError
from envoy_fast.extensions.network.http_connection_manager_config import BoolValue
from envoy_fast.extensions.registry import HttpFilterConfig

__all__ = ["ROUTER_TYPE", "ROUTER_TYPE_URL", "Router", "check", "FIELD_NUMBERS"]

ROUTER_TYPE = "envoy.extensions.filters.http.router.v3.Router"
ROUTER_TYPE_URL = "type.googleapis.com/" + ROUTER_TYPE

#: The headers strict_check_headers may name (Envoy's PGV ``in`` rule).
STRICT_CHECK_HEADERS = ("x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-rq-per-try-timeout-ms",
                        "x-envoy-max-retries", "x-envoy-retry-grpc-on", "x-envoy-retry-on")


class Router(_Message, HttpFilterConfig, kw_only=True, tag_field="@type", tag=ROUTER_TYPE_URL):
    """envoy.extensions.filters.http.router.v3.Router."""

    ENVOY_TYPE = ROUTER_TYPE
    ENVOY_FIELDS = _names(
        "dynamic_stats start_child_span upstream_log upstream_log_options suppress_envoy_headers"
        " strict_check_headers respect_expected_rq_timeout suppress_grpc_request_failure_code_stats"
        " upstream_http_filters reject_connect_request_early_data"
    )
    # No tracing (start_child_span), no gRPC (its failure-code stats), no TLS
    # early data on CONNECT in envoy_fast: these cannot act.
    IGNORED = {"start_child_span": "bool", "suppress_grpc_request_failure_code_stats": "bool",
               "reject_connect_request_early_data": "bool"}

    dynamic_stats: BoolValue = True
    upstream_log: List[AccessLog] = []
    suppress_envoy_headers: bool = False
    strict_check_headers: List[str] = []
    respect_expected_rq_timeout: bool = False


def check(router: Router, checker: Any, path: str) -> None:
    """What Envoy checks of a Router on load, and what envoy_fast does not implement."""
    bad = [i for i, name in enumerate(router.strict_check_headers) if name not in STRICT_CHECK_HEADERS]
    for i in bad:
        checker.fail(ConfigError(f"value must be in list [{' '.join(STRICT_CHECK_HEADERS)}]",
                                 f"{path}.strict_check_headers[{i}]"))
    unsupported = [("dynamic_stats", not router.dynamic_stats, "dynamic_stats: false"),
                   ("upstream_log", bool(router.upstream_log), "upstream_log"),
                   ("strict_check_headers", bool(router.strict_check_headers) and not bad,
                    "strict_check_headers"),
                   ("respect_expected_rq_timeout", router.respect_expected_rq_timeout,
                    "respect_expected_rq_timeout: true")]
    for field, given, what in unsupported:
        if given:
            checker.fail(ConfigError(f"{what} is not supported by envoy_fast", f"{path}.{field}",
                                     hint=f"remove `{field}`"))


FIELD_NUMBERS: Dict[str, Dict[str, int]] = {
    ROUTER_TYPE: dict(
        dynamic_stats=1, start_child_span=2, upstream_log=3, suppress_envoy_headers=4,
        strict_check_headers=5, respect_expected_rq_timeout=6,
        suppress_grpc_request_failure_code_stats=7, upstream_http_filters=8,
        upstream_log_options=9, reject_connect_request_early_data=10),
}
