"""Envoy's substitution format strings for L4 (tcp_proxy) access logs.

Two stages, so that the config loader can check a format without building it
and the worker gets plan Structs (`envoy_fast.accesslog.plan`):

* :func:`parse_text` / :func:`parse_json` turn a ``text_format`` string or a
  ``json_format`` struct into parsed parts, or raise :class:`FormatError` with
  Envoy's own message for a format Envoy rejects (``Not supported field in
  StreamInfo: FOO``, ``... Couldn't find valid command at position N``,
  ``DURATION does not take any parameters or length``, ...);
* :func:`compile_format` turns a format plan (`TextFormatPlan` /
  `JsonFormatPlan`) into a function ``format(fields) -> str`` (one access log
  record) run once per connection.

Parsed text format: a list whose items are a literal ``str`` or a
`FormatOperator`. Parsed json format: a json node, `JsonFormatted` (a string
value with operators), `JsonLiteral` (any other value), `JsonObject` (members
sorted by key, as Envoy prints them) or `JsonList`.

``fields`` is what the data plane knows when a connection closes (see
``envoy_fast.accesslog``); a missing or ``None`` field is "unset": ``-`` in a
text format (``""`` with ``omit_empty_values``), ``null`` in json (left out
with ``omit_empty_values``).
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .plan import (AccessLogFormatPlan, AnyJsonNode, FormatOperator, JsonFormatted, JsonList,
                   JsonLiteral, JsonMember, JsonObject, JsonNode, TextFormatPlan, TextPart)

__all__ = [
    "DEFAULT_FORMAT",
    "FormatError",
    "RESPONSE_FLAGS_LONG",
    "compile_format",
    "parse_json",
    "parse_text",
]

#: Envoy's default access log format (a text format).
DEFAULT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n'
)

#: Short response flag name -> long name (%RESPONSE_FLAGS_LONG%), as Envoy 1.40.
RESPONSE_FLAGS_LONG: Dict[str, str] = {
    "LH": "FailedLocalHealthCheck",
    "UH": "NoHealthyUpstream",
    "UT": "UpstreamRequestTimeout",
    "LR": "LocalReset",
    "UR": "UpstreamRemoteReset",
    "UF": "UpstreamConnectionFailure",
    "UC": "UpstreamConnectionTermination",
    "UO": "UpstreamOverflow",
    "NR": "NoRouteFound",
    "DI": "DelayInjected",
    "FI": "FaultInjected",
    "RL": "RateLimited",
    "UAEX": "UnauthorizedExternalService",
    "RLSE": "RateLimitServiceError",
    "DC": "DownstreamConnectionTermination",
    "URX": "UpstreamRetryLimitExceeded",
    "SI": "StreamIdleTimeout",
    "IH": "InvalidEnvoyRequestHeaders",
    "DPE": "DownstreamProtocolError",
    "UMSDR": "UpstreamMaxStreamDurationReached",
    "RFCF": "ResponseFromCacheFilter",
    "NFCF": "NoFilterConfigFound",
    "DT": "DurationTimeout",
    "UPE": "UpstreamProtocolError",
    "NC": "NoClusterFound",
    "OM": "OverloadManagerTerminated",
    "DF": "DnsResolutionFailed",
    "DO": "DropOverload",
    "DR": "DownstreamRemoteReset",
}


class FormatError(ValueError):
    """A format Envoy refuses; ``str()`` is Envoy's message."""


# --- parsing --------------------------------------------------------------------

# Envoy's command regex (substitution_formatter.cc): %COMMAND(params):length%.
_COMMAND = re.compile(r"%([A-Z0-9_]+)(\([^)]*\))?(:[0-9]+)?%")

# Command syntax, as Envoy's CommandSyntaxChecker.
_ONLY, _REQUIRED, _OPTIONAL = "only", "required", "optional"

# START_TIME formats may not print a newline.
_TIME_NEWLINE = re.compile(r"%[-_0^#]*[1-9]*(E|O)?n")
# RFC 7230 token characters: what Envoy accepts in a header name.
_HEADER_NAME = re.compile(r":?[!#$%&'*+\-.^_`|~0-9A-Za-z]*")


