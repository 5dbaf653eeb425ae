"""msgspec conversion of a normalised document, every error mapped to its path.

msgspec checks types, numeric bounds, required fields and each message's own
``__post_init__`` checks, and stops at the first error. To report every error
(``validate`` mode) the conversion is repeated: each error msgspec raises is
noted with its document path, the value that erred is taken out, and msgspec
runs again on what is left. A value taken out of an optional field leaves its
default, and its path is noted in ``repaired`` (checks that would see that
default are not reported); a required one makes its message unbuildable, which
takes out the field holding the message in turn. A listener or cluster that
cannot be built is left out of its list (``kept`` maps the list back to the
document's indices), so the cross-field checks still run over the others.

Each listener and cluster is converted on its own first, so an error costs one
conversion of its listener or cluster, not of the whole bootstrap.
"""
import re
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import msgspec

from . import _diagnostics as diag
from . import types as t
from .errors import ConfigError
from .normalise import ERRED, INVALID

__all__ = ["Conversion"]

Path = Tuple[Union[str, int], ...]

_AT = re.compile(r"(?P<msg>.*) - at `\$(?P<loc>[^`]*)`", re.S)
_MISSING = re.compile(r"Object missing required field `(.+)`")

#: The lists whose items are left out one by one when they cannot be built.
_TOP_LISTS = {"listeners": t.Listener, "clusters": t.Cluster}


class _Unbuildable(Exception):
    """The whole value being converted cannot be built."""


class Conversion:
    """Builds the Bootstrap of a merged, normalised document; see the module doc.

    ``build()`` returns the Bootstrap (None if not even a reduced one can be
    built) and appends an error per problem to ``errors``. After it,
    ``kept["listeners"]`` / ``kept["clusters"]`` give the document index of each
    listener / cluster left in, ``unchecked`` the names of the clusters left
    out (None when one of them has no name), ``repaired`` the paths of the
    values taken out.
    """

    def __init__(self, doc: Dict[str, Any], errors: List[ConfigError]) -> None:
        self.doc = doc
        self.errors = errors
        self.repaired: List[str] = []
        self.kept: Dict[str, List[int]] = {"listeners": [], "clusters": []}
        self.unchecked: Optional[Set[str]] = set()
        # Paths of the values taken out, whose absence is not an error of its own.
        self.removed: Set[Path] = set()
        self._lists_done = False  # top lists shortened: their indices are mapped

    def build(self) -> Optional[t.Bootstrap]:
        self._strip(self.doc, ())
        resources = self.doc.get("static_resources")
        if isinstance(resources, dict):
            for kind, cls in _TOP_LISTS.items():
                items = resources.get(kind)
                if isinstance(items, list):
                    self._top_list(kind, cls, items)
        self._lists_done = True
        try:
            return self._convert(self.doc, t.Bootstrap, ())
        except _Unbuildable:
            return None

    # markers

    def _strip(self, value: Any, path: Path) -> None:
        """Take out the normaliser's marks: a field noted under ERRED and absent
        is removed; a field holding a list with an INVALID item is taken out
        whole (the top lists keep theirs for :meth:`_top_list`)."""
        if isinstance(value, dict):
            for name in value.pop(ERRED, ()):
                if name not in value:
                    self._taken_out(path + (name,))
            for key in list(value):
                item = value[key]
                kpath = path + (key,)
                top = len(kpath) == 2 and kpath[0] == "static_resources" and key in _TOP_LISTS
                if isinstance(item, list) and not top and any(v is INVALID for v in item):
                    del value[key]
                    self._taken_out(kpath)
                else:
                    self._strip(item, kpath)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._strip(item, path + (i,))

    def _taken_out(self, path: Path) -> None:
        self.removed.add(path)
        self.repaired.append(diag.fmt_path(path))

    # conversion

    def _top_list(self, kind: str, cls: type, items: List[Any]) -> None:
        """Listeners / clusters one by one: leave out those that cannot be built."""
        kept = []
        for i, item in enumerate(items):
            path = ("static_resources", kind, i)
            try:
                if item is INVALID:
                    raise _Unbuildable
                self._convert(item, cls, path)
            except _Unbuildable:
                if kind == "clusters" and self.unchecked is not None:
                    name = item.get("name") if isinstance(item, dict) else None
                    if isinstance(name, str):
                        self.unchecked.add(name)
                    else:
                        self.unchecked = None
                continue
            kept.append(item)
            self.kept[kind].append(i)
        items[:] = kept

    def _convert(self, value: Dict[str, Any], cls: type, prefix: Path) -> Any:
        """``msgspec.convert(value, cls)``, repairing ``value`` after each error
        until it builds; raises _Unbuildable when ``value`` itself must go.

        ``prefix`` is the document path of ``value``; paths inside the top lists
        are mapped back to the document's indices.
        """
        while True:
            try:
                return msgspec.convert(value, cls)
            except msgspec.ValidationError as err:
                message, where = _split(str(err))
                missing = _MISSING.fullmatch(message)
                if missing:
                    field = missing.group(1)
                    doc_path = self._document_path(prefix + where)
                    if doc_path + (field,) not in self.removed:
                        holder = diag.fmt_path(doc_path) or "the top level"
                        self.errors.append(
                            ConfigError("missing required field", diag.fmt_path(doc_path + (field,)),
                                        hint=f"add `{field}` to {holder}")
                        )
                else:
                    self.errors.append(ConfigError(message, diag.fmt_path(self._document_path(prefix + where))))
                self._take_out(value, where, prefix)

    def _take_out(self, value: Dict[str, Any], where: Path, prefix: Path) -> None:
        """Remove the value at ``where`` (relative to ``value``): a list item
        takes its whole list with it, as a list field is one value."""
        while where and isinstance(where[-1], int):
            where = where[:-1]
        if not where:
            raise _Unbuildable
        holder: Any = value
        try:
            for seg in where[:-1]:
                holder = holder[seg]
            del holder[where[-1]]
        except (KeyError, IndexError, TypeError):  # not a path into value: give up on it
            raise _Unbuildable from None
        self._taken_out(self._document_path(prefix + where))

    def _document_path(self, path: Path) -> Path:
        """``path`` with a top-list index mapped back to the document's."""
        if len(path) >= 3 and path[0] == "static_resources" and path[1] in _TOP_LISTS and isinstance(path[2], int):
            kept = self.kept[path[1]]
            if self._lists_done and path[2] < len(kept):
                return path[:2] + (kept[path[2]],) + path[3:]
        return path


def _split(text: str) -> Tuple[str, Path]:
    """msgspec's ``"<msg> - at `$.a.b[1]`"`` -> (msg, ("a", "b", 1))."""
    m = _AT.fullmatch(text)
    if m is None:
        return text, ()
    return m.group("msg"), diag.parse_path(m.group("loc").lstrip("."))
