"""ConfigError: what is wrong with a configuration, where, and how to fix it."""
from typing import Any, Optional

from . import _diagnostics as diag

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """A configuration Envoy (or envoy_fast) would refuse to load.

    ``path`` is the document path with Envoy's field names
    (``"static_resources.clusters[1].connect_timeout"``), or ``""`` when the error
    is not about one field (unreadable file, YAML syntax); ``message`` says what
    is wrong. ``str(e)`` is ``"<path>: <message>"``, or just the message.

    ``line`` / ``column`` (1-based, or None) say where in the YAML/JSON text the
    error is, and ``source`` which text: ``"file"`` or ``"--config-yaml"``.
    ``hint`` (or None) says how to fix it, e.g. "did you mean `connect_timeout`?".
    ``describe()`` puts it all on one line.
    """

    def __init__(
        self,
        message: str,
        path: str = "",
        line: Optional[int] = None,
        hint: Optional[str] = None,
        column: Optional[int] = None,
        source: Optional[str] = None,
    ) -> None:
        super().__init__(message, path)
        self.message = message
        self.path = path
        self.line = line
        self.hint = hint
        self.column = column
        self.source = source

    def __reduce__(self) -> Any:
        return (type(self), (self.message, self.path, self.line, self.hint, self.column, self.source))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def describe(self) -> str:
        """``"<path> (line N): <message>; <hint>"`` -- the line says
        ``(--config-yaml line N)`` when it is a line of the inline YAML."""
        text = str(self)
        if self.path and self.line is not None:
            where = f"{diag.CONFIG_YAML} line" if self.source == diag.CONFIG_YAML else "line"
            text = f"{self.path} ({where} {self.line}): {self.message}"
        return f"{text}; {self.hint}" if self.hint else text
