"""msgspec conversion of a normalised document, every error mapped to its path.

msgspec checks types, numeric bounds, required fields and each message's own
``__post_init__`` checks, and stops at the first error. To report every error
(``validate`` mode) the conversion is repeated: each error msgspec raises is
noted with its document path, the value that erred is taken out, and msgspec
runs again on what is left. A value taken out of an optional field leaves its
default, and its path is noted in ``repaired`` (checks that would see that
default are not reported); a required one makes its message unbuildable, which
takes out the field holding the message in turn. An item that cannot be
built takes out its list (a list field is one value), after the items that
follow it have been checked on their own; a listener or cluster that cannot be
built is only left out of its list (``kept`` maps the list back to the
document's indices), so the cross-field checks still run over the others.

A valid document is converted once. Otherwise each listener and cluster is
converted on its own, so an error costs a conversion of its listener or
cluster, not of the whole bootstrap; the error msgspec meets first in the
whole document is reported first (``load_bootstrap`` raises it).
"""
import re
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import msgspec

from envoy_fast.extensions import registry as extensions
from envoy_fast.extensions.registry import ExtensionConfig

from . import _diagnostics as diag
from . import types as t
from .errors import ConfigError
from .normalise import ERRED, INVALID
from .schema import Spec, schema_of

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
        """The Bootstrap, or None when not even a reduced one can be built."""
        self._strip(self.doc, ())
        try:  # the common case: one conversion
            return msgspec.convert(self.doc, t.Bootstrap, dec_hook=_dec_hook)
        except msgspec.ValidationError as err:
            # msgspec's first error is the first one reported (load raises it).
            first = str(err)
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
        finally:
            self._first_to_front(first)

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
                    self._check_items(item, kpath, _spec_along(self.doc, t.Bootstrap, kpath))
                    del value[key]
                    self._taken_out(kpath)
                else:
                    self._strip(item, kpath)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._strip(item, path + (i,))

    def _check_items(self, items: List[Any], path: Path, spec: Optional[Spec], start: int = 0) -> None:
        """Report the errors of the items (from ``start``) of a list about to
        be taken out whole."""
        if spec is None or spec.kind != "list" or not isinstance(items, list):
            return
        for i in range(start, len(items)):
            item = items[i]
            if item is INVALID:
                continue
            self._strip(item, path + (i,))
            message = _message_class(spec.sub, item)
            if message is not None and isinstance(item, dict):
                try:
                    self._convert(item, message, path + (i,))
                except _Unbuildable:
                    pass

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

    def _first_to_front(self, text: str) -> None:
        """Put the error msgspec raised first on the whole document first."""
        message, where = _split(text)
        missing = _MISSING.fullmatch(message)
        if missing:
            path, message = diag.fmt_path(where + (missing.group(1),)), "missing required field"
        else:
            path = diag.fmt_path(where)
        for i, err in enumerate(self.errors):
            if (err.path, err.message) == (path, message):
                self.errors.insert(0, self.errors.pop(i))
                return

    def _convert(self, value: Dict[str, Any], cls: type, prefix: Path) -> Any:
        """``msgspec.convert(value, cls)``, repairing ``value`` after each error
        until it builds; raises _Unbuildable when ``value`` itself must go.

        ``prefix`` is the document path of ``value``; paths inside the top lists
        are mapped back to the document's indices.
        """
        while True:
            try:
                return msgspec.convert(value, cls, dec_hook=_dec_hook)
            except msgspec.ValidationError as err:
                message, where = _split(str(err))
                missing = _MISSING.fullmatch(message)
                if missing:
                    doc_path = self._document_path(prefix + where)
                    holder = diag.fmt_path(doc_path) or "the top level"
                    # msgspec names the first missing field; report them all.
                    for field in _missing_fields(value, cls, where) or [missing.group(1)]:
                        if doc_path + (field,) not in self.removed:
                            self.errors.append(
                                ConfigError("missing required field", diag.fmt_path(doc_path + (field,)),
                                            hint=f"add `{field}` to {holder}")
                            )
                else:
                    self.errors.append(ConfigError(message, diag.fmt_path(self._document_path(prefix + where))))
                self._take_out(value, cls, where, prefix)

    def _take_out(self, value: Dict[str, Any], cls: type, where: Path, prefix: Path) -> None:
        """Remove the value at ``where`` in ``value`` (a ``cls``): an item that
        cannot be built takes its whole list with it, as a list field is one
        value -- once the items after it have been checked too."""
        field = where
        while field and isinstance(field[-1], int):
            field = field[:-1]
        if not field:
            raise _Unbuildable
        holder: Any = value
        try:
            for seg in field[:-1]:
                holder = holder[seg]
            if len(field) < len(where):
                self._check_items(holder[field[-1]], prefix + field, _spec_along(value, cls, field), where[len(field)] + 1)
            del holder[field[-1]]
        except (KeyError, IndexError, TypeError):  # not a path into value: give up on it
            raise _Unbuildable from None
        self._taken_out(self._document_path(prefix + field))

    def _document_path(self, path: Path) -> Path:
        """``path`` with a top-list index mapped back to the document's."""
        if len(path) >= 3 and path[0] == "static_resources" and path[1] in _TOP_LISTS and isinstance(path[2], int):
            kept = self.kept[path[1]]
            if self._lists_done and path[2] < len(kept):
                return path[:2] + (kept[path[2]],) + path[3:]
        return path


