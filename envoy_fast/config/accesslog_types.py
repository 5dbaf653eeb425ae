"""Access log messages: ``AccessLog`` and the loggers its ``typed_config`` holds."""
from typing import Annotated, Any, Dict, Optional

from msgspec import Meta

from envoy_fast.extensions.registry import AccessLoggerConfig

from .base import Message as _Message
from .base import NonEmptyStr
from .base import names as _names
from .base import one_of as _one_of

# --- access logs -----------------------------------------------------------------
# Format strings are parsed here (in __post_init__), so that a format Envoy
# refuses fails the config with Envoy's message at the log_format's path; the
# worker builds its loggers from envoy_fast.accesslog.build_access_log_plan().


def _check_format(text: Optional[str] = None, json_format: Optional[Dict[str, Any]] = None, where: str = "") -> None:
    from envoy_fast.accesslog.format import FormatError, parse_json, parse_text

    try:
        if json_format is not None:
            parse_json(json_format)
        elif text is not None:
            parse_text(text)
    except FormatError as err:
        key_path = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in getattr(err, "key_path", ()))
        raise ValueError(f"{where}{key_path}: {err}" if where else str(err)) from None


class DataSource(_Message, kw_only=True):
    """envoy.config.core.v3.DataSource; only ``inline_string`` is supported."""

    ENVOY_TYPE = "envoy.config.core.v3.DataSource"
    ENVOY_FIELDS = _names("filename inline_bytes inline_string environment_variable watched_directory")

    inline_string: Optional[str] = None

    def __post_init__(self) -> None:
        if self.inline_string is None:
            raise ValueError("one of filename, inline_bytes, inline_string, environment_variable is required")


class SubstitutionFormatString(_Message, kw_only=True):
    """envoy.config.core.v3.SubstitutionFormatString (an access log's format).

    Exactly one of ``text_format`` (deprecated, still honoured),
    ``text_format_source`` or ``json_format`` (a google.protobuf.Struct).
    """

    ENVOY_TYPE = "envoy.config.core.v3.SubstitutionFormatString"
    ENVOY_FIELDS = _names(
        "text_format json_format text_format_source omit_empty_values content_type formatters"
        " json_format_options"
    )
    # content_type only applies to local replies; json output is always sorted
    # by key (Envoy 1.40 prints it so with or without sort_properties).
    IGNORED = {"content_type": None, "json_format_options": None}

    text_format: Optional[str] = None
    json_format: Optional[Dict[str, Any]] = None
    text_format_source: Optional[DataSource] = None
    omit_empty_values: bool = False

    def __post_init__(self) -> None:
        given = _one_of(self, "text_format json_format text_format_source")
        if not given:
            raise ValueError("one of text_format, json_format, text_format_source is required")
        if len(given) > 1:
            raise ValueError(f"only one of text_format, json_format, text_format_source may be set (got {', '.join(given)})")
        if self.text_format_source is not None:
            _check_format(text=self.text_format_source.inline_string, where="text_format_source.inline_string")
        elif self.json_format is not None:
            _check_format(json_format=self.json_format, where="json_format")
        else:
            _check_format(text=self.text_format, where="text_format")


ACCESS_LOG_FILE_TYPE_URL = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
ACCESS_LOG_STDOUT_TYPE_URL = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
ACCESS_LOG_STDERR_TYPE_URL = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog"


class FileAccessLog(_Message, AccessLoggerConfig, kw_only=True, tag_field="@type", tag=ACCESS_LOG_FILE_TYPE_URL):
    """envoy.extensions.access_loggers.file.v3.FileAccessLog.

    At most one of ``log_format`` and the deprecated (still honoured)
    ``format`` / ``json_format`` / ``typed_json_format``; none (or ``format:
    ""``) is Envoy's default format. Loading opens ``path`` for appending (and
    so creates it), as Envoy does, and fails if it cannot.
    """

    ENVOY_TYPE = "envoy.extensions.access_loggers.file.v3.FileAccessLog"
    ENVOY_FIELDS = _names("path format json_format typed_json_format log_format")

    path: NonEmptyStr
    format: Optional[str] = None
    json_format: Optional[Dict[str, Any]] = None
    typed_json_format: Optional[Dict[str, Any]] = None
    log_format: Optional[SubstitutionFormatString] = None

    def __post_init__(self) -> None:
        given = _one_of(self, "format json_format typed_json_format log_format")
        if len(given) > 1:
            raise ValueError(f"only one of format, json_format, typed_json_format, log_format may be set (got {', '.join(given)})")
        if self.format:
            _check_format(text=self.format, where="format")
        elif self.json_format is not None:
            _check_format(json_format=self.json_format, where="json_format")
        elif self.typed_json_format is not None:
            _check_format(json_format=self.typed_json_format, where="typed_json_format")
        import os

        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644))
        except OSError as err:
            raise ValueError(f"unable to open file '{self.path}': {err.strerror or err}") from None


class StdoutAccessLog(_Message, AccessLoggerConfig, kw_only=True, tag_field="@type", tag=ACCESS_LOG_STDOUT_TYPE_URL):
    """envoy.extensions.access_loggers.stream.v3.StdoutAccessLog (no log_format: Envoy's default)."""

    ENVOY_TYPE = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
    ENVOY_FIELDS = _names("log_format")

    log_format: Optional[SubstitutionFormatString] = None


class StderrAccessLog(_Message, AccessLoggerConfig, kw_only=True, tag_field="@type", tag=ACCESS_LOG_STDERR_TYPE_URL):
    """envoy.extensions.access_loggers.stream.v3.StderrAccessLog (no log_format: Envoy's default)."""

    ENVOY_TYPE = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
    ENVOY_FIELDS = _names("log_format")

    log_format: Optional[SubstitutionFormatString] = None


class AccessLog(_Message, kw_only=True):
    """envoy.config.accesslog.v3.AccessLog (no ``filter``: every connection is logged)."""

    ENVOY_TYPE = "envoy.config.accesslog.v3.AccessLog"
    ENVOY_FIELDS = _names("name filter typed_config")

    name: str = ""
    #: Any registered access logger's Struct, converted by its ``@type``
    #: (``envoy_fast.extensions.registry``).
    typed_config: Annotated[AccessLoggerConfig, Meta(extra={"registry": "access_logger"})]
