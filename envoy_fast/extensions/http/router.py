"""The router's registry record (envoy.filters.http.router): terminal, last in
``http_filters``; its plan is `RouterPlan` (http_connection_manager_plan)."""
from __future__ import annotations

from envoy_fast.extensions.http import router_config
from envoy_fast.extensions.http.router_config import Router
from envoy_fast.extensions.network.http_connection_manager_plan import ROUTER_NAME, RouterPlan
from envoy_fast.extensions.registry import HttpFilterRecord, PlanContext, register_http_filter

NAME = ROUTER_NAME


def _build_plan(config: Router, ctx: PlanContext) -> RouterPlan:
    return RouterPlan(suppress_envoy_headers=config.suppress_envoy_headers)


RECORD = register_http_filter(HttpFilterRecord(
    name=NAME,
    config_type=Router,
    plan_type=RouterPlan,
    build_plan=_build_plan,
    # The worker builds the router from the HCM's plan (RouterPlan); it has
    # no factory of its own to import.
    factory=None,
    check=router_config.check,
    terminal=True,
    proto_fields=router_config.FIELD_NUMBERS,
))