def parse_text(fmt: str) -> List[TextPart]:
    """Parse a text format as Envoy does; raises :class:`FormatError`."""
    parts: List[TextPart] = []
    literal: List[str] = []
    pos = 0
    n = len(fmt)
    while pos < n:
        ch = fmt[pos]
        if ch != "%":
            literal.append(ch)
            pos += 1
            continue
        if pos + 1 < n and fmt[pos + 1] == "%":
            literal.append("%")
            pos += 2
            continue
        if literal:
            parts.append("".join(literal))
            literal = []
        m = _COMMAND.match(fmt, pos)
        if m is None:
            raise FormatError(f"Incorrect configuration: {fmt}. Couldn't find valid command at position {pos}")
        command = m.group(1)
        param = m.group(2)[1:-1] if m.group(2) is not None else None
        length = int(m.group(3)[1:]) if m.group(3) is not None else None
        parts.append(_check_command(command, param, length))
        pos = m.end()
    if literal:
        parts.append("".join(literal))
    return parts


def parse_json(struct: Dict[str, Any]) -> AnyJsonNode:
    """Parse a ``json_format`` struct; raises :class:`FormatError` (``.key_path``
    says which value, as a tuple of keys and list indexes)."""
    return _json_node(struct, ())


def _json_node(value: Any, key_path: Tuple[Any, ...]) -> AnyJsonNode:
    if isinstance(value, dict):
        return JsonObject(members=[JsonMember(key=str(k), value=_json_node(value[k], key_path + (k,)))
                                   for k in sorted(value, key=str)])
    if isinstance(value, list):
        return JsonList(items=[_json_node(v, key_path + (i,)) for i, v in enumerate(value)])
    if isinstance(value, str):
        try:
            parts = parse_text(value)
        except FormatError as err:
            err.key_path = key_path  # type: ignore[attr-defined]
            raise
        if all(isinstance(p, str) for p in parts):
            return JsonLiteral(value="".join(parts))  # type: ignore[arg-type]
        return JsonFormatted(parts=parts)
    if value is not None and not isinstance(value, (bool, int, float)):
        err = FormatError(f"unsupported json_format value: {value!r}")
        err.key_path = key_path  # type: ignore[attr-defined]
        raise err
    return JsonLiteral(value=value)


def _check_command(command: str, param: Optional[str], length: Optional[int]) -> FormatOperator:
    spec = _OPERATORS.get(command)
    if spec is None:
        if command in _ENVOY_ONLY:
            raise FormatError(f"%{command}% is not supported by envoy_fast (L4 access logs)")
        raise FormatError(f"Not supported field in StreamInfo: {command}")
    syntax, length_allowed = spec[0], spec[1]
    if syntax == _ONLY and (param or length is not None):
        raise FormatError(f"{command} does not take any parameters or length")
    if syntax == _REQUIRED and not param:
        raise FormatError(f"{command} requires parameters")
    if not length_allowed and length is not None:
        raise FormatError(f"{command} does not allow length to be specified.")
    if command in ("REQ", "RESP", "TRAILER"):
        names = param.split("?")  # type: ignore[union-attr]
        if len(names) > 2:
            raise FormatError(f"More than 1 alternative header specified in token: {param}")
        for name in names:
            if not _HEADER_NAME.fullmatch(name):
                raise FormatError("Invalid header configuration. Format string contains invalid characters.")
    if command == "START_TIME" and param and _TIME_NEWLINE.search(param):
        raise FormatError("Invalid header configuration. Format string contains newline.")
    return FormatOperator(command=command, param=param or None, max_length=length)


# --- values -----------------------------------------------------------------------
#
# An operator compiles to ``value(fields)``: None (unset), str, or int (an int
# stays a number in json_format, as Envoy's numeric operators do).

Value = Callable[[Dict[str, Any]], Any]


