"""The route table plan: a RouteConfiguration resolved for a worker, which
compiles it once into C-level structures (ext/router/)."""
from __future__ import annotations

from typing import List

from envoy_fast.extensions.registry import PlanStruct


class VirtualHostPlan(PlanStruct, kw_only=True):
    name: str
    domains: List[str]


class RouteTablePlan(PlanStruct, kw_only=True):
    """One route configuration (inline ``route_config`` of an HCM)."""
    name: str = ""
    virtual_hosts: List[VirtualHostPlan] = []
