"""Route configuration messages (``envoy.config.route.v3``) and the checks
Envoy makes on them when it loads a config.

The http_connection_manager's ``route_config`` is a `RouteConfiguration`;
`check_route_config` reports what Envoy refuses (with the YAML path) through
the loader's checker, and `envoy_fast.router.plan.build_route_table_plan`
turns a checked one into the plan a worker compiles (ext/http/router/).

``ENVOY_FIELDS`` lists every field of the Envoy 1.40 message (from the
descriptors embedded in the envoy binary): a field Envoy has and envoy_fast
does not model is reported as "not supported". Imports no Cython.
"""
from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Annotated, Any, Dict, List, Optional

from msgspec import Meta

from envoy_fast.config import base as _base
from envoy_fast.config.base import UINT32_MAX, Duration, NonEmptyStr, Port, enum
from envoy_fast.config.base import Message as _Message
from envoy_fast.config.base import names as _names
from envoy_fast.config.base import one_of
from envoy_fast.config.errors import ConfigError

__all__ = [
    "RouteConfiguration", "VirtualHost", "Route", "RouteMatch", "HeaderMatcher",
    "QueryParameterMatcher", "StringMatcher", "RegexMatcher", "RegexMatchAndSubstitute",
    "Int64Range", "RouteAction", "WeightedCluster", "ClusterWeight", "RetryPolicy",
    "RetryBackOff", "UpgradeConfig", "RedirectAction", "DirectResponseAction", "DataSource",
    "HeaderValueOption", "HeaderValue", "check_route_config", "FIELD_NUMBERS",
    "SUPPORTED_FORMAT_COMMANDS", "REDIRECT_CODES",
]

# Enums of these messages (the loader reads names and numbers from ENUMS).
_ENUMS = {
    "envoy.config.core.v3.HeaderValueOption.HeaderAppendAction": {
        "APPEND_IF_EXISTS_OR_ADD": 0,
        "ADD_IF_ABSENT": 1,
        "OVERWRITE_IF_EXISTS_OR_ADD": 2,
        "OVERWRITE_IF_EXISTS": 3,
    },
    "envoy.config.route.v3.RedirectAction.RedirectResponseCode": {
        "MOVED_PERMANENTLY": 0,
        "FOUND": 1,
        "SEE_OTHER": 2,
        "TEMPORARY_REDIRECT": 3,
        "PERMANENT_REDIRECT": 4,
    },
    "envoy.config.route.v3.RouteAction.ClusterNotFoundResponseCode": {
        "SERVICE_UNAVAILABLE": 0,
        "NOT_FOUND": 1,
        "INTERNAL_SERVER_ERROR": 2,
    },
    "envoy.config.route.v3.VirtualHost.TlsRequirementType": {"NONE": 0, "EXTERNAL_ONLY": 1, "ALL": 2},
}
_base.ENUMS.update(_ENUMS)  # type: ignore[attr-defined]  (a dict: extended here, not in base)

HeaderAppendAction = enum("envoy.config.core.v3.HeaderValueOption.HeaderAppendAction")
RedirectResponseCode = enum("envoy.config.route.v3.RedirectAction.RedirectResponseCode")
ClusterNotFoundResponseCode = enum("envoy.config.route.v3.RouteAction.ClusterNotFoundResponseCode")
TlsRequirementType = enum("envoy.config.route.v3.VirtualHost.TlsRequirementType")

#: RedirectResponseCode -> status.
REDIRECT_CODES = {"MOVED_PERMANENTLY": 301, "FOUND": 302, "SEE_OTHER": 303,
                  "TEMPORARY_REDIRECT": 307, "PERMANENT_REDIRECT": 308}

UInt32 = Annotated[int, Meta(ge=0, le=UINT32_MAX)]
BoolValue = Annotated[bool, Meta(extra={"wrapper": True})]
#: PGV's "well_known_regex HTTP_HEADER_VALUE strict: false": no NUL, CR or LF.
HeaderValueStr = Annotated[str, Meta(pattern=r"^[^\x00\n\r]*$")]
#: PGV's "well_known_regex HTTP_HEADER_NAME strict: false".
HeaderNameStr = Annotated[str, Meta(pattern=r"^[^\x00\n\r]*$")]
NonEmptyHeaderNameStr = Annotated[str, Meta(min_length=1, pattern=r"^[^\x00\n\r]*$")]


# --- matchers (envoy.type.matcher.v3) --------------------------------------------


class RegexMatcher(_Message, kw_only=True):
    """envoy.type.matcher.v3.RegexMatcher (RE2; ``google_re2`` is the only engine)."""

    ENVOY_TYPE = "envoy.type.matcher.v3.RegexMatcher"
    ENVOY_FIELDS = _names("google_re2 regex")
    IGNORED = {"google_re2": None}   # deprecated engine selector; RE2 is what runs

    regex: NonEmptyStr


class RegexMatchAndSubstitute(_Message, kw_only=True):
    """envoy.type.matcher.v3.RegexMatchAndSubstitute."""

    ENVOY_TYPE = "envoy.type.matcher.v3.RegexMatchAndSubstitute"
    ENVOY_FIELDS = _names("pattern substitution")

    pattern: RegexMatcher
    substitution: HeaderValueStr = ""