def _split_port(address: Optional[str]) -> Tuple[Optional[str], Optional[int]]:
    """``"1.2.3.4:80"`` / ``"[::1]:80"`` -> (ip, port)."""
    if not address:
        return None, None
    if address.startswith("["):
        ip, _, port = address[1:].partition("]:")
        return ip, int(port) if port.isdigit() else None
    ip, sep, port = address.rpartition(":")
    if not sep or ":" in ip:
        return address, None
    return ip, int(port) if port.isdigit() else None


def _mask(param: Optional[str]) -> Optional[int]:
    """A *_WITHOUT_PORT(mask) parameter as Envoy reads it: None (no mask) when
    it is not a number; a negative number prints ""."""
    if param is None:
        return None
    m = re.fullmatch(r"\s*([+-]?\d+)\s*", param)
    if m is None:
        return None
    value = int(m.group(1))
    if not -(2**31) <= value < 2**31:
        return None
    return value


def _without_port(get: Callable[[Dict[str, Any]], Optional[str]], param: Optional[str]) -> Value:
    mask = _mask(param)

    def value(fields: Dict[str, Any]) -> Optional[str]:
        ip = _split_port(get(fields))[0]
        if ip is None or mask is None:
            return ip
        if mask < 0:
            return ""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return ip
        bits = min(mask, addr.max_prefixlen)
        return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))

    return value


def _port(get: Callable[[Dict[str, Any]], Optional[str]]) -> Value:
    return lambda fields: _split_port(get(fields))[1]


def _field(name: str) -> Callable[[Dict[str, Any]], Any]:
    return lambda fields: fields.get(name)


def _const(v: Any) -> Value:
    """A value that is the same for every connection (folded into the text at compile)."""

    def value(fields: Dict[str, Any]) -> Any:
        return v

    value.const = v  # type: ignore[attr-defined]
    return value


_downstream_remote = _field("downstream_remote_address")
_downstream_local = _field("downstream_local_address")
_upstream_local = _field("upstream_local_address")


def _downstream_direct(fields: Dict[str, Any]) -> Optional[str]:
    direct = fields.get("downstream_direct_remote_address")
    return direct if direct is not None else fields.get("downstream_remote_address")


def _upstream_remote(fields: Dict[str, Any]) -> Optional[str]:
    # The upstream connection's peer: only once connected (upstream_local_address
    # is known), unlike UPSTREAM_HOST, which names the host picked even when the
    # connect failed.
    if "upstream_remote_address" in fields:
        return fields["upstream_remote_address"]
    return fields.get("upstream_host") if fields.get("upstream_local_address") is not None else None


def _upstream_host_name(fields: Dict[str, Any]) -> Optional[str]:
    return fields.get("upstream_host_name") or fields.get("upstream_host")


def _response_flags(fields: Dict[str, Any]) -> str:
    # Envoy joins the flags in the order they were set; none is "-" (a value,
    # not "unset": json prints "-" and omit_empty_values keeps it).
    flags = fields.get("response_flags")
    return ",".join(flags) if flags else "-"


def _response_flags_long(fields: Dict[str, Any]) -> str:
    flags = fields.get("response_flags")
    return ",".join(RESPONSE_FLAGS_LONG.get(f, f) for f in flags) if flags else "-"


def _transport_failure(fields: Dict[str, Any]) -> Optional[str]:
    reason = fields.get("upstream_transport_failure_reason")
    return reason.replace(" ", "_") if reason else None


# command -> (syntax, length allowed, factory(param, length, cluster_alt_names) -> Value)
_OPERATORS: Dict[str, Tuple[str, bool, Callable[..., Value]]] = {}


def _op(names: str, syntax: str = _ONLY, length: bool = False):
    def register(factory: Callable[..., Value]) -> Callable[..., Value]:
        for name in names.split():
            _OPERATORS[name] = (syntax, length, factory)
        return factory

    return register


def _simple(names: str, value: Value) -> None:
    _op(names)(lambda param, length, ctx: value)


