"""http_connection_manager's configuration: its ``typed_config`` messages, the
checks Envoy makes on them when it loads a config, and their proto field
numbers.

Imported by the config loader (through the registry), so it imports no
Cython; the record in ``http_connection_manager.py`` ties it to the worker.
Every field of Envoy 1.40's messages is listed in ``ENVOY_FIELDS``: one
envoy_fast does not model is refused when set (with its path and line), or
accepted in ``IGNORED`` when it cannot act on HTTP/1.1 (HTTP/2 and HTTP/3
settings, overload manager headers).
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Dict, List, Mapping, Optional, cast

from msgspec import Meta

from envoy_fast.config import route_types
from envoy_fast.config.accesslog_types import AccessLog
from envoy_fast.config.base import ENUMS, UINT32_MAX, Duration, NonEmptyStr, enum
from envoy_fast.config.base import Message as _Message
from envoy_fast.config.base import names as _names
from envoy_fast.config.errors import ConfigError
from envoy_fast.config.route_types import RouteConfiguration
from envoy_fast.config.types import CidrRange
from envoy_fast.extensions import registry
from envoy_fast.extensions.registry import HttpFilterConfig, NetworkFilterConfig

__all__ = [
    "HCM_TYPE_URL", "HCM_TYPE", "HttpConnectionManager", "HttpFilter", "HttpProtocolOptions",
    "Http1ProtocolOptions", "HeaderKeyFormat", "UpgradeConfig", "check", "FIELD_NUMBERS",
]

HCM_TYPE = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
HCM_TYPE_URL = "type.googleapis.com/" + HCM_TYPE
_HCM = HCM_TYPE

# --- enums ----------------------------------------------------------------------

_ENUMS = cast(Dict[str, Mapping[str, int]], ENUMS)
_ENUMS.update({
    _HCM + ".CodecType": {"AUTO": 0, "HTTP1": 1, "HTTP2": 2, "HTTP3": 3},
    _HCM + ".ServerHeaderTransformation": {"OVERWRITE": 0, "APPEND_IF_ABSENT": 1, "PASS_THROUGH": 2},
    _HCM + ".ForwardClientCertDetails": {
        "SANITIZE": 0, "FORWARD_ONLY": 1, "APPEND_FORWARD": 2, "SANITIZE_SET": 3,
        "ALWAYS_FORWARD_ONLY": 4},
    _HCM + ".PathWithEscapedSlashesAction": {
        "IMPLEMENTATION_SPECIFIC_DEFAULT": 0, "KEEP_UNCHANGED": 1, "REJECT_REQUEST": 2,
        "UNESCAPE_AND_REDIRECT": 3, "UNESCAPE_AND_FORWARD": 4},
    "envoy.config.core.v3.HttpProtocolOptions.HeadersWithUnderscoresAction": {
        "ALLOW": 0, "REJECT_REQUEST": 1, "DROP_HEADER": 2},
})
CodecType = enum(_HCM + ".CodecType")
ServerHeaderTransformation = enum(_HCM + ".ServerHeaderTransformation")
ForwardClientCertDetails = enum(_HCM + ".ForwardClientCertDetails")
PathWithEscapedSlashesAction = enum(_HCM + ".PathWithEscapedSlashesAction")
HeadersWithUnderscoresAction = enum("envoy.config.core.v3.HttpProtocolOptions.HeadersWithUnderscoresAction")

#: google.protobuf.BoolValue (a plain bool or ``{"value": b}``; printed when set).
BoolValue = Annotated[bool, Meta(extra={"wrapper": True})]
#: google.protobuf.UInt32Value with no bound beyond uint32.
_UInt32Value = Annotated[int, Meta(ge=0, le=UINT32_MAX, extra={"wrapper": True})]
_UInt32 = Annotated[int, Meta(ge=0, le=UINT32_MAX)]

# Envoy's HTTP_HEADER_VALUE well-known regex (strict: false), as PGV prints it.
_HEADER_VALUE = re.compile(r"[^\x00\n\r]*")
_HEADER_VALUE_MESSAGE = 'value does not match regex pattern "^[^\\x00\\n\\r]*$"'


# --- core protocol options -------------------------------------------------------


class HttpProtocolOptions(_Message, kw_only=True):
    """envoy.config.core.v3.HttpProtocolOptions (``common_http_protocol_options``).

    ``idle_timeout`` 0 disables it; ``max_connection_duration`` unset is no
    limit; ``max_requests_per_connection`` unset (or 0) is no limit.
    """

    ENVOY_TYPE = "envoy.config.core.v3.HttpProtocolOptions"
    ENVOY_FIELDS = _names(
        "idle_timeout max_connection_duration max_connection_duration_jitter max_headers_count"
        " max_response_headers_kb max_stream_duration headers_with_underscores_action"
        " max_requests_per_connection"
    )

    idle_timeout: Duration = 3600.0
    max_connection_duration: Optional[Duration] = None
    max_stream_duration: Optional[Duration] = None      # unset or 0: no limit
    max_headers_count: Annotated[int, Meta(ge=1, le=UINT32_MAX, extra={"wrapper": True})] = 100
    headers_with_underscores_action: HeadersWithUnderscoresAction = "ALLOW"
    max_requests_per_connection: Optional[_UInt32Value] = None


class HeaderKeyFormat(_Message, kw_only=True):
    """envoy.config.core.v3.Http1ProtocolOptions.HeaderKeyFormat (``proper_case_words`` only)."""

    ENVOY_TYPE = "envoy.config.core.v3.Http1ProtocolOptions.HeaderKeyFormat"
    ENVOY_FIELDS = _names("proper_case_words stateful_formatter")

    #: ProperCaseWords has no fields: ``{}`` selects it.
    proper_case_words: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        if self.proper_case_words is None:
            raise ValueError('header_format is required (set proper_case_words: {})')
        if self.proper_case_words:
            first = next(iter(self.proper_case_words))
            raise ValueError(
                "unknown field: envoy.config.core.v3.Http1ProtocolOptions.HeaderKeyFormat."
                f"ProperCaseWords has no field '{first}'")


class Http1ProtocolOptions(_Message, kw_only=True):
    """envoy.config.core.v3.Http1ProtocolOptions (``http_protocol_options``)."""

    ENVOY_TYPE = "envoy.config.core.v3.Http1ProtocolOptions"
    ENVOY_FIELDS = _names(
        "allow_absolute_url accept_http_10 default_host_for_http_10 header_key_format"
        " enable_trailers allow_chunked_length override_stream_error_on_invalid_http_message"
        " send_fully_qualified_url use_balsa_parser allow_custom_methods ignore_http_11_upgrade"
    )
    # send_fully_qualified_url acts on upstream requests only; use_balsa_parser
    # (deprecated) picks Envoy's parser, whose observable behaviour the codec
    # matches either way.
    IGNORED = {"send_fully_qualified_url": "bool", "use_balsa_parser": "bool"}

    allow_absolute_url: BoolValue = True
    accept_http_10: bool = False
    default_host_for_http_10: str = ""
    header_key_format: Optional[HeaderKeyFormat] = None
    enable_trailers: bool = False
    allow_chunked_length: bool = False
    override_stream_error_on_invalid_http_message: Optional[BoolValue] = None


# --- the HTTP filter chain -------------------------------------------------------


class HttpFilter(_Message, kw_only=True):
    """envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter:
    ``name`` is a label; ``typed_config`` (dispatched on its ``@type``, see
    ``registry.config_types("http_filter")``) decides which filter it is."""

    ENVOY_TYPE = _HCM.rsplit(".", 1)[0] + ".HttpFilter"
    ENVOY_FIELDS = _names("name typed_config config_discovery is_optional disabled")
    # is_optional lets Envoy skip a filter type it was built without: every
    # type envoy_fast loads is one it has, so the flag changes nothing.
    IGNORED = {"is_optional": "bool"}

    name: NonEmptyStr
    typed_config: Annotated[HttpFilterConfig, Meta(extra={"registry": "http_filter"})]
    disabled: bool = False


class UpgradeConfig(_Message, kw_only=True):
    """envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig."""

    ENVOY_TYPE = _HCM + ".UpgradeConfig"
    ENVOY_FIELDS = _names("upgrade_type filters enabled")

    upgrade_type: str = ""
    enabled: BoolValue = True


# --- HttpConnectionManager -------------------------------------------------------


class InternalAddressConfig(_Message, kw_only=True):
    """HttpConnectionManager.InternalAddressConfig: which peers are internal
    (their x-envoy-* request controls are kept). Unset, none is: Envoy 1.40
    no longer counts RFC 1918 and loopback addresses by default."""

    ENVOY_TYPE = _HCM + ".InternalAddressConfig"
    ENVOY_FIELDS = _names("unix_sockets cidr_ranges")

    unix_sockets: bool = False      # no pipe listeners in envoy_fast: nothing to act on
    cidr_ranges: List[CidrRange] = []


class HttpConnectionManager(_Message, NetworkFilterConfig, kw_only=True, tag_field="@type", tag=HCM_TYPE_URL):
    """envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.

    HTTP/1.1 only. Durations are seconds; a timeout of 0 disables it. ``rds``
    and ``scoped_routes`` are read loosely so that `check` can say they are
    not supported instead of asking for a route_config.
    """

    ENVOY_TYPE = _HCM
    ENVOY_FIELDS = _names(
        "codec_type stat_prefix rds route_config scoped_routes http_filters add_user_agent tracing"
        " common_http_protocol_options http1_safe_max_connection_duration http_protocol_options"
        " http2_protocol_options http3_protocol_options server_name server_header_transformation"
        " scheme_header_transformation max_request_headers_kb stream_idle_timeout"
        " stream_flush_timeout request_timeout request_headers_timeout drain_timeout"
        " drain_timeout_jitter delayed_close_timeout access_log access_log_flush_interval"
        " flush_access_log_on_new_request access_log_options use_remote_address"
        " xff_num_trusted_hops original_ip_detection_extensions early_header_mutation_extensions"
        " internal_address_config skip_xff_append via generate_request_id"
        " preserve_external_request_id always_set_request_id_in_response"
        " forward_client_cert_details set_current_client_cert_details forward_client_cert_matcher"
        " proxy_100_continue represent_ipv4_remote_address_as_ipv4_mapped_ipv6 upgrade_configs"
        " normalize_path merge_slashes path_with_escaped_slashes_action request_id_extension"
        " local_reply_config strip_matching_host_port strip_any_host_port"
        " stream_error_on_invalid_http_message path_normalization_options strip_trailing_host_dot"
        " proxy_status_config typed_header_validation_config append_x_forwarded_port"
        " append_local_overload add_proxy_protocol_connection_state forward_proto_config"
        " record_route_resolution_stats"
    )
    # HTTP/2 and HTTP/3 settings cannot act on an HTTP/1.1-only connection
    # manager (stream_flush_timeout waits on HTTP/2-3 flow-control windows);
    # there is no overload manager to add x-envoy-local-overloaded; the client
    # cert fields act only with forward_client_cert_details other than
    # SANITIZE, which is refused; the PROXY protocol filter state is not
    # observable.
    IGNORED = {
        "http2_protocol_options": None, "http3_protocol_options": None,
        "stream_flush_timeout": "duration", "append_local_overload": "bool",
        "set_current_client_cert_details": None, "add_proxy_protocol_connection_state": "bool",
    }

    codec_type: CodecType = "AUTO"
    stat_prefix: NonEmptyStr
    internal_address_config: Optional[InternalAddressConfig] = None
    strip_matching_host_port: bool = False
    strip_any_host_port: bool = False
    strip_trailing_host_dot: bool = False
    append_x_forwarded_port: bool = False
    rds: Optional[Dict[str, Any]] = None
    route_config: Optional[RouteConfiguration] = None
    scoped_routes: Optional[Dict[str, Any]] = None
    http_filters: List[HttpFilter] = []
    add_user_agent: Optional[BoolValue] = None
    common_http_protocol_options: Optional[HttpProtocolOptions] = None
    http_protocol_options: Optional[Http1ProtocolOptions] = None
    server_name: str = "envoy"
    server_header_transformation: ServerHeaderTransformation = "OVERWRITE"
    max_request_headers_kb: Optional[_UInt32Value] = None
    stream_idle_timeout: Duration = 300.0
    request_timeout: Duration = 0.0
    request_headers_timeout: Duration = 0.0
    drain_timeout: Duration = 5.0
    delayed_close_timeout: Duration = 1.0
    access_log: List[AccessLog] = []
    use_remote_address: BoolValue = False
    xff_num_trusted_hops: _UInt32 = 0
    skip_xff_append: bool = False
    via: str = ""
    generate_request_id: BoolValue = True
    preserve_external_request_id: bool = False
    always_set_request_id_in_response: bool = False
    forward_client_cert_details: ForwardClientCertDetails = "SANITIZE"
    proxy_100_continue: bool = False
    upgrade_configs: List[UpgradeConfig] = []
    normalize_path: Optional[BoolValue] = None
    path_with_escaped_slashes_action: PathWithEscapedSlashesAction = "IMPLEMENTATION_SPECIFIC_DEFAULT"
    stream_error_on_invalid_http_message: Optional[BoolValue] = None

    # Resolved values (Envoy's defaults where unset).

    @property
    def protocol_options(self) -> HttpProtocolOptions:
        return self.common_http_protocol_options or HttpProtocolOptions()

    @property
    def http1_options(self) -> Http1ProtocolOptions:
        return self.http_protocol_options or Http1ProtocolOptions()


# --- checks ------------------------------------------------------------------------


def _not_supported(checker: Any, path: str, what: str, hint: str) -> None:
    checker.fail(ConfigError(f"{what} is not supported by envoy_fast", path, hint=hint))


def check(hcm: HttpConnectionManager, checker: Any, path: str) -> None:
    """What Envoy checks of an HttpConnectionManager on load, and what
    envoy_fast does not implement (``checker``: see the registry)."""
    if hcm.codec_type in ("HTTP2", "HTTP3"):
        _not_supported(checker, f"{path}.codec_type", f"codec_type {hcm.codec_type}",
                       "envoy_fast speaks HTTP/1.1 only: use codec_type AUTO or HTTP1")
    _route_specifier(hcm, checker, path)
    _http_filters(hcm, checker, path)
    for name in ("server_name", "via"):
        if not _HEADER_VALUE.fullmatch(getattr(hcm, name)):
            checker.fail(ConfigError(_HEADER_VALUE_MESSAGE, f"{path}.{name}",
                                     hint="remove the NUL, CR or LF characters"))
    kb = hcm.max_request_headers_kb
    if kb is not None and not 0 < kb <= 8192:
        checker.fail(ConfigError("value must be inside range (0, 8192]", f"{path}.max_request_headers_kb",
                                 hint="the default is 60"))
    _upgrade_configs(hcm, checker, path)
    if hcm.strip_matching_host_port and hcm.strip_any_host_port:
        checker.fail(ConfigError("Only one of `strip_matching_host_port` or `strip_any_host_port` can be set.",
                                 f"{path}.strip_any_host_port"))
    if hcm.internal_address_config is not None:
        for i, cidr in enumerate(hcm.internal_address_config.cidr_ranges):
            # Envoy clamps a prefix past the address's length (CidrRange::create).
            cidr = CidrRange(address_prefix=cidr.address_prefix, prefix_len=min(cidr.prefix_len, 32))
            try:
                checker.cidr(cidr, f"{path}.internal_address_config.cidr_ranges[{i}]")
            except ConfigError as e:
                checker.fail(e)
    # Fields whose default is all envoy_fast implements.
    if hcm.add_user_agent:
        _not_supported(checker, f"{path}.add_user_agent", "add_user_agent: true", "remove `add_user_agent`")
    if hcm.forward_client_cert_details != "SANITIZE":
        _not_supported(checker, f"{path}.forward_client_cert_details",
                       f"forward_client_cert_details {hcm.forward_client_cert_details}",
                       "remove it: envoy_fast removes x-forwarded-client-cert (SANITIZE)")
    if hcm.normalize_path:
        _not_supported(checker, f"{path}.normalize_path", "path normalisation (normalize_path: true)",
                       "remove `normalize_path`")
    if hcm.path_with_escaped_slashes_action not in ("IMPLEMENTATION_SPECIFIC_DEFAULT", "KEEP_UNCHANGED"):
        _not_supported(checker, f"{path}.path_with_escaped_slashes_action",
                       f"path_with_escaped_slashes_action {hcm.path_with_escaped_slashes_action}",
                       "remove it (escaped slashes are kept unchanged)")
    if hcm.stream_error_on_invalid_http_message:
        _not_supported(checker, f"{path}.stream_error_on_invalid_http_message",
                       "stream_error_on_invalid_http_message: true",
                       "remove it: after a protocol error envoy_fast closes the connection, as Envoy by default")
    options = hcm.common_http_protocol_options
    if options is not None and options.max_connection_duration is not None and options.max_connection_duration == 0:
        # Envoy arms a 0 ms timer, which drains every connection at once.
        _not_supported(checker, f"{path}.common_http_protocol_options.max_connection_duration",
                       "max_connection_duration 0s", "leave it out for no limit")
    http1 = hcm.http_protocol_options
    if http1 is not None and http1.override_stream_error_on_invalid_http_message:
        _not_supported(checker, f"{path}.http_protocol_options.override_stream_error_on_invalid_http_message",
                       "override_stream_error_on_invalid_http_message: true", "remove it")


def _route_specifier(hcm: HttpConnectionManager, checker: Any, path: str) -> None:
    given = [name for name in ("rds", "route_config", "scoped_routes") if getattr(hcm, name) is not None]
    if not given:
        checker.fail(ConfigError(
            "route_specifier is required (one of rds, route_config, scoped_routes)", path,
            hint="add route_config: {virtual_hosts: [...]}"))
        return
    if len(given) > 1:
        checker.fail(ConfigError(f"only one of rds, route_config, scoped_routes may be set (got {', '.join(given)})",
                                 path, hint="keep route_config"))
    for name in ("rds", "scoped_routes"):
        if getattr(hcm, name) is not None:
            _not_supported(checker, f"{path}.{name}", f"{name} ({'RDS' if name == 'rds' else 'scoped RDS'})",
                           "give the routes inline in route_config")
    if hcm.route_config is not None:
        check_routes = getattr(route_types, "check_route_config", None)
        if check_routes is not None:
            check_routes(hcm.route_config, checker, f"{path}.route_config")


def _http_filters(hcm: HttpConnectionManager, checker: Any, path: str) -> None:
    filters = hcm.http_filters
    if not filters:
        # Envoy loads this and never answers a request (observed): refused.
        checker.fail(ConfigError(
            "http_filters is empty: the last HTTP filter must be envoy.filters.http.router",
            f"{path}.http_filters",
            hint="add http_filters: [{name: envoy.filters.http.router, typed_config: "
                 "{\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]"))
        return
    last = len(filters) - 1
    for i, http_filter in enumerate(filters):
        fpath = f"{path}.http_filters[{i}]"
        record = registry.for_http_config(http_filter.typed_config)
        if record.terminal and i != last:
            checker.fail(ConfigError(
                f"terminal filter named {http_filter.name} of type {record.name}"
                " must be the last filter in a http filter chain",
                fpath, hint=f"move {http_filter.name} to the end of http_filters"))
        if record.terminal and http_filter.disabled:
            checker.fail(ConfigError(
                f"the last (terminal) filter ({http_filter.name}) in the chain cannot be disabled by default",
                f"{fpath}.disabled", hint="remove `disabled`"))
        elif http_filter.disabled:
            _not_supported(checker, f"{fpath}.disabled", "disabled HTTP filters (route-enabled filters)",
                           "remove the filter or `disabled`")
        if record.check is not None:
            record.check(http_filter.typed_config, checker, f"{fpath}.typed_config")
    final = registry.for_http_config(filters[last].typed_config)
    if not final.terminal:
        # Envoy accepts a chain that does not end in a terminal filter and
        # answers nothing; envoy_fast refuses it.
        checker.fail(ConfigError(
            f"the last HTTP filter ({filters[last].name}) is not a terminal filter",
            f"{path}.http_filters[{last}]", hint="end http_filters with envoy.filters.http.router"))


def _upgrade_configs(hcm: HttpConnectionManager, checker: Any, path: str) -> None:
    seen: Dict[str, int] = {}
    for i, upgrade in enumerate(hcm.upgrade_configs):
        key = upgrade.upgrade_type.lower()
        if key in seen:
            # Envoy's message names the later spelling.
            checker.fail(ConfigError(f"multiple upgrade configs with the same name: '{upgrade.upgrade_type}'",
                                     f"{path}.upgrade_configs[{i}].upgrade_type",
                                     hint=f"also upgrade_configs[{seen[key]}]"))
        seen.setdefault(key, i)


#: Proto field numbers of the messages above (protobuf's JSON printer writes
#: fields in this order), from Envoy 1.40's descriptors.
FIELD_NUMBERS: Dict[str, Dict[str, int]] = {
    _HCM: dict(
        codec_type=1, stat_prefix=2, rds=3, route_config=4, http_filters=5, add_user_agent=6,
        tracing=7, http_protocol_options=8, http2_protocol_options=9, server_name=10,
        drain_timeout=12, access_log=13, use_remote_address=14, generate_request_id=15,
        forward_client_cert_details=16, set_current_client_cert_details=17,
        proxy_100_continue=18, xff_num_trusted_hops=19,
        represent_ipv4_remote_address_as_ipv4_mapped_ipv6=20, skip_xff_append=21, via=22,
        upgrade_configs=23, stream_idle_timeout=24, internal_address_config=25,
        delayed_close_timeout=26, request_timeout=28, max_request_headers_kb=29,
        normalize_path=30, scoped_routes=31, preserve_external_request_id=32, merge_slashes=33,
        server_header_transformation=34, common_http_protocol_options=35,
        request_id_extension=36, always_set_request_id_in_response=37, local_reply_config=38,
        strip_matching_host_port=39, stream_error_on_invalid_http_message=40,
        request_headers_timeout=41, strip_any_host_port=42, path_normalization_options=43,
        http3_protocol_options=44, path_with_escaped_slashes_action=45,
        original_ip_detection_extensions=46, strip_trailing_host_dot=47,
        scheme_header_transformation=48, proxy_status_config=49,
        typed_header_validation_config=50, append_x_forwarded_port=51,
        early_header_mutation_extensions=52, add_proxy_protocol_connection_state=53,
        access_log_flush_interval=54, flush_access_log_on_new_request=55,
        access_log_options=56, append_local_overload=57, http1_safe_max_connection_duration=58,
        stream_flush_timeout=59, forward_client_cert_matcher=60, forward_proto_config=61,
        drain_timeout_jitter=62, record_route_resolution_stats=63),
    _HCM.rsplit(".", 1)[0] + ".HttpFilter": dict(
        name=1, typed_config=4, config_discovery=5, is_optional=6, disabled=7),
    _HCM + ".UpgradeConfig": dict(upgrade_type=1, filters=2, enabled=3),
    _HCM + ".InternalAddressConfig": dict(unix_sockets=1, cidr_ranges=2),
    "envoy.config.core.v3.HttpProtocolOptions": dict(
        idle_timeout=1, max_headers_count=2, max_connection_duration=3, max_stream_duration=4,
        headers_with_underscores_action=5, max_requests_per_connection=6,
        max_response_headers_kb=7, max_connection_duration_jitter=8),
    "envoy.config.core.v3.Http1ProtocolOptions": dict(
        allow_absolute_url=1, accept_http_10=2, default_host_for_http_10=3, header_key_format=4,
        enable_trailers=5, allow_chunked_length=6,
        override_stream_error_on_invalid_http_message=7, send_fully_qualified_url=8,
        use_balsa_parser=9, allow_custom_methods=10, ignore_http_11_upgrade=11),
    "envoy.config.core.v3.Http1ProtocolOptions.HeaderKeyFormat": dict(
        proper_case_words=1, stateful_formatter=8),
    **getattr(route_types, "FIELD_NUMBERS", {}),
}
