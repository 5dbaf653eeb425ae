"""The health_check filter's configuration (envoy.filters.http.health_check):
its ``typed_config`` message, Envoy's checks and its proto field numbers (no
Cython: the loader imports it)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from envoy_fast.config.base import Message as _Message
from envoy_fast.config.base import names as _names
from envoy_fast.config.errors import ConfigError
from envoy_fast.config.route_types import HeaderMatcher, check_header_matchers
from envoy_fast.extensions.network.http_connection_manager_config import BoolValue
from envoy_fast.extensions.registry import HttpFilterConfig

__all__ = ["HEALTH_CHECK_TYPE", "HealthCheck", "check", "FIELD_NUMBERS"]

HEALTH_CHECK_TYPE = "envoy.extensions.filters.http.health_check.v3.HealthCheck"
HEALTH_CHECK_TYPE_URL = "type.googleapis.com/" + HEALTH_CHECK_TYPE


class HealthCheck(_Message, HttpFilterConfig, kw_only=True, tag_field="@type", tag=HEALTH_CHECK_TYPE_URL):
    """envoy.extensions.filters.http.health_check.v3.HealthCheck. Not
    implemented (refused when set): cache_time (pass-through answers cached
    for a while) and cluster_min_healthy_percentages."""

    ENVOY_TYPE = HEALTH_CHECK_TYPE
    ENVOY_FIELDS = _names("pass_through_mode cache_time cluster_min_healthy_percentages headers")

    pass_through_mode: Optional[BoolValue] = None     # required (PGV)
    headers: List[HeaderMatcher] = []


def check(hc: HealthCheck, checker: Any, path: str) -> None:
    """What Envoy checks of a HealthCheck on load."""
    if hc.pass_through_mode is None:
        checker.fail(ConfigError("value is required", f"{path}.pass_through_mode",
                                 hint="pass_through_mode: false answers health checks here"))
    check_header_matchers(checker, hc.headers, f"{path}.headers")


FIELD_NUMBERS: Dict[str, Dict[str, int]] = {
    HEALTH_CHECK_TYPE: dict(pass_through_mode=1, cache_time=3, cluster_min_healthy_percentages=4, headers=5),
}
