"""The base of every config message, and the scalar kinds its fields use.

Each field's ``Meta(extra=...)`` tells the normaliser how to read its value
from a document (see ``schema.py``); msgspec enforces the bounds.
"""
from typing import Annotated, Any, ClassVar, FrozenSet, List, Mapping, Optional

import msgspec
from msgspec import Meta

# --- scalar kinds --------------------------------------------------------------
# The loader reads Meta.extra to know how to parse a value; msgspec enforces the
# numeric bounds (proto uint32 ranges and Envoy's PGV rules).

UINT32_MAX = 2**32 - 1

#: google.protobuf.Duration as float seconds.
Duration = Annotated[float, Meta(ge=0, extra={"kind": "duration"})]
#: google.protobuf.UInt32Value (accepted as a plain number or ``{"value": n}``).
UInt32Value = Annotated[int, Meta(ge=0, le=UINT32_MAX, extra={"wrapper": True})]
#: A port number.
Port = Annotated[int, Meta(ge=0, le=65535)]
#: envoy.type.v3.Percent: ``{"value": <double>}`` as a float percentage.
Percent = Annotated[float, Meta(ge=0, le=100, extra={"kind": "percent"})]
#: A string Envoy requires to be non-empty (PGV ``min_len: 1``).
NonEmptyStr = Annotated[str, Meta(min_length=1)]


def enum(name: str) -> Any:
    """A proto enum field, held as its canonical name (see ENUMS)."""
    return Annotated[str, Meta(extra={"enum": name})]


#: Proto enums in scope: full name -> {value name: number}. Envoy accepts a name
#: (case-insensitively) or a number; numbers outside the enum are rejected.
ENUMS: Mapping[str, Mapping[str, int]] = {
    "envoy.config.core.v3.SocketAddress.Protocol": {"TCP": 0, "UDP": 1},
    "envoy.config.cluster.v3.Cluster.DiscoveryType": {
        "STATIC": 0,
        "STRICT_DNS": 1,
        "LOGICAL_DNS": 2,
        "EDS": 3,
        "ORIGINAL_DST": 4,
    },
    "envoy.config.cluster.v3.Cluster.LbPolicy": {
        "ROUND_ROBIN": 0,
        "LEAST_REQUEST": 1,
        "RING_HASH": 2,
        "RANDOM": 3,
        "MAGLEV": 5,
        "CLUSTER_PROVIDED": 6,
        "LOAD_BALANCING_POLICY_CONFIG": 7,
    },
    "envoy.config.listener.v3.FilterChainMatch.ConnectionSourceType": {
        "ANY": 0,
        "SAME_IP_OR_LOOPBACK": 1,
        "EXTERNAL": 2,
    },
    "envoy.config.core.v3.RoutingPriority": {"DEFAULT": 0, "HIGH": 1},
    "envoy.config.core.v3.HealthStatus": {
        "UNKNOWN": 0,
        "HEALTHY": 1,
        "UNHEALTHY": 2,
        "DRAINING": 3,
        "TIMEOUT": 4,
        "DEGRADED": 5,
    },
}


# Enum-typed fields.
Protocol = enum("envoy.config.core.v3.SocketAddress.Protocol")
DiscoveryType = enum("envoy.config.cluster.v3.Cluster.DiscoveryType")
LbPolicy = enum("envoy.config.cluster.v3.Cluster.LbPolicy")
ConnectionSourceType = enum("envoy.config.listener.v3.FilterChainMatch.ConnectionSourceType")
RoutingPriority = enum("envoy.config.core.v3.RoutingPriority")
HealthStatus = enum("envoy.config.core.v3.HealthStatus")


def names(text: str) -> FrozenSet[str]:
    """A message's field names, written as one space-separated string."""
    return frozenset(text.split())


class Message(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every config message (see the module docstring).

    Subclasses repeat ``kw_only=True``: msgspec applies it per class, and it lets
    a required field follow defaulted ones in Envoy's field order.
    """

    ENVOY_TYPE: ClassVar[str] = ""
    ENVOY_FIELDS: ClassVar[FrozenSet[str]] = frozenset()
    IGNORED: ClassVar[Mapping[str, Optional[str]]] = {}


def one_of(message: Any, names: str) -> List[str]:
    """Which of the (space-separated) oneof members ``names`` are set."""
    return [name for name in names.split() if getattr(message, name) is not None]