_op("START_TIME", _OPTIONAL)(lambda param, length, ctx: _start_time(param))
_simple("DOWNSTREAM_REMOTE_ADDRESS", _downstream_remote)
_simple("DOWNSTREAM_LOCAL_ADDRESS", _downstream_local)
_simple("DOWNSTREAM_DIRECT_REMOTE_ADDRESS", _downstream_direct)
_simple("UPSTREAM_LOCAL_ADDRESS", _upstream_local)
_simple("UPSTREAM_REMOTE_ADDRESS", _upstream_remote)
_op("DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", _OPTIONAL)(lambda p, n, c: _without_port(_downstream_remote, p))
_op("DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", _OPTIONAL)(lambda p, n, c: _without_port(_downstream_local, p))
_op("DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT", _OPTIONAL)(lambda p, n, c: _without_port(_downstream_direct, p))
_op("UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", _OPTIONAL)(lambda p, n, c: _without_port(_upstream_local, p))
_op("UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", _OPTIONAL)(lambda p, n, c: _without_port(_upstream_remote, p))
_simple("DOWNSTREAM_REMOTE_PORT", _port(_downstream_remote))
_simple("DOWNSTREAM_LOCAL_PORT", _port(_downstream_local))
_simple("DOWNSTREAM_DIRECT_REMOTE_PORT", _port(_downstream_direct))
_simple("UPSTREAM_LOCAL_PORT", _port(_upstream_local))
_simple("UPSTREAM_REMOTE_PORT", _port(_upstream_remote))
_simple("UPSTREAM_HOST", _field("upstream_host"))
_simple("UPSTREAM_HOST_NAME", _upstream_host_name)
_simple("UPSTREAM_HOST_NAME_WITHOUT_PORT", lambda f: _split_port(_upstream_host_name(f))[0])
_simple("UPSTREAM_CLUSTER_RAW", _field("upstream_cluster"))
_op("UPSTREAM_CLUSTER")(lambda p, n, alt_names: _upstream_cluster(alt_names))
_simple("BYTES_RECEIVED DOWNSTREAM_WIRE_BYTES_RECEIVED", _field("bytes_received"))
_simple("BYTES_SENT DOWNSTREAM_WIRE_BYTES_SENT", _field("bytes_sent"))
_simple("DURATION", _field("duration_ms"))
_simple("RESPONSE_FLAGS", _response_flags)
_simple("RESPONSE_FLAGS_LONG", _response_flags_long)
_simple("CONNECTION_ID", _field("connection_id"))
_simple("UPSTREAM_REQUEST_ATTEMPT_COUNT", _field("upstream_request_attempt_count"))
_simple("UPSTREAM_TRANSPORT_FAILURE_REASON", _transport_failure)
_op("HOSTNAME")(lambda p, n, c: _const(socket.gethostname()))
_simple("ACCESS_LOG_TYPE", lambda f: "DownstreamEnd" if "protocol" in f else "TcpConnectionEnd")


def _header(which: str, param: str) -> Value:
    """%REQ(H?ALT)% / %RESP(H?ALT)%: the first header of that name (any
    case), else the alternative's; unset for TCP records."""
    names = [n.lower() for n in param.split("?")]

    def value(fields: Dict[str, Any]) -> Any:
        headers = fields.get(which)
        if not headers:
            return None
        for name in names:
            v = headers.get(name)
            if v is not None:
                return v
        return None
    return value


# HTTP information (an HCM's records carry it; a TCP record has none: 0 or unset).
_simple("RESPONSE_CODE", lambda f: f.get("response_code", 0))
_simple("PROTOCOL", _field("protocol"))
_simple("RESPONSE_CODE_DETAILS", _field("response_code_details"))
_simple("REQUEST_DURATION", _field("request_duration_ms"))
_simple("RESPONSE_DURATION", _field("response_duration_ms"))
_simple("ROUTE_NAME", lambda f: f.get("route_name") or None)
_op("REQ", _REQUIRED, length=True)(lambda p, n, c: _header("request_headers", p))
_op("RESP", _REQUIRED, length=True)(lambda p, n, c: _header("response_headers", p))
# Not produced yet: unset (or 0).
_simple("REQUEST_HEADERS_BYTES RESPONSE_HEADERS_BYTES", _const(0))
_simple(
    "REQUEST_TX_DURATION RESPONSE_TX_DURATION VIRTUAL_CLUSTER_NAME REQUESTED_SERVER_NAME"
    " DOWNSTREAM_TRANSPORT_FAILURE_REASON DOWNSTREAM_PEER_SUBJECT UPSTREAM_PEER_SUBJECT"
    " DOWNSTREAM_HANDSHAKE_DURATION",
    _const(None),
)
_op("TRAILER", _REQUIRED, length=True)(lambda p, n, c: _const(None))
_op("ENVIRONMENT", _REQUIRED, length=True)(lambda p, n, c: _const(os.environ.get(p)))