class StringMatcher(_Message, kw_only=True):
    """envoy.type.matcher.v3.StringMatcher: exactly one pattern."""

    ENVOY_TYPE = "envoy.type.matcher.v3.StringMatcher"
    ENVOY_FIELDS = _names("exact prefix suffix safe_regex contains custom ignore_case")

    exact: Optional[str] = None
    prefix: Optional[NonEmptyStr] = None
    suffix: Optional[NonEmptyStr] = None
    safe_regex: Optional[RegexMatcher] = None
    contains: Optional[NonEmptyStr] = None
    ignore_case: bool = False


class Int64Range(_Message, kw_only=True):
    """envoy.type.v3.Int64Range: [start, end)."""

    ENVOY_TYPE = "envoy.type.v3.Int64Range"
    ENVOY_FIELDS = _names("start end")

    start: int = 0
    end: int = 0


class HeaderMatcher(_Message, kw_only=True):
    """envoy.config.route.v3.HeaderMatcher; no specifier means present."""

    ENVOY_TYPE = "envoy.config.route.v3.HeaderMatcher"
    ENVOY_FIELDS = _names(
        "name exact_match safe_regex_match range_match present_match prefix_match suffix_match"
        " contains_match string_match invert_match treat_missing_header_as_empty"
    )

    name: NonEmptyHeaderNameStr
    exact_match: Optional[str] = None
    safe_regex_match: Optional[RegexMatcher] = None
    range_match: Optional[Int64Range] = None
    present_match: Optional[bool] = None
    prefix_match: Optional[NonEmptyStr] = None
    suffix_match: Optional[NonEmptyStr] = None
    contains_match: Optional[NonEmptyStr] = None
    string_match: Optional[StringMatcher] = None
    invert_match: bool = False
    treat_missing_header_as_empty: bool = False


class QueryParameterMatcher(_Message, kw_only=True):
    """envoy.config.route.v3.QueryParameterMatcher; neither specifier means present."""

    ENVOY_TYPE = "envoy.config.route.v3.QueryParameterMatcher"
    ENVOY_FIELDS = _names("name string_match present_match")

    name: Annotated[str, Meta(min_length=1, max_length=1024)]
    string_match: Optional[StringMatcher] = None
    present_match: Optional[bool] = None


# --- header mutations (envoy.config.core.v3) -----------------------------------------


class HeaderValue(_Message, kw_only=True):
    """envoy.config.core.v3.HeaderValue; ``value`` is a format string."""

    ENVOY_TYPE = "envoy.config.core.v3.HeaderValue"
    ENVOY_FIELDS = _names("key value raw_value")

    key: Annotated[str, Meta(min_length=1, max_length=16384, pattern=r"^[^\x00\n\r]*$")]
    value: Annotated[str, Meta(max_length=16384, pattern=r"^[^\x00\n\r]*$")] = ""


class HeaderValueOption(_Message, kw_only=True):
    """envoy.config.core.v3.HeaderValueOption."""

    ENVOY_TYPE = "envoy.config.core.v3.HeaderValueOption"
    ENVOY_FIELDS = _names("header append append_action keep_empty_value")

    header: HeaderValue
    append: Optional[BoolValue] = None          # deprecated: false = overwrite
    append_action: HeaderAppendAction = "APPEND_IF_EXISTS_OR_ADD"
    keep_empty_value: bool = False


class DataSource(_Message, kw_only=True):
    """envoy.config.core.v3.DataSource of a direct response body (read at load)."""

    ENVOY_TYPE = "envoy.config.core.v3.DataSource"
    ENVOY_FIELDS = _names("filename inline_bytes inline_string environment_variable watched_directory")

    filename: Optional[NonEmptyStr] = None
    inline_bytes: Optional[str] = None          # base64, as protobuf's JSON mapping writes bytes
    inline_string: Optional[str] = None
    environment_variable: Optional[NonEmptyStr] = None


# --- route actions -----------------------------------------------------------------------


class RetryBackOff(_Message, kw_only=True):
    """envoy.config.route.v3.RetryPolicy.RetryBackOff."""

    ENVOY_TYPE = "envoy.config.route.v3.RetryPolicy.RetryBackOff"
    ENVOY_FIELDS = _names("base_interval max_interval")

    base_interval: Duration
    max_interval: Optional[Duration] = None


PREVIOUS_HOSTS_TYPE = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"


class RetryHostPredicate(_Message, kw_only=True):
    """envoy.config.route.v3.RetryPolicy.RetryHostPredicate (envoy_fast has
    envoy.retry_host_predicates.previous_hosts)."""

    ENVOY_TYPE = "envoy.config.route.v3.RetryPolicy.RetryHostPredicate"
    ENVOY_FIELDS = _names("name typed_config")

    name: str = ""
    typed_config: Dict[str, Any] = {}


class RetryPolicy(_Message, kw_only=True):
    """envoy.config.route.v3.RetryPolicy."""

    ENVOY_TYPE = "envoy.config.route.v3.RetryPolicy"
    ENVOY_FIELDS = _names(
        "retry_on num_retries per_try_timeout per_try_idle_timeout retry_priority"
        " retry_host_predicate retry_options_predicates host_selection_retry_max_attempts"
        " retriable_status_codes retry_back_off rate_limited_retry_back_off retriable_headers"
        " retriable_request_headers refresh_cluster_on_retry"
    )

    retry_on: str = ""
    num_retries: Annotated[int, Meta(ge=0, le=UINT32_MAX, extra={"wrapper": True})] = 1
    per_try_timeout: Optional[Duration] = None
    retriable_status_codes: List[UInt32] = []
    retry_back_off: Optional[RetryBackOff] = None
    retry_host_predicate: List[RetryHostPredicate] = []
    host_selection_retry_max_attempts: Annotated[int, Meta(ge=-2**63, le=2**63 - 1)] = 0


