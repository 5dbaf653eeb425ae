"""The health_check filter's registry record (envoy.filters.http.health_check):
answers the requests its header matchers select (200, or 503 once the
server's health check failed), or lets them through in pass-through mode;
the worker side is ext/http/health_check_filter.pyx."""
from __future__ import annotations

from envoy_fast.extensions.http import health_check_config
from envoy_fast.extensions.http.health_check_config import HealthCheck
from envoy_fast.extensions.network.http_connection_manager_plan import HEALTH_CHECK_NAME, HealthCheckPlan
from envoy_fast.extensions.registry import HttpFilterRecord, PlanContext, register_http_filter
from envoy_fast.router.plan import header_matcher_plan

NAME = HEALTH_CHECK_NAME


def _build_plan(config: HealthCheck, ctx: PlanContext) -> HealthCheckPlan:
    node = getattr(ctx.bootstrap, "node", None)
    return HealthCheckPlan(pass_through_mode=bool(config.pass_through_mode),
                           headers=[header_matcher_plan(h) for h in config.headers],
                           cluster_name=getattr(node, "cluster", "") or "")


RECORD = register_http_filter(HttpFilterRecord(
    name=NAME,
    config_type=HealthCheck,
    plan_type=HealthCheckPlan,
    build_plan=_build_plan,
    # The worker registers its factory under NAME (health_check_filter.pyx).
    factory=None,
    check=health_check_config.check,
    terminal=False,
    proto_fields=health_check_config.FIELD_NUMBERS,
))
