"""The route table plan: a RouteConfiguration resolved for a worker, which
compiles it once into C-level structures (ext/http/router/config_impl.pyx,
RouteConfigImpl.from_plan).

Everything here is resolved and simple: domains lower-cased, matchers typed
(ints below mirror the enums of config_impl.pxd), header values pre-split
into literal and operator segments, durations in seconds, defaults applied
(timeout 15 s, num_retries 1, back-off 25 ms / 250 ms, redirect 301), the
virtual host's retry policy copied into each route that has none, direct
response bodies read.
"""
from __future__ import annotations

import socket
from typing import Any, List, Optional, Tuple

from envoy_fast.extensions.registry import PlanStruct

# RouterPathMatchKind
PATH_PREFIX = 0
PATH_EXACT = 1
PATH_REGEX = 2
PATH_SEPARATED_PREFIX = 3

# RouterStringMatchKind
STRING_EXACT = 0
STRING_PREFIX = 1
STRING_SUFFIX = 2
STRING_CONTAINS = 3
STRING_REGEX = 4

# RouterHeaderMatchKind
HEADER_MATCH_PRESENT = 0
HEADER_MATCH_STRING = 1
HEADER_MATCH_RANGE = 2

# RouteKind
ROUTE_KIND_CLUSTER = 0
ROUTE_KIND_REDIRECT = 1
ROUTE_KIND_DIRECT_RESPONSE = 2

# RouterAppendAction
APPEND_ACTIONS = {"APPEND_IF_EXISTS_OR_ADD": 0, "ADD_IF_ABSENT": 1,
                  "OVERWRITE_IF_EXISTS_OR_ADD": 2, "OVERWRITE_IF_EXISTS": 3}

# RouterFormatKind (0: literal text)
FORMAT_LITERAL = 0
FORMAT_KINDS = {
    "DOWNSTREAM_REMOTE_ADDRESS": 1,
    "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": 2,
    "DOWNSTREAM_LOCAL_ADDRESS": 3,
    "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": 4,
    "UPSTREAM_REMOTE_ADDRESS": 5,
    "PROTOCOL": 6,
    "HOSTNAME": 7,
    "START_TIME": 8,
    "REQ": 9,
}

# RetryOn bits (ROUTER_RETRY_ON_*)
RETRY_ON_BITS = {
    "5xx": 0x1, "gateway-error": 0x2, "reset": 0x4, "connect-failure": 0x8,
    "retriable-4xx": 0x10, "retriable-status-codes": 0x20, "refused-stream": 0x40,
    "reset-before-request": 0x80, "envoy-ratelimited": 0x100, "http3-post-connect-failure": 0x200,
}

CLUSTER_NOT_FOUND_CODES = {"SERVICE_UNAVAILABLE": 503, "NOT_FOUND": 404, "INTERNAL_SERVER_ERROR": 500}

DEFAULT_TIMEOUT = 15.0
DEFAULT_BASE_INTERVAL = 0.025


class StringMatcherPlan(PlanStruct, kw_only=True):
    kind: int                        # STRING_*
    value: str                       # the pattern (the regex for STRING_REGEX)
    ignore_case: bool = False


class HeaderMatcherPlan(PlanStruct, kw_only=True):
    name: str                        # lower-case; ":authority" -> "host"
    kind: int                        # HEADER_MATCH_*
    string: Optional[StringMatcherPlan] = None
    present: bool = True             # present_match's value
    range_start: int = 0
    range_end: int = 0
    invert: bool = False
    treat_missing_as_empty: bool = False


class QueryParameterMatcherPlan(PlanStruct, kw_only=True):
    name: str
    string: Optional[StringMatcherPlan] = None   # None: present
    present: bool = True


class FormatSegmentPlan(PlanStruct, kw_only=True):
    kind: int                        # FORMAT_LITERAL or FORMAT_KINDS[...]
    text: str = ""                   # literal text; REQ: the header name(s) "a?b"; START_TIME: its format
    max_length: int = -1             # -1: none


class HeaderAddPlan(PlanStruct, kw_only=True):
    name: str                        # lower-case
    segments: List[FormatSegmentPlan]
    append_action: int = 0           # APPEND_ACTIONS
    keep_empty: bool = False


class HeaderMutationsPlan(PlanStruct, kw_only=True):
    """One level's header lists: removals, then additions."""
    remove: List[str] = []           # lower-case
    add: List[HeaderAddPlan] = []