class UpgradeConfig(_Message, kw_only=True):
    """envoy.config.route.v3.RouteAction.UpgradeConfig."""

    ENVOY_TYPE = "envoy.config.route.v3.RouteAction.UpgradeConfig"
    ENVOY_FIELDS = _names("upgrade_type enabled connect_config")

    upgrade_type: Annotated[str, Meta(min_length=1, pattern=r"^[^\x00\n\r]*$")]
    enabled: BoolValue = True


class ClusterWeight(_Message, kw_only=True):
    """envoy.config.route.v3.WeightedCluster.ClusterWeight."""

    ENVOY_TYPE = "envoy.config.route.v3.WeightedCluster.ClusterWeight"
    ENVOY_FIELDS = _names(
        "name cluster_header weight metadata_match request_headers_to_add request_headers_to_remove"
        " response_headers_to_add response_headers_to_remove typed_per_filter_config host_rewrite_literal"
    )

    name: NonEmptyStr
    weight: Optional[Annotated[int, Meta(ge=0, le=UINT32_MAX, extra={"wrapper": True})]] = None   # required by Envoy
    request_headers_to_add: Annotated[List[HeaderValueOption], Meta(max_length=1000)] = []
    request_headers_to_remove: List[HeaderNameStr] = []
    response_headers_to_add: Annotated[List[HeaderValueOption], Meta(max_length=1000)] = []
    response_headers_to_remove: List[HeaderNameStr] = []
    host_rewrite_literal: Optional[HeaderValueStr] = None


class WeightedCluster(_Message, kw_only=True):
    """envoy.config.route.v3.WeightedCluster (``total_weight`` is deprecated
    and not checked by Envoy 1.40: the sum of the weights is what counts)."""

    ENVOY_TYPE = "envoy.config.route.v3.WeightedCluster"
    ENVOY_FIELDS = _names("clusters total_weight runtime_key_prefix header_name use_hash_policy")
    IGNORED = {"total_weight": None}

    clusters: Annotated[List[ClusterWeight], Meta(min_length=1)]


class RouteAction(_Message, kw_only=True):
    """envoy.config.route.v3.RouteAction: forward upstream."""

    ENVOY_TYPE = "envoy.config.route.v3.RouteAction"
    ENVOY_FIELDS = _names(
        "cluster cluster_header weighted_clusters cluster_specifier_plugin inline_cluster_specifier_plugin"
        " cluster_not_found_response_code metadata_match prefix_rewrite regex_rewrite path_rewrite_policy"
        " path_rewrite host_rewrite_literal auto_host_rewrite host_rewrite_header host_rewrite_path_regex"
        " host_rewrite append_x_forwarded_host timeout idle_timeout flush_timeout early_data_policy"
        " retry_policy retry_policy_typed_config request_mirror_policies priority rate_limits"
        " include_vh_rate_limits hash_policy cors max_grpc_timeout grpc_timeout_offset upgrade_configs"
        " internal_redirect_policy internal_redirect_action max_internal_redirects hedge_policy"
        " max_stream_duration"
    )

    cluster: Optional[NonEmptyStr] = None
    cluster_header: Optional[NonEmptyHeaderNameStr] = None
    weighted_clusters: Optional[WeightedCluster] = None
    cluster_not_found_response_code: ClusterNotFoundResponseCode = "SERVICE_UNAVAILABLE"
    prefix_rewrite: Optional[HeaderValueStr] = None
    regex_rewrite: Optional[RegexMatchAndSubstitute] = None
    host_rewrite_literal: Optional[HeaderValueStr] = None
    auto_host_rewrite: Optional[BoolValue] = None
    append_x_forwarded_host: bool = False
    timeout: Optional[Duration] = None          # None: 15 s
    idle_timeout: Optional[Duration] = None     # None: the HCM's stream_idle_timeout
    retry_policy: Optional[RetryPolicy] = None
    upgrade_configs: List[UpgradeConfig] = []


class RedirectAction(_Message, kw_only=True):
    """envoy.config.route.v3.RedirectAction."""

    ENVOY_TYPE = "envoy.config.route.v3.RedirectAction"
    ENVOY_FIELDS = _names(
        "https_redirect scheme_redirect host_redirect port_redirect path_redirect prefix_rewrite"
        " regex_rewrite path_rewrite response_code strip_query"
    )

    https_redirect: Optional[bool] = None
    scheme_redirect: Optional[str] = None
    host_redirect: HeaderValueStr = ""
    port_redirect: UInt32 = 0
    path_redirect: Optional[HeaderValueStr] = None
    prefix_rewrite: Optional[HeaderValueStr] = None
    regex_rewrite: Optional[RegexMatchAndSubstitute] = None
    response_code: RedirectResponseCode = "MOVED_PERMANENTLY"
    strip_query: bool = False


class DirectResponseAction(_Message, kw_only=True):
    """envoy.config.route.v3.DirectResponseAction (status in [200, 600))."""

    ENVOY_TYPE = "envoy.config.route.v3.DirectResponseAction"
    ENVOY_FIELDS = _names("status body body_format")

    status: Annotated[int, Meta(ge=200, lt=600)]
    body: Optional[DataSource] = None