#: Commands Envoy 1.40 knows that envoy_fast does not produce (a format using
#: one is refused as "not supported", not as unknown).
_ENVOY_ONLY = frozenset(
    (
        "UPSTREAM_CONNECTION_ID CONNECTION_TERMINATION_DETAILS FILTER_CHAIN_NAME"
        " UPSTREAM_WIRE_BYTES_SENT UPSTREAM_WIRE_BYTES_RECEIVED UPSTREAM_HEADER_BYTES_SENT"
        " UPSTREAM_HEADER_BYTES_RECEIVED DOWNSTREAM_HEADER_BYTES_SENT DOWNSTREAM_HEADER_BYTES_RECEIVED"
        " BYTES_RETRANSMITTED PACKETS_RETRANSMITTED UNIQUE_ID STREAM_ID EMIT_TIME"
        " UPSTREAM_LOCAL_CLOSE_REASON UPSTREAM_DETECTED_CLOSE_TYPE DOWNSTREAM_DETECTED_CLOSE_TYPE"
        " DOWNSTREAM_LOCAL_ADDRESS_ENDPOINT_ID COMMON_DURATION UPSTREAM_FILTER_STATE FILTER_STATE"
        " DYNAMIC_METADATA CLUSTER_METADATA UPSTREAM_METADATA UPSTREAM_CONNECTION_POOL_READY_DURATION"
        " RESPONSE_TRAILERS_BYTES"
        " DOWNSTREAM_PEER_URI_SAN DOWNSTREAM_LOCAL_URI_SAN DOWNSTREAM_PEER_DNS_SAN DOWNSTREAM_LOCAL_DNS_SAN"
        " DOWNSTREAM_PEER_IP_SAN DOWNSTREAM_LOCAL_IP_SAN DOWNSTREAM_LOCAL_SUBJECT DOWNSTREAM_TLS_SESSION_ID"
        " DOWNSTREAM_TLS_CIPHER DOWNSTREAM_TLS_VERSION DOWNSTREAM_PEER_FINGERPRINT_256"
        " DOWNSTREAM_PEER_FINGERPRINT_1 DOWNSTREAM_PEER_SERIAL DOWNSTREAM_PEER_ISSUER DOWNSTREAM_PEER_CERT"
        " DOWNSTREAM_PEER_CERT_V_START DOWNSTREAM_PEER_CERT_V_END UPSTREAM_PEER_URI_SAN UPSTREAM_LOCAL_URI_SAN"
        " UPSTREAM_PEER_DNS_SAN UPSTREAM_LOCAL_DNS_SAN UPSTREAM_PEER_IP_SAN UPSTREAM_LOCAL_IP_SAN"
        " UPSTREAM_TLS_SESSION_ID UPSTREAM_TLS_CIPHER UPSTREAM_TLS_VERSION"
        " UPSTREAM_PEER_CERT UPSTREAM_PEER_CERT_V_START UPSTREAM_PEER_CERT_V_END UPSTREAM_PEER_ISSUER"
        " DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256 GRPC_STATUS GRPC_STATUS_NUMBER TRACE_ID CEL METADATA"
        " QUERY_PARAM PATH CUSTOM_FLAGS"
    ).split()
)


def _upstream_cluster(alt_names: Mapping[str, str]) -> Value:
    # %UPSTREAM_CLUSTER% prints a cluster's alt_stat_name when it has one.
    def value(fields: Dict[str, Any]) -> Optional[str]:
        name = fields.get("upstream_cluster")
        return alt_names.get(name, name) if name is not None else None

    return value


# --- START_TIME -----------------------------------------------------------------------

