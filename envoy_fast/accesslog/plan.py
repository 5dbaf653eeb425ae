"""The access-log part of the worker plan: frozen msgspec Structs.

Built in main (`envoy_fast.accesslog.build_access_log_plan`, from the parsed
formats of `envoy_fast.accesslog.format`), carried in a filter's plan
(``TcpProxyPlan.access_log``) and read by attribute in a worker
(`AccessLogManager.create`, `compile_format`). Like the rest of the plan they
travel as msgpack (`envoy_fast.server.plan_types.encode` / ``decode``) and come
back equal: every sequence is a list, every record a Struct.

A format is a union tagged ``kind``: `TextFormatPlan` (its parts: literal
strings and `FormatOperator`\\ s) or `JsonFormatPlan` (a tree of json nodes,
themselves a union tagged ``kind``: ``lit``, ``fmt``, ``obj``, ``list``).
"""
from __future__ import annotations

from typing import Dict, List, Literal, Optional, Union

from envoy_fast.extensions.registry import PlanStruct

__all__ = [
    "AccessLogFormatPlan",
    "AccessLogPlan",
    "AnyAccessLogFormatPlan",
    "AnyJsonNode",
    "FormatOperator",
    "JsonFormatPlan",
    "JsonFormatted",
    "JsonList",
    "JsonLiteral",
    "JsonMember",
    "JsonNode",
    "JsonObject",
    "TextFormatPlan",
    "TextPart",
]


class FormatOperator(PlanStruct, kw_only=True):
    """One ``%COMMAND(param):max_length%`` of a format."""
    command: str
    param: Optional[str] = None         # None: none given (or empty)
    max_length: Optional[int] = None    # None: no truncation


#: An item of a text format: a literal string or an operator.
TextPart = Union[str, FormatOperator]


# --- json_format nodes ---------------------------------------------------------

class JsonNode(PlanStruct, tag_field="kind", kw_only=True):
    """Base of a json_format node; the subclasses are the union members."""


class JsonLiteral(JsonNode, tag="lit", kw_only=True):
    """A value printed as configured (a number, bool, null, or a string
    without operators)."""
    value: Union[None, bool, int, float, str]


class JsonFormatted(JsonNode, tag="fmt", kw_only=True):
    """A string value with operators (one operator alone keeps its type)."""
    parts: List[TextPart]


class JsonMember(PlanStruct, kw_only=True):
    key: str
    value: AnyJsonNode


class JsonObject(JsonNode, tag="obj", kw_only=True):
    """A struct; its members sorted by key, as Envoy prints them."""
    members: List[JsonMember] = []


class JsonList(JsonNode, tag="list", kw_only=True):
    items: List[AnyJsonNode] = []


AnyJsonNode = Union[JsonLiteral, JsonFormatted, JsonObject, JsonList]


# --- formats and loggers -------------------------------------------------------

class AccessLogFormatPlan(PlanStruct, tag_field="kind", kw_only=True):
    """Base of a log format; the subclasses are the union members."""
    omit_empty_values: bool = False


class TextFormatPlan(AccessLogFormatPlan, tag="text", kw_only=True):
    """A text format (``text_format``, ``text_format_source``, ``format``)."""
    parts: List[TextPart]


class JsonFormatPlan(AccessLogFormatPlan, tag="json", kw_only=True):
    """A json format (``json_format``, ``typed_json_format``)."""
    template: AnyJsonNode


AnyAccessLogFormatPlan = Union[TextFormatPlan, JsonFormatPlan]


class AccessLogPlan(PlanStruct, kw_only=True):
    """One configured access log of a filter."""
    name: str = ""
    sink: Literal["file", "stdout", "stderr"]
    path: Optional[str] = None          # the file (sink "file" only)
    format: AnyAccessLogFormatPlan
    # cluster name -> alt_stat_name (only those that have one), which
    # %UPSTREAM_CLUSTER% prints as Envoy does.
    cluster_alt_names: Dict[str, str] = {}

    def __post_init__(self) -> None:
        if (self.sink == "file") != (self.path is not None):
            raise ValueError(f"access log {self.name!r}: a path is for (and only for) sink 'file'")