# --- routes, virtual hosts, route configuration ------------------------------------------


class RouteMatch(_Message, kw_only=True):
    """envoy.config.route.v3.RouteMatch: one path specifier plus the optional
    header and query parameter matchers (all must match)."""

    ENVOY_TYPE = "envoy.config.route.v3.RouteMatch"
    ENVOY_FIELDS = _names(
        "prefix path safe_regex connect_matcher path_separated_prefix path_match_policy case_sensitive"
        " runtime_fraction headers query_parameters cookies grpc tls_context dynamic_metadata filter_state"
    )

    prefix: Optional[str] = None
    path: Optional[str] = None
    safe_regex: Optional[RegexMatcher] = None
    path_separated_prefix: Optional[Annotated[str, Meta(pattern=r"^[^?#]+[^?#/]$")]] = None
    case_sensitive: BoolValue = True
    headers: List[HeaderMatcher] = []
    query_parameters: List[QueryParameterMatcher] = []


class Metadata(_Message, kw_only=True):
    """envoy.config.core.v3.Metadata on a route or virtual host: read by
    filters envoy_fast does not have, so it is kept (config dump) and acts on
    nothing, as in an Envoy without such filters."""

    ENVOY_TYPE = "envoy.config.core.v3.Metadata"
    ENVOY_FIELDS = _names("filter_metadata typed_filter_metadata")

    filter_metadata: Dict[str, Dict[str, Any]] = {}
    typed_filter_metadata: Dict[str, Dict[str, Any]] = {}


class Decorator(_Message, kw_only=True):
    """envoy.config.route.v3.Decorator: names the route's tracing span. The
    HCM's `tracing` is not implemented, so it acts on nothing (Envoy, without
    tracing, neither names a span nor adds x-envoy-decorator-operation)."""

    ENVOY_TYPE = "envoy.config.route.v3.Decorator"
    ENVOY_FIELDS = _names("operation propagate")

    operation: NonEmptyStr
    propagate: Optional[BoolValue] = None


class Route(_Message, kw_only=True):
    """envoy.config.route.v3.Route: a match and one action."""

    ENVOY_TYPE = "envoy.config.route.v3.Route"
    ENVOY_FIELDS = _names(
        "name match route redirect direct_response filter_action non_forwarding_action metadata"
        " decorator typed_per_filter_config request_headers_to_add request_headers_to_remove"
        " response_headers_to_add response_headers_to_remove tracing per_request_buffer_limit_bytes"
        " stat_prefix request_body_buffer_limit route_specifiers"
    )

    name: str = ""
    match: RouteMatch
    metadata: Optional[Metadata] = None
    decorator: Optional[Decorator] = None
    route: Optional[RouteAction] = None
    redirect: Optional[RedirectAction] = None
    direct_response: Optional[DirectResponseAction] = None
    request_headers_to_add: Annotated[List[HeaderValueOption], Meta(max_length=1000)] = []
    request_headers_to_remove: List[NonEmptyHeaderNameStr] = []
    response_headers_to_add: Annotated[List[HeaderValueOption], Meta(max_length=1000)] = []
    response_headers_to_remove: List[NonEmptyHeaderNameStr] = []


class VirtualHost(_Message, kw_only=True):
    """envoy.config.route.v3.VirtualHost."""

    ENVOY_TYPE = "envoy.config.route.v3.VirtualHost"
    ENVOY_FIELDS = _names(
        "name domains routes matcher require_tls virtual_clusters rate_limits request_headers_to_add"
        " request_headers_to_remove response_headers_to_add response_headers_to_remove cors"
        " typed_per_filter_config include_request_attempt_count include_attempt_count_in_response"
        " retry_policy retry_policy_typed_config hedge_policy include_is_timeout_retry_header"
        " per_request_buffer_limit_bytes request_body_buffer_limit request_mirror_policies metadata"
        " route_specifiers"
    )

    name: NonEmptyStr
    domains: Annotated[List[Annotated[str, Meta(pattern=r"^[^\x00\n\r]*$")]], Meta(min_length=1)]
    routes: List[Route] = []
    metadata: Optional[Metadata] = None
    request_headers_to_add: Annotated[List[HeaderValueOption], Meta(max_length=1000)] = []
    request_headers_to_remove: List[NonEmptyHeaderNameStr] = []
    response_headers_to_add: Annotated[List[HeaderValueOption], Meta(max_length=1000)] = []
    response_headers_to_remove: List[NonEmptyHeaderNameStr] = []
    retry_policy: Optional[RetryPolicy] = None
    include_request_attempt_count: bool = False
    include_attempt_count_in_response: bool = False
    require_tls: TlsRequirementType = "NONE"


class RouteConfiguration(_Message, kw_only=True):
    """envoy.config.route.v3.RouteConfiguration (an HCM's inline route_config)."""

    ENVOY_TYPE = "envoy.config.route.v3.RouteConfiguration"
    ENVOY_FIELDS = _names(
        "name virtual_hosts vhds internal_only_headers response_headers_to_add response_headers_to_remove"
        " request_headers_to_add request_headers_to_remove most_specific_header_mutations_wins"
        " validate_clusters max_direct_response_body_size_bytes cluster_specifier_plugins"
        " request_mirror_policies ignore_port_in_host_matching vhost_header"
        " ignore_path_parameters_in_path_matching typed_per_filter_config metadata route_specifiers"
    )

    name: str = ""
    virtual_hosts: List[VirtualHost] = []
    internal_only_headers: List[HeaderNameStr] = []
    response_headers_to_add: Annotated[List[HeaderValueOption], Meta(max_length=1000)] = []
    response_headers_to_remove: List[HeaderNameStr] = []
    request_headers_to_add: Annotated[List[HeaderValueOption], Meta(max_length=1000)] = []
    request_headers_to_remove: List[HeaderNameStr] = []
    most_specific_header_mutations_wins: bool = False
    validate_clusters: BoolValue = True         # an inline route_config's default
    max_direct_response_body_size_bytes: Annotated[int, Meta(ge=0, le=UINT32_MAX, extra={"wrapper": True})] = 4096
    ignore_port_in_host_matching: bool = False