_TIME_SPECIAL = re.compile(r"%([1-9]?)f|%s")
_STRFTIME_TOKEN = re.compile(r"%E\*S|%E[0-9]S|%Ez|%E4Y|%[A-Za-z%]|%")
# Directives left to the C library (the C locale's, which Envoy's absl matches).
_C_DIRECTIVES = set("aAbBcCdDeFgGhHIjklmMprRSTuUVwWxXyY")


def _time_parts(us: int) -> Tuple[int, int]:
    """(whole seconds, microseconds) of an epoch time in microseconds."""
    return us // 1_000_000, us % 1_000_000


def _strftime_segment(segment: str) -> Callable[[time.struct_time, int], str]:
    """A START_TIME format without %s/%f as a function of (UTC tm, microseconds)."""
    pieces: List[Any] = []
    pos = 0
    for m in _STRFTIME_TOKEN.finditer(segment):
        if m.start() > pos:
            pieces.append(segment[pos:m.start()])
        tok = m.group(0)
        pos = m.end()
        if tok in ("%", "%%"):
            pieces.append("%")
        elif tok == "%Z":
            pieces.append("UTC")
        elif tok == "%z":
            pieces.append("+0000")
        elif tok == "%Ez":
            pieces.append("+00:00")
        elif tok == "%E4Y":
            pieces.append(lambda tm, us: "%04d" % tm.tm_year)
        elif tok == "%E*S":
            pieces.append(lambda tm, us: ("%02d.%06d" % (tm.tm_sec, us)).rstrip("0").rstrip("."))
        elif tok.startswith("%E") and tok.endswith("S"):
            digits = int(tok[2])
            if digits == 0:
                pieces.append(lambda tm, us: "%02d" % tm.tm_sec)
            else:
                pieces.append(lambda tm, us, d=digits: "%02d.%s" % (tm.tm_sec, ("%06d000" % us)[:d]))
        elif tok[1] in _C_DIRECTIVES:
            pieces.append(lambda tm, us, d=tok: time.strftime(d, tm))
        else:
            pieces.append(tok)  # unknown: printed as is (absl does the same)
    if pos < len(segment):
        pieces.append(segment[pos:])

    def fmt(tm: time.struct_time, us: int) -> str:
        return "".join(p if isinstance(p, str) else p(tm, us) for p in pieces)

    return fmt


