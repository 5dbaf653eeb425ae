"""Access logs for tcp_proxy: Envoy's file / stdout / stderr access loggers.

Two halves, split between processes:

* in the main process, :func:`build_access_log_plan` turns a loaded
  ``TcpProxy`` (its ``access_log`` list) into `AccessLogPlan` Structs (part of
  the worker plan, see ``envoy_fast.accesslog.plan``);
* in each worker, one :class:`AccessLogManager` turns those into loggers
  (``manager.create(plan) -> [logger, ...]``); the data plane calls
  ``logger.log(fields)`` once per connection, at close, and the worker calls
  ``manager.flush()`` about every 100 ms and at exit, and
  ``manager.reopen()`` on SIGUSR1 (log rotation, as Envoy).

``fields`` (a dict; a key that is missing or None is "unset"):

=============================== ==============================================
``start_time``                  float, epoch seconds at accept
``duration_ms``                 int
``downstream_remote_address``   ``"ip:port"`` (IPv6 ``"[::1]:port"``)
``downstream_local_address``    same form
``upstream_host``               the host picked (even if its connect failed)
``upstream_cluster``            cluster name (``%UPSTREAM_CLUSTER%`` prints its
                                alt_stat_name, see build_access_log_plan)
``upstream_local_address``      once the upstream connection is up
``bytes_received``/``bytes_sent`` ints, downstream bytes
``response_flags``              list of short names in the order they were
                                set, e.g. ``["UF", "URX"]``
``connection_id``               int
=============================== ==============================================

Optional extras, used when present: ``upstream_transport_failure_reason`` (str,
e.g. ``"delayed connect error: Connection refused"``; Envoy prints it with
spaces as ``_``), ``upstream_request_attempt_count`` (int), ``upstream_host_name``
(the endpoint's ``hostname``), ``upstream_remote_address`` (else: the upstream
host once connected), ``downstream_direct_remote_address`` (else: the remote).

Writing never waits on the disk for long: records are buffered in memory and
written by :meth:`AccessLogManager.flush` with one ``os.write`` of whole records
per file on an ``O_APPEND`` descriptor (so several loggers and workers sharing a
file interleave whole lines), or by ``log()`` itself once a file's buffer holds
more than 64 KiB.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

from .format import DEFAULT_FORMAT, FormatError, compile_format, parse_json, parse_text
from .plan import AccessLogPlan, AnyAccessLogFormatPlan, JsonFormatPlan, TextFormatPlan

__all__ = [
    "AccessLogManager",
    "AccessLogPlan",
    "AccessLogger",
    "DEFAULT_FORMAT",
    "FormatError",
    "build_access_log_plan",
    "format_spec",
    "open_flags",
]

log = logging.getLogger(__name__)

#: Flags every access log file is opened with.
open_flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_FILE_MODE = 0o644
#: log() writes at once when a file's buffer grows past this.
BUFFER_LIMIT = 64 * 1024

_STREAMS = {"StdoutAccessLog": "stdout", "StderrAccessLog": "stderr"}


# --- plan (main process) -------------------------------------------------------------


def format_spec(log_format: Any = None, *, text: Optional[str] = None,
                json_format: Optional[dict] = None) -> AnyAccessLogFormatPlan:
    """A format plan from a ``SubstitutionFormatString`` Struct (or
    ``text`` / ``json_format`` directly); Envoy's default format when none.

    Raises :class:`FormatError` for a format Envoy refuses.
    """
    omit = False
    if log_format is not None:
        omit = bool(log_format.omit_empty_values)
        if log_format.json_format is not None:
            json_format = log_format.json_format
        elif log_format.text_format_source is not None:
            text = log_format.text_format_source.inline_string or ""
        else:
            text = log_format.text_format or ""
    if json_format is not None:
        return JsonFormatPlan(template=parse_json(json_format), omit_empty_values=omit)
    if text is None:
        text = DEFAULT_FORMAT
    return TextFormatPlan(parts=parse_text(text), omit_empty_values=omit)


def build_access_log_plan(tcp_proxy: Any, cluster_alt_names: Optional[Mapping[str, str]] = None) -> List[AccessLogPlan]:
    """The loggers of one tcp_proxy (a ``tcp_proxy_config.TcpProxy``) as
    `AccessLogPlan` Structs.

    ``cluster_alt_names`` maps a cluster name to its ``alt_stat_name``; those
    that have one go into each plan, for ``%UPSTREAM_CLUSTER%`` to print as
    Envoy does.
    """
    alt = {k: v for k, v in (cluster_alt_names or {}).items() if v}
    plan: List[AccessLogPlan] = []
    for entry in getattr(tcp_proxy, "access_log", None) or ():
        config = entry.typed_config
        kind = type(config).ENVOY_TYPE.rsplit(".", 1)[-1]
        if kind == "FileAccessLog":
            if config.log_format is not None:
                spec = format_spec(config.log_format)
            elif config.json_format is not None:
                spec = format_spec(json_format=config.json_format)
            elif config.typed_json_format is not None:
                spec = format_spec(json_format=config.typed_json_format)
            else:
                spec = format_spec(text=config.format or None)  # "" is the default too
            sink, path = "file", config.path
        else:
            spec = format_spec(config.log_format)
            sink, path = _STREAMS[kind], None
        plan.append(AccessLogPlan(name=entry.name, sink=sink, path=path, format=spec, cluster_alt_names=dict(alt)))
    return plan


# --- loggers (worker) ----------------------------------------------------------------


class _Sink:
    """One output (a file, stdout or stderr): a buffer of whole records."""

    __slots__ = ("path", "fd", "owned", "buf", "size", "limit", "failed")

    def __init__(self, path: Optional[str], fd: int, owned: bool, limit: int) -> None:
        self.path = path
        self.fd = fd
        self.owned = owned  # opened here (a file), so reopen()/close() apply
        self.buf: List[bytes] = []
        self.size = 0
        self.limit = limit
        self.failed = False

    def write(self, record: bytes) -> None:
        self.buf.append(record)
        self.size += len(record)
        if self.size > self.limit:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        data = self.buf[0] if len(self.buf) == 1 else b"".join(self.buf)
        self.buf = []
        self.size = 0
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except InterruptedError:
                continue
            except BlockingIOError:
                # A non-blocking pipe (stdout/stderr) is full: keep the rest.
                rest = bytes(view)
                self.buf = [rest]
                self.size = len(rest)
                return
            except OSError as err:
                if not self.failed:
                    self.failed = True
                    log.error("access log %s: write failed, records dropped: %s", self.name(), err)
                return
            view = view[n:]
        self.failed = False

    def name(self) -> str:
        return self.path if self.path is not None else ("stdout" if self.fd == 1 else "stderr")

    def reopen(self) -> None:
        self.flush()
        if not self.owned:
            return
        try:
            fd = os.open(self.path, open_flags, _FILE_MODE)  # type: ignore[arg-type]
        except OSError as err:
            log.error("access log %s: reopen failed, still writing to the old file: %s", self.path, err)
            return
        os.close(self.fd)
        self.fd = fd

    def close(self) -> None:
        self.flush()
        if self.owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class AccessLogger:
    """One configured access log; ``log(fields)`` formats and buffers a record."""

    __slots__ = ("name", "sink_name", "_format", "_sink")

    def __init__(self, name: str, fmt: Callable[[Dict[str, Any]], str], sink: _Sink) -> None:
        self.name = name
        self.sink_name = sink.name()
        self._format = fmt
        self._sink = sink

    def log(self, fields: Dict[str, Any]) -> None:
        self._sink.write(self._format(fields).encode("utf-8", "surrogateescape"))

    def format(self, fields: Dict[str, Any]) -> str:
        """The record ``log(fields)`` would write (for tests and tools)."""
        return self._format(fields)


class AccessLogManager:
    """The access log outputs of one worker process.

    Files are opened once per path (``O_WRONLY|O_APPEND|O_CREAT``), however
    many loggers write to them; stdout and stderr are fds 1 and 2.
    """

    def __init__(self, buffer_limit: int = BUFFER_LIMIT) -> None:
        self._limit = buffer_limit
        self._sinks: Dict[str, _Sink] = {}

    def _sink(self, entry: AccessLogPlan) -> _Sink:
        kind = entry.sink
        key = "file:" + entry.path if kind == "file" else kind  # type: ignore[operator]
        sink = self._sinks.get(key)
        if sink is None or sink.fd < 0:
            if kind == "file":
                fd = os.open(entry.path, open_flags, _FILE_MODE)  # type: ignore[arg-type]
                sink = _Sink(entry.path, fd, True, self._limit)
            else:
                sink = _Sink(None, 1 if kind == "stdout" else 2, False, self._limit)
            self._sinks[key] = sink
        return sink

    def create(self, plan: Iterable[AccessLogPlan]) -> List[AccessLogger]:
        """Loggers for `AccessLogPlan` Structs (from :func:`build_access_log_plan`).

        Raises OSError when a file cannot be opened (the loader already checked
        that it could, as Envoy does).
        """
        loggers = []
        for entry in plan:
            fmt = compile_format(entry.format, entry.cluster_alt_names)
            loggers.append(AccessLogger(entry.name, fmt, self._sink(entry)))
        return loggers

    def flush(self) -> None:
        """Write every buffered record (one ``os.write`` per output)."""
        for sink in self._sinks.values():
            if sink.buf:
                sink.flush()

    def reopen(self) -> None:
        """Flush, then reopen every file by its path (after a rotation)."""
        for sink in self._sinks.values():
            sink.reopen()

    def close(self) -> None:
        """Flush and close the files (loggers must not be used after this)."""
        for sink in self._sinks.values():
            sink.close()

    def pending_bytes(self) -> int:
        """Bytes buffered and not yet written."""
        return sum(s.size for s in self._sinks.values())