# --- checks ---------------------------------------------------------------------------------

#: Format commands a header value may use in envoy_fast (Envoy allows every
#: access log command; the others are refused as not supported).
SUPPORTED_FORMAT_COMMANDS = frozenset((
    "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
    "UPSTREAM_REMOTE_ADDRESS", "PROTOCOL", "HOSTNAME", "START_TIME", "REQ",
))

_RETRY_ON = ("5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx",
             "retriable-status-codes", "refused-stream", "reset-before-request", "envoy-ratelimited",
             "http3-post-connect-failure")


def _regex(checker: Any, pattern: str, path: str) -> None:
    from envoy_fast.regex import RegexError, compile as re2_compile
    try:
        re2_compile(pattern)
    except RegexError as err:
        checker.fail(ConfigError(str(err), path, hint="safe_regex is RE2 syntax: no look-arounds or backreferences"))


def _string_matcher(checker: Any, matcher: StringMatcher, path: str) -> None:
    if matcher.safe_regex is not None:
        _regex(checker, matcher.safe_regex.regex, f"{path}.safe_regex.regex")


def parse_header_format(value: str):
    """The parts of a header value format (str literals and FormatOperator);
    raises accesslog.format.FormatError with Envoy's message."""
    from envoy_fast.accesslog.format import parse_text
    return parse_text(value)


def _header_options(checker: Any, options: List[HeaderValueOption], path: str) -> None:
    from envoy_fast.accesslog.format import FormatError
    for i, option in enumerate(options):
        opath = f"{path}[{i}]"
        key = option.header.key.lower()
        if key.startswith(":") or key == "host":
            checker.fail(ConfigError(":-prefixed or host headers may not be modified", f"{opath}.header.key",
                                     hint="set the host with the route's host_rewrite_literal"))
        if option.append is not None and option.append_action != "APPEND_IF_EXISTS_OR_ADD":
            checker.fail(ConfigError("Both append and append_action are set and it's not allowed", opath,
                                     hint="keep only append_action (append is deprecated)"))
        try:
            parts = parse_header_format(option.header.value)
        except FormatError as err:
            checker.fail(ConfigError(str(err), f"{opath}.header.value", hint="write a literal % as %%"))
            continue
        for part in parts:
            if not isinstance(part, str) and part.command not in SUPPORTED_FORMAT_COMMANDS:
                checker.fail(ConfigError(
                    f"not supported by envoy_fast (%{part.command}% in a header value)", f"{opath}.header.value",
                    hint="supported: " + ", ".join("%" + c + "%" for c in sorted(SUPPORTED_FORMAT_COMMANDS))))


def _header_removals(checker: Any, names: List[str], path: str) -> None:
    for i, name in enumerate(names):
        name = name.lower()
        if name.startswith(":") or name == "host":
            checker.fail(ConfigError(":-prefixed or host headers may not be removed", f"{path}[{i}]"))


def _mutations(checker: Any, message: Any, path: str) -> None:
    _header_options(checker, message.request_headers_to_add, f"{path}.request_headers_to_add")
    _header_options(checker, message.response_headers_to_add, f"{path}.response_headers_to_add")
    _header_removals(checker, message.request_headers_to_remove, f"{path}.request_headers_to_remove")
    _header_removals(checker, message.response_headers_to_remove, f"{path}.response_headers_to_remove")


def _exactly_one(checker: Any, message: Any, names: str, path: str, what: str) -> Optional[str]:
    """The one set member of a oneof; a config error when none or several are."""
    chosen = one_of(message, names)
    if len(chosen) > 1:
        checker.fail(ConfigError(f"'{chosen[1]}' has already been set (either directly or as part of a oneof)"
                                 f" ({what}: {', '.join(chosen)})", path,
                                 hint=f"keep one of `{'`, `'.join(chosen)}`"))
    elif not chosen:
        checker.fail(ConfigError(f'field: "{what}", reason: is required', path,
                                 hint="set one of " + ", ".join(f"`{n}`" for n in names.split())))
        return None
    return chosen[0]


