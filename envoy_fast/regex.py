"""Regular expressions with Envoy's semantics: Google RE2.

Envoy compiles every user regex (``safe_regex``, the admin's ``filter`` and
``name_regex``) with RE2, whose matching time is linear in the input: no
pattern can make a search run away, and patterns RE2 rejects (look-arounds,
backreferences) are errors as in Envoy. Python's ``re`` backtracks, so one
admin request like ``/stats?filter=([a-z_.0-9]+)+#`` would pin the process.
"""
from __future__ import annotations

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False          # the error is returned to the caller instead


class RegexError(ValueError):
    """A pattern RE2 does not accept; the message is RE2's (as Envoy prints it)."""


def compile(pattern: str):  # noqa: A001 - mirrors re.compile
    """Compile `pattern` with RE2; raises RegexError with RE2's reason."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else str(exc)
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(str(reason)) from None
