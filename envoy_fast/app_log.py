"""The application log (Envoy's ``-l``, ``--log-path``, ``--log-format``,
``--component-log-level`` and the bootstrap's ``application_log_config``).

Lines are formatted from Envoy's spdlog patterns. ``%t`` (Envoy's thread id)
is the process id, since envoy_fast's workers are processes. Loggers are
``envoy_fast.<component>``; the component is what ``%n`` shows and what
``--component-log-level`` sets.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import re
import sys
import time
from typing import Any, Callable, Dict, List, Optional

#: Below DEBUG: Envoy's trace level.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {
    "trace": TRACE, "debug": logging.DEBUG, "info": logging.INFO,
    "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR,
    "critical": logging.CRITICAL, "off": logging.CRITICAL + 10,
}

#: envoy_fast's own: [%Y-%m-%d %T.%e][%t][%l][%n] %v (Envoy's default adds the
#: C++ source location, which has no meaning here).
DEFAULT_FORMAT = "[%Y-%m-%d %T.%e][%t][%l][%n] %v"

#: Components envoy_fast logs under (logger envoy_fast.<name>).
COMPONENTS = ("main", "admin", "config", "upstream", "worker")

#: Envoy 1.40's component names: accepted by --component-log-level; those
#: not in COMPONENTS have nothing to log here.
ENVOY_COMPONENTS = frozenset("""
admin alternate_protocols_cache aws assert backtrace basic_auth cache_filter client
config connection conn_handler compression credential_injector decompression dns
dubbo envoy_bug ext_authz ext_proc rocketmq file filter forward_proxy geolocation
grpc happy_eyeballs hc health_checker http http2 hystrix init io jwt kafka
key_value_store lua main matcher misc mongo multi_connection oauth2 quic
quic_stream pool rate_limit_quota rbac rds redis router runtime stats secret tap
testing thrift tracing upstream udp wasm websocket golang
""".split()) | frozenset(COMPONENTS)

#: Envoy components whose messages envoy_fast logs under one of its own.
_ALIASES = {"connection": "upstream", "pool": "upstream", "conn_handler": "worker",
            "filter": "worker"}

_LEVEL_NAMES = {TRACE: "trace", logging.DEBUG: "debug", logging.INFO: "info",
                logging.WARNING: "warning", logging.ERROR: "error",
                logging.CRITICAL: "critical"}
_SHORT = {TRACE: "T", logging.DEBUG: "D", logging.INFO: "I", logging.WARNING: "W",
          logging.ERROR: "E", logging.CRITICAL: "C"}

_FLAG = re.compile(r"%(-?\d+)?(.)", re.S)


def component(record: logging.LogRecord) -> str:
    """``envoy_fast.worker.0`` -> ``worker``."""
    parts = record.name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "envoy_fast" else parts[-1]


def _message(r: logging.LogRecord) -> str:
    msg = r.getMessage()
    if r.exc_info:
        msg += "\n" + logging.Formatter().formatException(r.exc_info)
    return msg


def _ts(r: logging.LogRecord) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(r.created)


# Flag -> (record, local time) -> text. spdlog's flags plus Envoy's %j and %_.
_FLAGS: Dict[str, Callable[[logging.LogRecord, datetime.datetime], str]] = {
    "v": lambda r, t: _message(r),
    "j": lambda r, t: json.dumps(_message(r))[1:-1],
    "_": lambda r, t: _message(r).replace("\n", "\\n"),
    "l": lambda r, t: _LEVEL_NAMES.get(r.levelno, r.levelname.lower()),
    "L": lambda r, t: _SHORT.get(r.levelno, r.levelname[:1]),
    "n": lambda r, t: component(r),
    "t": lambda r, t: str(os.getpid()),
    "P": lambda r, t: str(os.getpid()),
    "Y": lambda r, t: "%04d" % t.year,
    "y": lambda r, t: "%02d" % (t.year % 100),
    "m": lambda r, t: "%02d" % t.month,
    "d": lambda r, t: "%02d" % t.day,
    "H": lambda r, t: "%02d" % t.hour,
    "I": lambda r, t: "%02d" % ((t.hour % 12) or 12),
    "M": lambda r, t: "%02d" % t.minute,
    "S": lambda r, t: "%02d" % t.second,
    "e": lambda r, t: "%03d" % (t.microsecond // 1000),
    "f": lambda r, t: "%06d" % t.microsecond,
    "F": lambda r, t: "%09d" % (t.microsecond * 1000),
    "p": lambda r, t: "AM" if t.hour < 12 else "PM",
    "T": lambda r, t: t.strftime("%H:%M:%S"),
    "R": lambda r, t: t.strftime("%H:%M"),
    "D": lambda r, t: t.strftime("%m/%d/%y"),
    "a": lambda r, t: t.strftime("%a"),
    "A": lambda r, t: t.strftime("%A"),
    "b": lambda r, t: t.strftime("%b"),
    "h": lambda r, t: t.strftime("%b"),
    "B": lambda r, t: t.strftime("%B"),
    "c": lambda r, t: t.strftime("%a %b %d %H:%M:%S %Y"),
    "C": lambda r, t: "%02d" % (t.year % 100),
    "z": lambda r, t: time.strftime("%z", time.localtime(r.created))[:3] + ":"
    + time.strftime("%z", time.localtime(r.created))[3:],
    "E": lambda r, t: "%d" % int(r.created),
    "g": lambda r, t: r.pathname,
    "s": lambda r, t: os.path.basename(r.pathname),
    "#": lambda r, t: str(r.lineno),
    "!": lambda r, t: r.funcName,
    "i": lambda r, t: "",
    "o": lambda r, t: "",
    "O": lambda r, t: "",
    "%": lambda r, t: "%",
}


def compile_pattern(pattern: str) -> List[Any]:
    """A spdlog pattern as a list of literal strings and (flag, width) pairs.
    An unknown flag is kept as written, as spdlog does."""
    parts: List[Any] = []
    pos = 0
    for m in _FLAG.finditer(pattern):
        if m.start() > pos:
            parts.append(pattern[pos:m.start()])
        width, flag = m.group(1), m.group(2)
        if flag in _FLAGS:
            parts.append((_FLAGS[flag], int(width) if width else 0))
        else:
            parts.append(m.group(0))
        pos = m.end()
    if pos < len(pattern):
        parts.append(pattern[pos:])
    return parts


def _render(parts: List[Any], r: logging.LogRecord, t: datetime.datetime) -> str:
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        else:
            fn, width = p
            s = fn(r, t)
            if width > 0:
                s = s.rjust(width)
            elif width < 0:
                s = s.ljust(-width)
            out.append(s)
    return "".join(out)


class EnvoyFormatter(logging.Formatter):
    """Formats a record with an Envoy (spdlog) ``--log-format`` pattern."""

    def __init__(self, pattern: str = DEFAULT_FORMAT) -> None:
        super().__init__()
        self.parts = compile_pattern(pattern)

    def format(self, record: logging.LogRecord) -> str:
        return _render(self.parts, record, _ts(record))


class JsonFormatter(logging.Formatter):
    """``application_log_config.log_format.json_format``: one JSON object a
    line; each string value is a pattern, other values are kept."""

    def __init__(self, struct: Dict[str, Any]) -> None:
        super().__init__()
        self.template = self._compile(struct)

    def _compile(self, value: Any) -> Any:
        if isinstance(value, str):
            return ("p", compile_pattern(value))
        if isinstance(value, dict):
            return {k: self._compile(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._compile(v) for v in value]
        return ("v", value)

    def _fill(self, tpl: Any, r: logging.LogRecord, t: datetime.datetime) -> Any:
        if isinstance(tpl, dict):
            return {k: self._fill(v, r, t) for k, v in tpl.items()}
        if isinstance(tpl, list):
            return [self._fill(v, r, t) for v in tpl]
        kind, v = tpl
        return _render(v, r, t) if kind == "p" else v

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self._fill(self.template, record, _ts(record)), separators=(",", ":"))


def parse_component_levels(spec: str) -> Dict[str, int]:
    """``upstream:debug,connection:trace`` -> {component: level}; raises
    ValueError with Envoy's wording for an unknown component or level."""
    out: Dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, level = item.partition(":")
        if not sep:
            raise ValueError("component log level not correctly specified '%s'" % item)
        if name not in ENVOY_COMPONENTS:
            raise ValueError("invalid component specified '%s'" % name)
        if level not in LEVELS:
            raise ValueError("invalid log level specified '%s'" % level)
        out[name] = LEVELS[level]
    return out


