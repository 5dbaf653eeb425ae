"""The route table plan: a RouteConfiguration resolved for a worker, which
compiles it once into C-level structures (ext/router/)."""
from __future__ import annotations

from typing import Any, List

from envoy_fast.extensions.registry import PlanStruct


class VirtualHostPlan(PlanStruct, kw_only=True):
    name: str
    domains: List[str]


class RouteTablePlan(PlanStruct, kw_only=True):
    """One route configuration (inline ``route_config`` of an HCM)."""
    name: str = ""
    virtual_hosts: List[VirtualHostPlan] = []


def build_route_table_plan(route_config: Any, ctx: Any) -> RouteTablePlan:
    """The plan of an HCM's inline ``route_config`` (PLACEHOLDER in the
    http_connection_manager config branch: name and virtual host names and
    domains only; the route table's own builder replaces it)."""
    if route_config is None:
        return RouteTablePlan()
    hosts = [VirtualHostPlan(name=str(vh.get("name", "")), domains=list(vh.get("domains", [])))
             for vh in route_config.virtual_hosts if isinstance(vh, dict)]
    return RouteTablePlan(name=route_config.name, virtual_hosts=hosts)
