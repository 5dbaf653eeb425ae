"""A cluster's ``typed_extension_protocol_options``: the upstream HTTP
protocol options (``envoy.extensions.upstreams.http.v3.HttpProtocolOptions``)
that its HTTP/1.1 connection pools read.

The core option messages (``envoy.config.core.v3.HttpProtocolOptions`` and
``Http1ProtocolOptions``) are the http_connection_manager's; this module is
imported lazily (by the normaliser, the dumper and ``Cluster``), never by
``types.py`` at import time, so the two config modules do not import each
other while loading.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import msgspec

from envoy_fast.config import proto_schema
from envoy_fast.config.base import Message as _Message
from envoy_fast.config.base import names as _names
from envoy_fast.extensions.network.http_connection_manager_config import (
    Http1ProtocolOptions, HttpProtocolOptions)

__all__ = ["UPSTREAM_HTTP_OPTIONS_TYPE", "UPSTREAM_HTTP_OPTIONS_URL", "UPSTREAM_HTTP_OPTIONS_NAMES",
           "ExplicitHttpConfig", "UpstreamHttpProtocolOptions", "FIELD_NUMBERS", "parsed"]

UPSTREAM_HTTP_OPTIONS_TYPE = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
UPSTREAM_HTTP_OPTIONS_URL = "type.googleapis.com/" + UPSTREAM_HTTP_OPTIONS_TYPE
#: The keys Envoy 1.40 accepts for it in typed_extension_protocol_options
#: (the extension name and the message name, both checked on the binary).
UPSTREAM_HTTP_OPTIONS_NAMES = ("envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                               "envoy.upstreams.http.http_protocol_options")


class ExplicitHttpConfig(_Message, kw_only=True):
    """...HttpProtocolOptions.ExplicitHttpConfig: HTTP/1.1 only."""

    ENVOY_TYPE = UPSTREAM_HTTP_OPTIONS_TYPE + ".ExplicitHttpConfig"
    ENVOY_FIELDS = _names("http_protocol_options http2_protocol_options http3_protocol_options")

    http_protocol_options: Optional[Http1ProtocolOptions] = None


class UpstreamHttpProtocolOptions(_Message, kw_only=True, tag_field="@type", tag=UPSTREAM_HTTP_OPTIONS_URL):
    """envoy.extensions.upstreams.http.v3.HttpProtocolOptions. Envoy requires
    one of explicit_http_config / use_downstream_protocol_config /
    auto_config; envoy_fast speaks HTTP/1.1 upstream, so only the first."""

    ENVOY_TYPE = UPSTREAM_HTTP_OPTIONS_TYPE
    ENVOY_FIELDS = _names(
        "common_http_protocol_options upstream_http_protocol_options explicit_http_config"
        " use_downstream_protocol_config auto_config http_filters header_validation_config"
        " outlier_detection")

    common_http_protocol_options: Optional[HttpProtocolOptions] = None
    explicit_http_config: Optional[ExplicitHttpConfig] = None

    def common(self) -> HttpProtocolOptions:
        return self.common_http_protocol_options or HttpProtocolOptions()


FIELD_NUMBERS = {
    UPSTREAM_HTTP_OPTIONS_TYPE: dict(
        common_http_protocol_options=1, upstream_http_protocol_options=2, explicit_http_config=3,
        use_downstream_protocol_config=4, auto_config=5, http_filters=6,
        header_validation_config=7, outlier_detection=8),
    UPSTREAM_HTTP_OPTIONS_TYPE + ".ExplicitHttpConfig": dict(
        http_protocol_options=1, http2_protocol_options=2, http3_protocol_options=3),
}

proto_schema.FIELD_NUMBERS.update(FIELD_NUMBERS)     # /config_dump prints in field order


def parsed(options: Optional[Dict[str, Any]]) -> Optional[UpstreamHttpProtocolOptions]:
    """The upstream HTTP options of a cluster's (normalised)
    typed_extension_protocol_options, or None."""
    if not options:
        return None
    for name in UPSTREAM_HTTP_OPTIONS_NAMES:
        if name in options:
            return msgspec.convert(options[name], UpstreamHttpProtocolOptions)
    return None