def _retry_policy(checker: Any, policy: Optional[RetryPolicy], path: str) -> None:
    if policy is None:
        return
    if policy.per_try_timeout is not None and policy.per_try_timeout < 0:
        checker.fail(ConfigError("per_try_timeout must not be negative", f"{path}.per_try_timeout"))
    back_off = policy.retry_back_off
    if back_off is not None:
        if back_off.base_interval <= 0:
            checker.fail(ConfigError("value must be greater than 0s", f"{path}.retry_back_off.base_interval"))
        if back_off.max_interval is not None:
            if back_off.max_interval <= 0:
                checker.fail(ConfigError("value must be greater than 0s", f"{path}.retry_back_off.max_interval"))
            elif back_off.max_interval < back_off.base_interval:
                checker.fail(ConfigError("retry_policy.max_interval must greater than or equal to the base_interval",
                                         f"{path}.retry_back_off.max_interval"))
    for i, pred in enumerate(policy.retry_host_predicate):
        if pred.typed_config.get("@type") != PREVIOUS_HOSTS_TYPE:
            checker.fail(ConfigError(
                f"not supported by envoy_fast (retry host predicate '{pred.name or pred.typed_config.get('@type')}')",
                f"{path}.retry_host_predicate[{i}]", hint="supported: envoy.retry_host_predicates.previous_hosts"))
    # Envoy ignores retry_on conditions it does not know; envoy_fast refuses
    # the ones it does not implement (grpc conditions, retriable-headers...).
    for i, cond in enumerate(c.strip() for c in policy.retry_on.split(",")):
        if cond and cond not in _RETRY_ON:
            checker.fail(ConfigError(f"not supported by envoy_fast (retry_on '{cond}')", f"{path}.retry_on",
                                     hint="supported: " + ", ".join(_RETRY_ON)))


def direct_response_body(body: Optional[DataSource]) -> bytes:
    """The bytes of a direct response body (a file is read now, as Envoy does at load)."""
    if body is None:
        return b""
    if body.inline_string is not None:
        return body.inline_string.encode()
    if body.inline_bytes is not None:
        return base64.b64decode(body.inline_bytes, validate=True)
    if body.filename is not None:
        with open(body.filename, "rb") as f:
            return f.read()
    if body.environment_variable is not None:
        value = os.environ.get(body.environment_variable)
        if value is None:
            raise ValueError(f"Environment variable doesn't exist: {body.environment_variable}")
        return value.encode()
    return b""


def _direct_response(checker: Any, action: DirectResponseAction, max_body: int, path: str) -> None:
    body = action.body
    if body is None:
        return
    chosen = one_of(body, "filename inline_bytes inline_string environment_variable")
    if len(chosen) != 1:
        _exactly_one(checker, body, "filename inline_bytes inline_string environment_variable",
                     f"{path}.body", "specifier")
        return
    where = f"{path}.body.{chosen[0]}"
    try:
        data = direct_response_body(body)
    except FileNotFoundError:
        checker.fail(ConfigError(f"file {body.filename} does not exist", where))
        return
    except OSError as err:
        checker.fail(ConfigError(f"cannot read {body.filename}: {err.strerror}", where))
        return
    except (binascii.Error, ValueError) as err:
        checker.fail(ConfigError(str(err) if chosen[0] == "environment_variable" else
                                 "corrupt base64", where, hint="inline_bytes is base64, as protobuf's JSON writes bytes"))
        return
    if len(data) > max_body:
        checker.fail(ConfigError(f"response body size is {len(data)} bytes; maximum is {max_body}", where,
                                 hint="raise route_config.max_direct_response_body_size_bytes"))


def _cluster(checker: Any, name: str, validate: bool, path: str, what: str = "cluster") -> None:
    if validate and not checker.known_cluster(name):
        checker.fail(ConfigError(f"route: unknown {what} '{name}'", path, hint=checker.cluster_hint(name)))


def _route_action(checker: Any, action: RouteAction, match: RouteMatch, validate: bool, path: str) -> None:
    spec = _exactly_one(checker, action, "cluster cluster_header weighted_clusters", path, "cluster_specifier")
    if spec == "cluster":
        _cluster(checker, action.cluster, validate, f"{path}.cluster")
    elif spec == "weighted_clusters":
        total = 0
        for i, weighted in enumerate(action.weighted_clusters.clusters):
            wpath = f"{path}.weighted_clusters.clusters[{i}]"
            _cluster(checker, weighted.name, validate, f"{wpath}.name", "weighted cluster")
            _mutations(checker, weighted, wpath)
            if weighted.weight is None:
                checker.fail(ConfigError("Field 'weight' is missing", wpath, hint="add `weight: <n>`"))
                continue
            total += weighted.weight
        if total == 0:
            checker.fail(ConfigError("Sum of weights in the weighted_cluster must be greater than 0.",
                                     f"{path}.weighted_clusters"))
        elif total > UINT32_MAX:
            checker.fail(ConfigError(f"The sum of weights of all weighted clusters of route  exceeds {UINT32_MAX}",
                                     f"{path}.weighted_clusters"))
    if action.prefix_rewrite is not None and action.regex_rewrite is not None:
        checker.fail(ConfigError("Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy", path))
    if action.regex_rewrite is not None:
        _regex(checker, action.regex_rewrite.pattern.regex, f"{path}.regex_rewrite.pattern.regex")
    if action.host_rewrite_literal is not None and action.auto_host_rewrite is not None:
        checker.fail(ConfigError("only one of host_rewrite_literal, auto_host_rewrite may be set", path))
    _retry_policy(checker, action.retry_policy, f"{path}.retry_policy")
    seen_upgrades = set()
    for i, upgrade in enumerate(action.upgrade_configs):
        if upgrade.upgrade_type.lower() in seen_upgrades:
            checker.fail(ConfigError(f"Duplicate upgrade {upgrade.upgrade_type}", f"{path}.upgrade_configs[{i}]"))
        seen_upgrades.add(upgrade.upgrade_type.lower())