class RetryPolicyPlan(PlanStruct, kw_only=True):
    retry_on: int = 0                # RETRY_ON_BITS; 0: no retries
    num_retries: int = 1
    per_try_timeout: float = 0.0     # 0: none
    base_interval: float = DEFAULT_BASE_INTERVAL
    max_interval: float = 10 * DEFAULT_BASE_INTERVAL
    retriable_status_codes: List[int] = []
    previous_hosts: bool = False     # retry_host_predicate previous_hosts
    host_selection_attempts: int = 1     # host_selection_retry_max_attempts (unset: 1)


class WeightedClusterPlan(PlanStruct, kw_only=True):
    name: str
    weight: int
    host_rewrite_literal: Optional[str] = None
    request_mutations: HeaderMutationsPlan = HeaderMutationsPlan()
    response_mutations: HeaderMutationsPlan = HeaderMutationsPlan()


class RoutePlan(PlanStruct, kw_only=True):
    name: str = ""
    # match
    path_kind: int = PATH_PREFIX
    path: str = ""                   # prefix / path / path_separated_prefix / regex
    case_sensitive: bool = True
    headers: List[HeaderMatcherPlan] = []
    query_parameters: List[QueryParameterMatcherPlan] = []
    # action
    kind: int = ROUTE_KIND_CLUSTER
    cluster: Optional[str] = None
    cluster_header: Optional[str] = None         # lower-case
    weighted_clusters: List[WeightedClusterPlan] = []
    cluster_not_found_response_code: int = 503
    prefix_rewrite: Optional[str] = None
    regex_rewrite: Optional[str] = None          # pattern
    regex_substitution: str = ""                 # RE2 rewrite string (\1 groups)
    host_rewrite_literal: Optional[str] = None
    auto_host_rewrite: bool = False
    append_x_forwarded_host: bool = False
    include_request_attempt_count: bool = False     # the virtual host's
    include_attempt_count_in_response: bool = False
    timeout: float = DEFAULT_TIMEOUT             # 0: none
    idle_timeout: float = -1.0                   # -1: not set
    retry_policy: RetryPolicyPlan = RetryPolicyPlan()
    upgrade_configs: Optional[List[Tuple[str, bool]]] = None   # (type lower-case, enabled); None: HCM's
    direct_status: int = 0
    direct_body: bytes = b""
    redirect_status: int = 301
    redirect_scheme: Optional[str] = None        # https_redirect -> "https"
    redirect_host: Optional[str] = None
    redirect_port: int = 0
    redirect_path: Optional[str] = None          # path_redirect (query kept unless it has its own)
    redirect_prefix_rewrite: Optional[str] = None
    redirect_regex: Optional[str] = None
    redirect_regex_substitution: str = ""
    strip_query: bool = False
    request_mutations: HeaderMutationsPlan = HeaderMutationsPlan()
    response_mutations: HeaderMutationsPlan = HeaderMutationsPlan()


# VirtualHost.require_tls (RouterVirtualHostImpl.require_tls)
REQUIRE_TLS = {"NONE": 0, "EXTERNAL_ONLY": 1, "ALL": 2}


class VirtualHostPlan(PlanStruct, kw_only=True):
    name: str
    domains: List[str]               # lower-case
    require_tls: int = 0             # REQUIRE_TLS: a request not over https is redirected there
    routes: List[RoutePlan] = []
    request_mutations: HeaderMutationsPlan = HeaderMutationsPlan()
    response_mutations: HeaderMutationsPlan = HeaderMutationsPlan()


class RouteTablePlan(PlanStruct, kw_only=True):
    """One route configuration (inline ``route_config`` of an HCM)."""
    name: str = ""
    virtual_hosts: List[VirtualHostPlan] = []
    internal_only_headers: List[str] = []   # lower-case; removed from requests not internal
    request_mutations: HeaderMutationsPlan = HeaderMutationsPlan()
    response_mutations: HeaderMutationsPlan = HeaderMutationsPlan()
    most_specific_header_mutations_wins: bool = False
    ignore_port_in_host_matching: bool = False
    validate_clusters: bool = True
    hostname: str = ""               # %HOSTNAME%, read in main


# --- building ----------------------------------------------------------------------------


def _string_matcher(m: Any) -> StringMatcherPlan:
    if m.exact is not None:
        return StringMatcherPlan(kind=STRING_EXACT, value=m.exact, ignore_case=m.ignore_case)
    if m.prefix is not None:
        return StringMatcherPlan(kind=STRING_PREFIX, value=m.prefix, ignore_case=m.ignore_case)
    if m.suffix is not None:
        return StringMatcherPlan(kind=STRING_SUFFIX, value=m.suffix, ignore_case=m.ignore_case)
    if m.contains is not None:
        return StringMatcherPlan(kind=STRING_CONTAINS, value=m.contains, ignore_case=m.ignore_case)
    return StringMatcherPlan(kind=STRING_REGEX, value=m.safe_regex.regex)