class _AppLog:
    """The configured handler (stderr or --log-path), reopened on SIGUSR1."""

    def __init__(self) -> None:
        self.path = ""
        self.handler: Optional[logging.StreamHandler] = None

    def reopen(self) -> None:
        """Log rotation: write to a new file at --log-path."""
        if self.handler is None or not self.path:
            return
        try:
            stream = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            logging.getLogger("envoy_fast.main").error(
                "cannot reopen log file '%s': %s", self.path, exc.strerror)
            return
        old = self.handler.setStream(stream)
        if old is not None:
            old.close()


_app_log = _AppLog()


def setup(level: str = "info", path: str = "", pattern: Optional[str] = None,
          json_format: Optional[Dict[str, Any]] = None,
          component_levels: Optional[Dict[str, int]] = None) -> None:
    """Configure the ``envoy_fast`` loggers; raises OSError if ``path``
    cannot be opened."""
    if path:
        handler: logging.StreamHandler = logging.StreamHandler(open(path, "a", encoding="utf-8"))
    else:
        handler = logging.StreamHandler(sys.stderr)
    if json_format is not None:
        handler.setFormatter(JsonFormatter(json_format))
    else:
        handler.setFormatter(EnvoyFormatter(pattern or DEFAULT_FORMAT))
    root = logging.getLogger("envoy_fast")
    root.handlers[:] = [handler]
    if _app_log.handler is not None and _app_log.path:
        _app_log.handler.close()
    _app_log.handler, _app_log.path = handler, path
    root.setLevel(LEVELS[level])
    root.propagate = False
    for name in COMPONENTS:
        logging.getLogger("envoy_fast." + name).setLevel(logging.NOTSET)
    for name, lvl in (component_levels or {}).items():
        target = _ALIASES.get(name, name)
        if target in COMPONENTS:
            logging.getLogger("envoy_fast." + target).setLevel(lvl)


def set_format(pattern: Optional[str] = None, json_format: Optional[Dict[str, Any]] = None) -> None:
    """Change the line format of the configured handler."""
    if _app_log.handler is None:
        return
    if json_format is not None:
        _app_log.handler.setFormatter(JsonFormatter(json_format))
    elif pattern:
        _app_log.handler.setFormatter(EnvoyFormatter(pattern))


def log_fds() -> List[int]:
    """Descriptors the application log writes to (a worker must keep them)."""
    h = _app_log.handler
    try:
        return [h.stream.fileno()] if h is not None else []
    except (AttributeError, OSError, ValueError):
        return []


def reopen() -> None:
    """SIGUSR1: reopen --log-path (a no-op when logging to stderr)."""
    _app_log.reopen()