def _dec_hook(tp: type, value: Any) -> Any:
    """msgspec's hook for an extension's ``typed_config`` (a google.protobuf.Any):
    the Struct its ``@type`` names in the registry. Its errors carry their
    path inside the Any; msgspec adds the Any's own (see :func:`_split`)."""
    if isinstance(tp, type) and issubclass(tp, ExtensionConfig):
        cls = extensions.config_type(tp.REGISTRY, value.get("@type")) if isinstance(value, dict) else None
        if cls is None:  # the normaliser lets no other through
            raise TypeError(f"Expected a registered `{tp.REGISTRY}` config, got {diag.kind(value)}")
        try:
            return msgspec.convert(value, cls, dec_hook=_dec_hook)
        except msgspec.ValidationError as err:
            raise ValueError(str(err)) from None
    raise NotImplementedError(tp)


def _spec_along(value: Any, cls: type, where: Path) -> Optional[Spec]:
    """The Spec of the value at ``where`` in ``value`` (a ``cls``), found along
    the schema; None where the path leaves it."""
    spec = Spec("struct", cls)
    for seg in where:
        if isinstance(seg, int):
            if spec.kind != "list":
                return None
            spec = spec.sub
        else:
            message = _message_class(spec, value)
            if message is None or seg not in schema_of(message).fields:
                return None
            spec = schema_of(message).fields[seg]
        try:
            value = value[seg]
        except (KeyError, IndexError, TypeError):
            return None
    return spec


def _missing_fields(value: Dict[str, Any], cls: type, where: Path) -> List[str]:
    """The required fields, in field order, that the message at ``where`` in
    ``value`` (a ``cls``) lacks."""
    spec = _spec_along(value, cls, where)
    for seg in where:
        value = value[seg]
    message = _message_class(spec, value) if spec is not None else None
    if message is None or not isinstance(value, dict):
        return []
    return [f.name for f in msgspec.structs.fields(message) if f.required and f.name not in value]


def _message_class(spec: Spec, value: Any) -> Optional[type]:
    """The Struct class a value of ``spec`` is: the field's, or by ``@type``."""
    if spec.kind == "struct":
        return spec.sub
    if spec.kind == "any" and isinstance(value, dict):
        tag = value.get("@type")
        for cls in extensions.config_types(spec.extra.get("registry", "")).values():
            if cls.__struct_config__.tag == tag:
                return cls
    return None


def _split(text: str) -> Tuple[str, Path]:
    """msgspec's ``"<msg> - at `$.a.b[1]`"`` -> (msg, ("a", "b", 1)). An error
    inside an extension's ``typed_config`` has its path in the Any first:
    ``"<msg> - at `$.c` - at `$.a.b`"`` -> (msg, ("a", "b", "c"))."""
    path: Path = ()
    while True:
        m = _AT.fullmatch(text)
        if m is None:
            return text, path
        text, path = m.group("msg"), path + diag.parse_path(m.group("loc").lstrip("."))