def _redirect(checker: Any, redirect: RedirectAction, path: str) -> None:
    if redirect.https_redirect is not None and redirect.scheme_redirect is not None:
        checker.fail(ConfigError("only one of https_redirect, scheme_redirect may be set", path))
    chosen = one_of(redirect, "path_redirect prefix_rewrite regex_rewrite")
    if len(chosen) > 1:
        checker.fail(ConfigError(f"only one of {', '.join(chosen)} may be set", path))
    if redirect.regex_rewrite is not None:
        _regex(checker, redirect.regex_rewrite.pattern.regex, f"{path}.regex_rewrite.pattern.regex")
    if redirect.port_redirect > 65535:
        checker.fail(ConfigError("not supported by envoy_fast (port_redirect above 65535)", f"{path}.port_redirect"))


def _route_match(checker: Any, match: RouteMatch, path: str) -> None:
    spec = _exactly_one(checker, match, "prefix path safe_regex path_separated_prefix", path, "path_specifier")
    if spec == "safe_regex":
        _regex(checker, match.safe_regex.regex, f"{path}.safe_regex.regex")
    check_header_matchers(checker, match.headers, f"{path}.headers")
    for i, query in enumerate(match.query_parameters):
        qpath = f"{path}.query_parameters[{i}]"
        if query.string_match is not None and query.present_match is not None:
            checker.fail(ConfigError("only one of string_match, present_match may be set", qpath))
        if query.string_match is not None:
            _string_matcher_required(checker, query.string_match, f"{qpath}.string_match")


def check_header_matchers(checker: Any, headers: List[HeaderMatcher], path: str) -> None:
    """Envoy's load-time checks of a list of HeaderMatchers (routes, the
    health_check filter)."""
    for i, header in enumerate(headers):
        hpath = f"{path}[{i}]"
        chosen = one_of(header, "exact_match safe_regex_match range_match present_match prefix_match"
                                " suffix_match contains_match string_match")
        if len(chosen) > 1:
            checker.fail(ConfigError(f"only one of {', '.join(chosen)} may be set", hpath))
        if header.safe_regex_match is not None:
            _regex(checker, header.safe_regex_match.regex, f"{hpath}.safe_regex_match.regex")
        if header.string_match is not None:
            _string_matcher_required(checker, header.string_match, f"{hpath}.string_match")


def _string_matcher_required(checker: Any, matcher: StringMatcher, path: str) -> None:
    if _exactly_one(checker, matcher, "exact prefix suffix safe_regex contains", path, "match_pattern"):
        _string_matcher(checker, matcher, path)


def _normalised_domain(domain: str) -> str:
    return domain.lower()


def check_route_config(config: RouteConfiguration, checker: Any, path: str) -> None:
    """What Envoy checks of a RouteConfiguration on load (``checker``: the
    loader's Checker: fail, known_cluster, cluster_hint)."""
    _mutations(checker, config, path)
    validate = config.validate_clusters
    seen_domains: Dict[str, str] = {}
    wildcard = False
    for v, vhost in enumerate(config.virtual_hosts):
        vpath = f"{path}.virtual_hosts[{v}]"
        for d, domain in enumerate(vhost.domains):
            dpath = f"{vpath}.domains[{d}]"
            key = _normalised_domain(domain)
            if key == "*":
                if wildcard:
                    checker.fail(ConfigError("Only a single wildcard domain is permitted in route " + config.name,
                                             dpath, hint="one virtual host may have the domain \"*\""))
                wildcard = True
                continue
            if key in seen_domains:
                checker.fail(ConfigError(
                    f"Only unique values for domains are permitted. Duplicate entry of domain {key} in route "
                    + config.name, dpath, hint=f"{domain!r} is already a domain of {seen_domains[key]}"))
            else:
                seen_domains[key] = f"virtual host {vhost.name!r}"
        _mutations(checker, vhost, vpath)
        _retry_policy(checker, vhost.retry_policy, f"{vpath}.retry_policy")
        for r, route in enumerate(vhost.routes):
            rpath = f"{vpath}.routes[{r}]"
            _route_match(checker, route.match, f"{rpath}.match")
            action = _exactly_one(checker, route, "route redirect direct_response", rpath, "action")
            if action == "route":
                _route_action(checker, route.route, route.match, validate, f"{rpath}.route")
            elif action == "redirect":
                _redirect(checker, route.redirect, f"{rpath}.redirect")
            elif action == "direct_response":
                _direct_response(checker, route.direct_response, config.max_direct_response_body_size_bytes,
                                 f"{rpath}.direct_response")
            _mutations(checker, route, rpath)