def _start_time(param: Optional[str]) -> Value:
    if not param:
        cache: List[Any] = [None, ""]

        def default(fields: Dict[str, Any]) -> Optional[str]:
            start = fields.get("start_time")
            if start is None:
                return None
            sec, us = _time_parts(int(round(start * 1_000_000)))
            if cache[0] != sec:
                cache[0] = sec
                cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            return "%s.%03dZ" % (cache[1], us // 1000)

        return default

    # As Envoy: %s, %f and %1f..%9f are found first (a preceding % does not
    # escape them); the text between them goes to strftime.
    items: List[Any] = []
    pos = 0
    for m in _TIME_SPECIAL.finditer(param):
        if m.start() > pos:
            items.append(_strftime_segment(param[pos:m.start()]))
        if m.group(0) == "%s":
            items.append("s")
        else:
            items.append(int(m.group(1) or 9))
        pos = m.end()
    if pos < len(param):
        items.append(_strftime_segment(param[pos:]))
    sub_second = any(isinstance(i, int) for i in items) or "%E" in param
    cache = [None, ""]

    def custom(fields: Dict[str, Any]) -> Optional[str]:
        start = fields.get("start_time")
        if start is None:
            return None
        sec, us = _time_parts(int(round(start * 1_000_000)))
        if not sub_second and cache[0] == sec:
            return cache[1]
        tm = time.gmtime(sec)
        out = []
        for item in items:
            if item == "s":
                out.append(str(sec))
            elif isinstance(item, int):
                out.append(("%06d000" % us)[:item])
            else:
                out.append(item(tm, us))
        text = "".join(out)
        cache[0], cache[1] = sec, text
        return text

    return custom


# --- compiling -------------------------------------------------------------------------


def _operator(op: FormatOperator, alt_names: Mapping[str, str]) -> Value:
    length = op.max_length
    value = _OPERATORS[op.command][2](op.param, length, alt_names)
    if length is None:
        return value
    if hasattr(value, "const"):
        v = value.const  # type: ignore[attr-defined]
        return _const(v[:length] if isinstance(v, str) else v)

    def truncated(fields: Dict[str, Any]) -> Any:
        v = value(fields)
        return v[:length] if isinstance(v, str) else v

    return truncated


def _text(parts: List[TextPart], omit_empty: bool, alt_names: Mapping[str, str]) -> Callable[[Dict[str, Any]], str]:
    """parts -> function(fields) -> str."""
    unset = "" if omit_empty else "-"
    pieces: List[Any] = []
    for part in parts:
        if not isinstance(part, str):
            value = _operator(part, alt_names)
            if not hasattr(value, "const"):
                pieces.append(value)
                continue
            part = unset if value.const is None else str(value.const)  # type: ignore[attr-defined]
        if pieces and isinstance(pieces[-1], str):
            pieces[-1] += part
        else:
            pieces.append(part)
    if len(pieces) == 1 and isinstance(pieces[0], str):
        text = pieces[0]
        return lambda fields: text

    def fmt(fields: Dict[str, Any]) -> str:
        out = []
        for p in pieces:
            if p.__class__ is str:
                out.append(p)
            else:
                v = p(fields)
                out.append(unset if v is None else str(v))
        return "".join(out)

    return fmt


_OMIT = object()


def _json_value(node: JsonNode, omit_empty: bool, alt_names: Mapping[str, str]) -> Callable[[Dict[str, Any]], Any]:
    """A json node -> function(fields) -> the Python value (``_OMIT`` when left out)."""
    if isinstance(node, JsonLiteral):
        body = node.value
        if omit_empty and body is None:
            return lambda fields: _OMIT
        return lambda fields: body
    if isinstance(node, JsonFormatted):
        parts = node.parts
        if len(parts) == 1:
            # One operator and nothing else: a typed value (number, string, null).
            value = _operator(parts[0], alt_names)  # type: ignore[arg-type]
            if not omit_empty:
                return value

            def single(fields: Dict[str, Any]) -> Any:
                v = value(fields)
                return _OMIT if v is None else v

            return single
        return _text(parts, omit_empty, alt_names)
    if isinstance(node, JsonList):
        items = [_json_value(n, omit_empty, alt_names) for n in node.items]

        def lst(fields: Dict[str, Any]) -> Any:
            out = []
            for item in items:
                v = item(fields)
                if v is not _OMIT:
                    out.append(v)
            return out

        return lst
    if not isinstance(node, JsonObject):
        raise TypeError(f"not a json_format node: {node!r}")
    members = [(m.key, _json_value(m.value, omit_empty, alt_names)) for m in node.members]

    def obj(fields: Dict[str, Any]) -> Any:
        out = {}
        for key, member in members:
            v = member(fields)
            if v is not _OMIT:
                out[key] = v
        # With omit_empty_values an empty struct is left out (a list is not).
        return _OMIT if omit_empty and not out else out

    return obj


def compile_format(spec: AccessLogFormatPlan,
                   cluster_alt_names: Optional[Mapping[str, str]] = None) -> Callable[[Dict[str, Any]], str]:
    """A format plan (`TextFormatPlan` / `JsonFormatPlan`) -> ``format(fields)
    -> str`` (the whole record; json records end with a newline, text records
    as their format says).

    ``cluster_alt_names`` ({cluster: alt_stat_name}) is what %UPSTREAM_CLUSTER%
    prints for a cluster that has one.
    """
    alt_names: Mapping[str, str] = cluster_alt_names or {}
    omit = spec.omit_empty_values
    if isinstance(spec, TextFormatPlan):
        return _text(spec.parts, omit, alt_names)
    value = _json_value(spec.template, omit, alt_names)  # type: ignore[attr-defined]
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode

    def fmt(fields: Dict[str, Any]) -> str:
        v = value(fields)
        return dumps({} if v is _OMIT else v) + "\n"

    return fmt