def _header_name(name: str) -> str:
    name = name.lower()
    return "host" if name == ":authority" else name


def header_matcher_plan(h: Any) -> HeaderMatcherPlan:
    """A route_types.HeaderMatcher as the worker's RouterHeaderMatcher is built."""
    return _header_matcher(h)


def _header_matcher(h: Any) -> HeaderMatcherPlan:
    common = dict(name=_header_name(h.name), invert=h.invert_match,
                  treat_missing_as_empty=h.treat_missing_header_as_empty)
    if h.range_match is not None:
        return HeaderMatcherPlan(kind=HEADER_MATCH_RANGE, range_start=h.range_match.start,
                                 range_end=h.range_match.end, **common)
    for field, kind in (("exact_match", STRING_EXACT), ("prefix_match", STRING_PREFIX),
                        ("suffix_match", STRING_SUFFIX), ("contains_match", STRING_CONTAINS)):
        value = getattr(h, field)
        if value is not None:
            return HeaderMatcherPlan(kind=HEADER_MATCH_STRING, string=StringMatcherPlan(kind=kind, value=value),
                                     **common)
    if h.safe_regex_match is not None:
        return HeaderMatcherPlan(kind=HEADER_MATCH_STRING,
                                 string=StringMatcherPlan(kind=STRING_REGEX, value=h.safe_regex_match.regex),
                                 **common)
    if h.string_match is not None:
        return HeaderMatcherPlan(kind=HEADER_MATCH_STRING, string=_string_matcher(h.string_match), **common)
    present = True if h.present_match is None else h.present_match
    return HeaderMatcherPlan(kind=HEADER_MATCH_PRESENT, present=present, **common)


def format_segments(value: str) -> List[FormatSegmentPlan]:
    """A header value format split into segments (the config is checked first)."""
    from envoy_fast.config.route_types import parse_header_format
    segments: List[FormatSegmentPlan] = []
    for part in parse_header_format(value):
        if isinstance(part, str):
            segments.append(FormatSegmentPlan(kind=FORMAT_LITERAL, text=part))
        else:
            segments.append(FormatSegmentPlan(
                kind=FORMAT_KINDS[part.command], text=part.param or "",
                max_length=-1 if part.max_length is None else part.max_length))
    return segments


def _level(to_add: List[Any], to_remove: List[str]) -> HeaderMutationsPlan:
    adds = []
    for option in to_add:
        action = option.append_action
        if option.append is not None:   # deprecated: true appends, false overwrites
            action = "APPEND_IF_EXISTS_OR_ADD" if option.append else "OVERWRITE_IF_EXISTS_OR_ADD"
        adds.append(HeaderAddPlan(name=option.header.key.lower(), segments=format_segments(option.header.value),
                                  append_action=APPEND_ACTIONS[action], keep_empty=option.keep_empty_value))
    return HeaderMutationsPlan(remove=[n.lower() for n in to_remove], add=adds)


def _request_level(message: Any) -> HeaderMutationsPlan:
    return _level(message.request_headers_to_add, message.request_headers_to_remove)


def _response_level(message: Any) -> HeaderMutationsPlan:
    return _level(message.response_headers_to_add, message.response_headers_to_remove)


def _retry_policy(policy: Any) -> RetryPolicyPlan:
    if policy is None:
        return RetryPolicyPlan()
    bits = 0
    for cond in policy.retry_on.split(","):
        bits |= RETRY_ON_BITS.get(cond.strip(), 0)
    base = DEFAULT_BASE_INTERVAL
    max_interval = None
    if policy.retry_back_off is not None:
        base = max(policy.retry_back_off.base_interval, 0.001)   # Envoy rounds up to 1 ms
        max_interval = policy.retry_back_off.max_interval
    return RetryPolicyPlan(
        retry_on=bits, num_retries=policy.num_retries, per_try_timeout=policy.per_try_timeout or 0.0,
        base_interval=base, max_interval=max_interval if max_interval is not None else 10 * base,
        retriable_status_codes=list(policy.retriable_status_codes),
        previous_hosts=bool(policy.retry_host_predicate),
        host_selection_attempts=max(1, min(policy.host_selection_retry_max_attempts or 1, 1000)))


def _path_match(match: Any) -> Tuple[int, str]:
    if match.prefix is not None:
        return PATH_PREFIX, match.prefix
    if match.path is not None:
        return PATH_EXACT, match.path
    if match.safe_regex is not None:
        return PATH_REGEX, match.safe_regex.regex
    return PATH_SEPARATED_PREFIX, match.path_separated_prefix