#: Proto field numbers (protobuf's JSON printer writes fields in this order).
FIELD_NUMBERS: Dict[str, Dict[str, int]] = {
    "envoy.config.core.v3.Metadata": dict(filter_metadata=1, typed_filter_metadata=2),
    "envoy.config.route.v3.Decorator": dict(operation=1, propagate=2),
    "envoy.config.route.v3.RouteConfiguration": dict(
        name=1, virtual_hosts=2, internal_only_headers=3, response_headers_to_add=4,
        response_headers_to_remove=5, request_headers_to_add=6, validate_clusters=7,
        request_headers_to_remove=8, vhds=9, most_specific_header_mutations_wins=10,
        max_direct_response_body_size_bytes=11, cluster_specifier_plugins=12,
        request_mirror_policies=13, ignore_port_in_host_matching=14,
        ignore_path_parameters_in_path_matching=15, typed_per_filter_config=16, metadata=17,
        vhost_header=18, route_specifiers=19),
    "envoy.config.route.v3.VirtualHost": dict(
        name=1, domains=2, routes=3, require_tls=4, virtual_clusters=5, rate_limits=6,
        request_headers_to_add=7, cors=8, response_headers_to_add=10, response_headers_to_remove=11,
        request_headers_to_remove=13, include_request_attempt_count=14, typed_per_filter_config=15,
        retry_policy=16, hedge_policy=17, per_request_buffer_limit_bytes=18,
        include_attempt_count_in_response=19, retry_policy_typed_config=20, matcher=21,
        request_mirror_policies=22, include_is_timeout_retry_header=23, metadata=24,
        request_body_buffer_limit=25, route_specifiers=26),
    "envoy.config.route.v3.Route": dict(
        match=1, route=2, redirect=3, metadata=4, decorator=5, direct_response=7,
        request_headers_to_add=9, response_headers_to_add=10, response_headers_to_remove=11,
        request_headers_to_remove=12, typed_per_filter_config=13, name=14, tracing=15,
        per_request_buffer_limit_bytes=16, filter_action=17, non_forwarding_action=18,
        stat_prefix=19, request_body_buffer_limit=20, route_specifiers=21),
    "envoy.config.route.v3.RouteMatch": dict(
        prefix=1, path=2, case_sensitive=4, headers=6, query_parameters=7, grpc=8,
        runtime_fraction=9, safe_regex=10, tls_context=11, connect_matcher=12, dynamic_metadata=13,
        path_separated_prefix=14, path_match_policy=15, filter_state=16, cookies=17),
    "envoy.config.route.v3.HeaderMatcher": dict(
        name=1, exact_match=4, range_match=6, present_match=7, invert_match=8, prefix_match=9,
        suffix_match=10, safe_regex_match=11, contains_match=12, string_match=13,
        treat_missing_header_as_empty=14),
    "envoy.config.route.v3.QueryParameterMatcher": dict(name=1, string_match=5, present_match=6),
    "envoy.type.matcher.v3.StringMatcher": dict(
        exact=1, prefix=2, suffix=3, safe_regex=5, ignore_case=6, contains=7, custom=8),
    "envoy.type.matcher.v3.RegexMatcher": dict(google_re2=1, regex=2),
    "envoy.type.matcher.v3.RegexMatchAndSubstitute": dict(pattern=1, substitution=2),
    "envoy.type.v3.Int64Range": dict(start=1, end=2),
    "envoy.config.route.v3.RouteAction": dict(
        cluster=1, cluster_header=2, weighted_clusters=3, metadata_match=4, prefix_rewrite=5,
        host_rewrite_literal=6, auto_host_rewrite=7, timeout=8, retry_policy=9, priority=11,
        rate_limits=13, include_vh_rate_limits=14, hash_policy=15, cors=17,
        cluster_not_found_response_code=20, max_grpc_timeout=23, idle_timeout=24,
        upgrade_configs=25, internal_redirect_action=26, hedge_policy=27, grpc_timeout_offset=28,
        host_rewrite_header=29, request_mirror_policies=30, max_internal_redirects=31,
        regex_rewrite=32, retry_policy_typed_config=33, internal_redirect_policy=34,
        host_rewrite_path_regex=35, max_stream_duration=36, cluster_specifier_plugin=37,
        append_x_forwarded_host=38, inline_cluster_specifier_plugin=39, early_data_policy=40,
        path_rewrite_policy=41, flush_timeout=42, host_rewrite=44, path_rewrite=45),
    "envoy.config.route.v3.WeightedCluster": dict(
        clusters=1, runtime_key_prefix=2, total_weight=3, header_name=4, use_hash_policy=5),
    "envoy.config.route.v3.WeightedCluster.ClusterWeight": dict(
        name=1, weight=2, metadata_match=3, request_headers_to_add=4, response_headers_to_add=5,
        response_headers_to_remove=6, request_headers_to_remove=9, typed_per_filter_config=10,
        host_rewrite_literal=11, cluster_header=12),
    "envoy.config.route.v3.RetryPolicy": dict(
        retry_on=1, num_retries=2, per_try_timeout=3, retry_priority=4, retry_host_predicate=5,
        host_selection_retry_max_attempts=6, retriable_status_codes=7, retry_back_off=8,
        retriable_headers=9, retriable_request_headers=10, rate_limited_retry_back_off=11,
        retry_options_predicates=12, per_try_idle_timeout=13, refresh_cluster_on_retry=14),
    "envoy.config.route.v3.RetryPolicy.RetryBackOff": dict(base_interval=1, max_interval=2),
    "envoy.config.route.v3.RouteAction.UpgradeConfig": dict(upgrade_type=1, enabled=2, connect_config=3),
    "envoy.config.route.v3.RedirectAction": dict(
        host_redirect=1, path_redirect=2, response_code=3, https_redirect=4, prefix_rewrite=5,
        strip_query=6, scheme_redirect=7, port_redirect=8, regex_rewrite=9, path_rewrite=10),
    "envoy.config.route.v3.DirectResponseAction": dict(status=1, body=2, body_format=3),
    "envoy.config.core.v3.DataSource": dict(
        filename=1, inline_bytes=2, inline_string=3, environment_variable=4, watched_directory=5),
    "envoy.config.core.v3.HeaderValueOption": dict(header=1, append=2, append_action=3, keep_empty_value=4),
    "envoy.config.core.v3.HeaderValue": dict(key=1, value=2, raw_value=3),
}