def _route(route: Any, vhost: Any) -> RoutePlan:
    from envoy_fast.config.route_types import REDIRECT_CODES, direct_response_body
    kind, path = _path_match(route.match)
    fields: dict = dict(
        name=route.name, path_kind=kind, path=path, case_sensitive=route.match.case_sensitive,
        headers=[_header_matcher(h) for h in route.match.headers],
        query_parameters=[QueryParameterMatcherPlan(
            name=q.name, string=_string_matcher(q.string_match) if q.string_match is not None else None,
            present=True if q.present_match is None else q.present_match) for q in route.match.query_parameters],
        request_mutations=_request_level(route), response_mutations=_response_level(route),
    )
    if route.route is not None:
        a = route.route
        policy = a.retry_policy if a.retry_policy is not None else vhost.retry_policy
        fields.update(
            kind=ROUTE_KIND_CLUSTER, cluster=a.cluster,
            cluster_header=_header_name(a.cluster_header) if a.cluster_header is not None else None,
            weighted_clusters=[WeightedClusterPlan(
                name=w.name, weight=w.weight, host_rewrite_literal=w.host_rewrite_literal,
                request_mutations=_request_level(w), response_mutations=_response_level(w))
                for w in (a.weighted_clusters.clusters if a.weighted_clusters is not None else [])],
            cluster_not_found_response_code=CLUSTER_NOT_FOUND_CODES[a.cluster_not_found_response_code],
            prefix_rewrite=a.prefix_rewrite,
            regex_rewrite=a.regex_rewrite.pattern.regex if a.regex_rewrite is not None else None,
            regex_substitution=a.regex_rewrite.substitution if a.regex_rewrite is not None else "",
            host_rewrite_literal=a.host_rewrite_literal, auto_host_rewrite=bool(a.auto_host_rewrite),
            append_x_forwarded_host=a.append_x_forwarded_host,
            include_request_attempt_count=vhost.include_request_attempt_count,
            include_attempt_count_in_response=vhost.include_attempt_count_in_response,
            timeout=DEFAULT_TIMEOUT if a.timeout is None else a.timeout,
            idle_timeout=-1.0 if a.idle_timeout is None else a.idle_timeout,
            retry_policy=_retry_policy(policy),
            upgrade_configs=[(u.upgrade_type.lower(), u.enabled) for u in a.upgrade_configs]
            if a.upgrade_configs else None,
        )
    elif route.redirect is not None:
        r = route.redirect
        scheme = r.scheme_redirect if r.scheme_redirect else ("https" if r.https_redirect else None)
        fields.update(
            kind=ROUTE_KIND_REDIRECT, redirect_status=REDIRECT_CODES[r.response_code],
            redirect_scheme=scheme, redirect_host=r.host_redirect or None, redirect_port=r.port_redirect,
            redirect_path=r.path_redirect or None, redirect_prefix_rewrite=r.prefix_rewrite,
            redirect_regex=r.regex_rewrite.pattern.regex if r.regex_rewrite is not None else None,
            redirect_regex_substitution=r.regex_rewrite.substitution if r.regex_rewrite is not None else "",
            strip_query=r.strip_query,
        )
    else:
        d = route.direct_response
        fields.update(kind=ROUTE_KIND_DIRECT_RESPONSE, direct_status=d.status,
                      direct_body=direct_response_body(d.body))
    return RoutePlan(**fields)


def build_route_table_plan(route_config: Any, ctx: Any = None) -> RouteTablePlan:
    """The plan of a checked RouteConfiguration (``ctx``: the PlanContext, unused yet)."""
    if route_config is None:
        return RouteTablePlan(hostname=socket.gethostname())
    return RouteTablePlan(
        name=route_config.name,
        internal_only_headers=[h.lower() for h in route_config.internal_only_headers],
        virtual_hosts=[VirtualHostPlan(
            name=v.name, domains=[d.lower() for d in v.domains], require_tls=REQUIRE_TLS[v.require_tls],
            routes=[_route(r, v) for r in v.routes],
            request_mutations=_request_level(v), response_mutations=_response_level(v))
            for v in route_config.virtual_hosts],
        request_mutations=_request_level(route_config),
        response_mutations=_response_level(route_config),
        most_specific_header_mutations_wins=route_config.most_specific_header_mutations_wins,
        ignore_port_in_host_matching=route_config.ignore_port_in_host_matching,
        validate_clusters=route_config.validate_clusters,
        hostname=socket.gethostname(),
    )
