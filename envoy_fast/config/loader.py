"""Bootstrap loading: YAML/JSON -> checked, typed :class:`~.types.Bootstrap`.

The pipeline mirrors what Envoy does with ``-c`` / ``--config-yaml``:

1. each document is parsed (YAML, or JSON for ``.json`` files);
2. each is *normalised* against the message schema in ``types.py``: lowerCamelCase
   keys become field names, ``null`` means unset, durations / enums / wrappers /
   percents become plain values, ``typed_config`` is dispatched on ``@type``, and
   unknown or unsupported fields are rejected with their document path;
3. ``config_yaml`` is merged over the file like protobuf ``MergeFrom`` (scalars
   replaced, messages merged, lists appended);
4. msgspec builds the Structs, checking types and numeric bounds;
5. cross-field checks Envoy makes when it loads the config (duplicate names,
   unknown clusters, overlapping filter chain matches, IP literals, ...).

Every failure is a :class:`ConfigError` naming the path with Envoy's field names,
e.g. ``static_resources.clusters[1].connect_timeout: invalid duration '500ms' ...``.
"""
import ipaddress
import json
import logging
import os
import re
import typing
import uuid
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple, Union

import msgspec
import yaml

from . import _diagnostics as diag
from . import types as t

__all__ = ["ConfigError", "load_bootstrap", "validate_bootstrap", "dump_bootstrap"]

Path = Tuple[Union[str, int], ...]

log = logging.getLogger(__name__)


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


def load_bootstrap(
    config_path: Optional[str] = None, config_yaml: Optional[str] = None
) -> t.Bootstrap:
    """Load, merge and check a bootstrap, as Envoy's ``-c`` and ``--config-yaml``.

    ``config_path`` names a YAML or JSON file; ``config_yaml`` is YAML (or JSON)
    text merged over it like protobuf ``MergeFrom`` (lists are appended). Either
    may be omitted, not both. Returns the typed :class:`Bootstrap`; raises
    :class:`ConfigError` for anything Envoy would reject, and for Envoy features
    envoy_fast does not implement.
    """
    sources = _Sources(config_path, config_yaml)
    try:
        if config_path is None and config_yaml is None:
            raise ConfigError("no configuration given: need config_path or config_yaml")
        doc: Dict[str, Any] = {}
        if config_path is not None:
            doc = _normalise_document(sources.file_document(), "")
        if config_yaml is not None:
            overlay = sources.overlay_document()
            _merge(doc, _normalise_document(overlay, " (in --config-yaml)", diag.CONFIG_YAML))
        _drop_admin_without_address(doc)
        try:
            bootstrap = msgspec.convert(doc, t.Bootstrap)
        except msgspec.ValidationError as err:
            raise _from_validation_error(err) from None
        _Checker(bootstrap).check()
    except ConfigError as err:
        sources.locate([err])
        raise
    return bootstrap


def validate_bootstrap(config_path: Optional[str] = None, config_yaml: Optional[str] = None) -> List[ConfigError]:
    """Every error :func:`load_bootstrap` could raise for this input, not just the first.

    Returns an empty list when ``load_bootstrap`` would succeed. Each error has
    its ``line`` (and ``column``/``source``) where it could be placed, and a
    ``hint`` where there is an obvious fix; the list is in document order. The
    checker goes on past an error in one field or list item: fields and list
    items that are fine are still checked, and the cross-field checks (names,
    addresses, cluster references, ...) run over every listener and cluster
    that has no error of its own.
    """
    sources = _Sources(config_path, config_yaml)
    errors: List[ConfigError] = []
    if config_path is None and config_yaml is None:
        return [ConfigError("no configuration given: need config_path or config_yaml")]
    docs: List[Tuple[Dict[str, Any], str, str]] = []
    parsed = True
    for present, read, note, source in (
        (config_path is not None, sources.file_document, "", diag.FILE),
        (config_yaml is not None, sources.overlay_document, " (in --config-yaml)", diag.CONFIG_YAML),
    ):
        if present:
            try:
                docs.append((read(), note, source))
            except ConfigError as err:
                errors.append(err)
                parsed = False
    doc: Dict[str, Any] = {}
    for raw, note, source in docs:
        normaliser = _Normaliser(note, source, errors)
        _merge(doc, normaliser.message(t.Bootstrap, raw, ()))
    if parsed:
        _drop_admin_without_address(doc)
        types = _TypeChecker(errors)
        types.message(t.Bootstrap, doc, ())
        try:
            bootstrap = msgspec.convert(doc, t.Bootstrap)
        except msgspec.ValidationError as err:  # not expected: _TypeChecker mirrors msgspec
            errors.append(_from_validation_error(err))
        else:
            checker = _Checker(bootstrap, errors, types.kept["listeners"], types.kept["clusters"], types.unchecked)
            checker.repaired = types.repaired
            checker.check()
    sources.locate(errors)
    return _in_document_order(diag.dedupe(errors))


def _drop_admin_without_address(doc: Dict[str, Any]) -> None:
    # Envoy treats an admin block without an address as "no admin listener".
    admin = doc.get("admin")
    if isinstance(admin, dict) and "address" not in admin and "address" not in admin.get(_BAD, ()):
        del doc["admin"]


def _in_document_order(errors: List[ConfigError]) -> List[ConfigError]:
    """Errors with a line first, file before --config-yaml, by line and column."""

    def key(err: ConfigError) -> Tuple[int, int, int, int]:
        if err.line is None:
            return (1, 0, 0, 0)
        return (0, int(err.source == diag.CONFIG_YAML), err.line, err.column or 0)

    return sorted(errors, key=key)


# --- reading -------------------------------------------------------------------

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Sources:
    """The input texts, read once, and where an error's path is in them."""

    def __init__(self, config_path: Optional[str], config_yaml: Optional[str]) -> None:
        self.config_path = config_path
        self.config_yaml = config_yaml
        self.file_text: Optional[str] = None
        # YAML node trees, kept from parsing (None: compose the text if needed).
        self.file_node: Optional[yaml.Node] = None
        self.overlay_node: Optional[yaml.Node] = None

    def file_document(self) -> Dict[str, Any]:
        assert self.config_path is not None
        self.file_text, doc, self.file_node = _read_file(self.config_path)
        return doc

    def overlay_document(self) -> Dict[str, Any]:
        assert self.config_yaml is not None
        doc, self.overlay_node = _parse_text(self.config_yaml, "--config-yaml", as_json=False, source=diag.CONFIG_YAML)
        return doc

    def locate(self, errors: List[ConfigError]) -> None:
        """Fill in ``line``/``column``/``source`` of errors that have a path.

        An error the normaliser raised (``source`` set) has a path into its own
        document; any other has a path into the merged document.
        """
        pending = [e for e in errors if e.path and e.line is None]
        if not pending:
            return
        file_node = self.file_node or diag.compose(self.file_text)  # JSON is YAML
        overlay_node = self.overlay_node or diag.compose(self.config_yaml)
        for err in pending:
            segments = diag.parse_path(err.path)
            if err.source == diag.FILE:
                found = diag.find(file_node, segments)
                where = (diag.FILE,) + found if found else None
            elif err.source == diag.CONFIG_YAML:
                found = diag.find(overlay_node, segments)
                where = (diag.CONFIG_YAML,) + found if found else None
            else:
                where = diag.find_merged(file_node, overlay_node, segments)
            if where is not None:
                err.source, err.line, err.column = where


def _read_file(config_path: str) -> Tuple[str, Dict[str, Any], Optional[yaml.Node]]:
    path = os.fspath(config_path)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".pb", ".pb_text"):
        raise ConfigError(f"config file '{path}': binary/text proto configs are not supported (use YAML or JSON)")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        raise ConfigError(f"cannot read config file '{path}': {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file '{path}' is not UTF-8: {err}") from None
    return (text,) + _parse_text(text, f"config file '{path}'", as_json=ext == ".json", source=diag.FILE)


#: Envoy's limit (protobuf's JSON parser): a bootstrap nested deeper is
#: rejected, so everything that walks a document may recurse safely.
MAX_NESTING = 100

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _json_too_deep(text: str) -> Optional[Tuple[int, int]]:
    """(line, column) of the first bracket nested deeper than MAX_NESTING."""
    depth = 0
    for m in _JSON_TOKEN.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                pos = m.start()
                line = text.count("\n", 0, pos) + 1
                return line, pos - (text.rfind("\n", 0, pos) + 1) + 1
        elif c in "]}":
            depth -= 1
    return None


def _yaml_too_deep(node: yaml.Node) -> Optional[yaml.Node]:
    """The first node nested deeper than MAX_NESTING (walked without recursion)."""
    stack = [(node, 1)]
    while stack:
        n, depth = stack.pop()
        if isinstance(n, yaml.MappingNode):
            if depth > MAX_NESTING:
                return n
            stack.extend((v, depth + 1) for _k, v in reversed(n.value))
        elif isinstance(n, yaml.SequenceNode):
            if depth > MAX_NESTING:
                return n
            stack.extend((v, depth + 1) for v in reversed(n.value))
    return None


def _parse_text(text: str, what: str, as_json: bool, source: str) -> Tuple[Dict[str, Any], Optional[yaml.Node]]:
    """The document, and its YAML node tree (None for JSON) for error lines."""
    node = None
    too_deep = f"exceeded maximum nesting depth ({MAX_NESTING} levels)"
    try:
        if as_json:
            where = _json_too_deep(text)
            if where is not None:
                raise ConfigError(f"{what}: invalid JSON at line {where[0]}, column {where[1]}: {too_deep}",
                                  line=where[0], column=where[1], source=source)
            doc = json.loads(text) if text.strip() else None
        else:
            # yaml.load, keeping the node tree it is built from.
            loader = _YAML_LOADER(text)
            try:
                node = loader.get_single_node()
                deep = _yaml_too_deep(node) if node is not None else None
                if deep is not None:
                    line, column = deep.start_mark.line + 1, deep.start_mark.column + 1
                    raise ConfigError(f"{what}: invalid YAML at line {line}, column {column}: {too_deep}",
                                      line=line, column=column, source=source)
                doc = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{what}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}",
            line=err.lineno, column=err.colno, source=source,
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise ConfigError(f"{what}: invalid YAML{where}: {problem}", line=line, column=column, source=source) from None
    if doc is None:
        raise ConfigError(f"{what} is empty")
    if not isinstance(doc, dict):
        raise ConfigError(f"{what}: the bootstrap must be a mapping, got {_kind(doc)}")
    return doc, node


# --- normalisation against the schema ---------------------------------------------


class _Spec(NamedTuple):
    """How one field's value is read: ``kind`` is struct/list/int/float/str/bool/dict."""

    kind: str
    sub: Any = None  # the Struct class, or the item _Spec of a list
    extra: Mapping[str, Any] = {}


class _Schema(NamedTuple):
    names: Dict[str, str]  # accepted key (field name or its JSON name) -> field name
    fields: Dict[str, _Spec]  # modelled fields


_SCALARS = {int: "int", float: "float", str: "str", bool: "bool"}
_schemas: Dict[type, _Schema] = {}


def _spec_of(tp: Any, extra: Optional[Dict[str, Any]] = None) -> _Spec:
    extra = dict(extra or {})
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *metas = typing.get_args(tp)
        for meta in metas:
            if isinstance(meta, msgspec.Meta) and meta.extra:
                extra.update(meta.extra)
        return _spec_of(base, extra)
    if origin is Union and "registry" in extra:  # an Any of several types: any_message() reads it
        return _Spec("any", None, extra)
    if origin is Union:  # Optional[X]: null is dropped before values are read
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _spec_of(inner, extra)
    if origin in (list, List):
        return _Spec("list", _spec_of(typing.get_args(tp)[0]), extra)
    if origin in (dict, Dict) or tp is dict:
        return _Spec("dict", None, extra)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _Spec("struct", tp, extra)
    return _Spec(_SCALARS[tp], None, extra)


def _json_name(field_name: str) -> str:
    """protobuf's JSON name: ``connect_timeout`` -> ``connectTimeout``."""
    head, *rest = field_name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _schema(cls: type) -> _Schema:
    schema = _schemas.get(cls)
    if schema is None:
        fields = {f.name: _spec_of(f.type) for f in msgspec.structs.fields(cls)}
        names: Dict[str, str] = {}
        for name in set(fields) | set(cls.ENVOY_FIELDS):
            names[name] = name
            names[_json_name(name)] = name
        schema = _schemas[cls] = _Schema(names, fields)
    return schema


def _fmt(path: Path) -> str:
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _is_set(value: Any) -> bool:
    """proto3 presence: a message ({} included) is set; a zero scalar or empty list is not."""
    if isinstance(value, dict):
        return True
    return value not in (None, "", 0, False, [])


# Marks left in a normalised document by validate_bootstrap (never by load_bootstrap):
#: key of a message dict: the set of its modelled fields whose value erred;
_BAD = "!erred"


class _Invalid:
    """A list item whose value erred (kept so later items keep their index)."""

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID = _Invalid()


def _tainted(value: Any) -> bool:
    """Whether a normalised value has a part that erred (see _BAD, _INVALID)."""
    if value is _INVALID:
        return True
    if isinstance(value, dict):
        return _BAD in value or any(_tainted(v) for v in value.values())
    if isinstance(value, list):
        return any(_tainted(v) for v in value)
    return False


class _Normaliser:
    """Walks one parsed document against the schema; see the module docstring."""

    def __init__(self, note: str, source: str = diag.FILE, errors: Optional[List[ConfigError]] = None) -> None:
        self.note = note  # appended to messages, says which document erred
        self.source = source  # which document: its errors' paths are into it
        # None: raise the first error. A list: collect every error in it, leave
        # out the value that erred (a list item becomes _INVALID; a message notes
        # its modelled fields that erred under _BAD) and go on.
        self.errors = errors

    def error(self, path: Path, message: str, hint: Optional[str] = None) -> ConfigError:
        return ConfigError(message + self.note, _fmt(path), hint=hint, source=self.source)

    def fail(self, err: ConfigError) -> None:
        """Raise ``err``, or note it and go on when collecting."""
        if self.errors is None:
            raise err
        self.errors.append(err)

    def message(self, cls: type, raw: Any, path: Path) -> Dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.error(path, f"expected a mapping ({cls.ENVOY_TYPE}), got {_kind(raw)}")
        schema = _schema(cls)
        tag = cls.__struct_config__.tag
        out: Dict[str, Any] = {}
        seen: Dict[str, Any] = {}
        bad = set()
        for key, value in raw.items():
            if key == "@type" and tag is not None:
                continue  # checked by any_message(); re-added canonical below
            name = schema.names.get(key) if isinstance(key, str) else None
            if name is None:
                hint = diag.field_hint(str(key), list(schema.names), list(schema.fields))
                self.fail(
                    self.error(path + (str(key),), f"unknown field: {cls.ENVOY_TYPE} has no field '{key}'", hint)
                )
                continue
            if name in seen:
                self.fail(
                    self.error(
                        path + (name,), f"field given twice, as '{seen[name]}' and '{key}'", "keep only one of them"
                    )
                )
                continue
            seen[name] = key
            if value is None:  # protobuf JSON: null leaves the field unset
                continue
            fpath = path + (name,)
            try:
                if name in schema.fields:
                    out[name] = self.value(schema.fields[name], value, fpath)
                elif name in cls.IGNORED:
                    # Accepted because it cannot act in envoy_fast's subset (see the
                    # IGNORED comment on the message); said at debug level.
                    log.debug("%s: ignored (no effect in envoy_fast)", _fmt(fpath))
                    if cls.IGNORED[name] == "duration":
                        self.duration(value, fpath)
                    elif cls.IGNORED[name] == "bool":
                        self.scalar("bool", value, fpath)
                elif _is_set(value):
                    raise self.error(
                        fpath,
                        f"not supported by envoy_fast ({cls.ENVOY_TYPE}.{name})",
                        f"remove `{key}`; envoy_fast implements only part of Envoy's API",
                    )
            except ConfigError as err:
                self.fail(err)
                if name in schema.fields:
                    bad.add(name)
        if tag is not None:
            out["@type"] = tag
        if bad:
            out[_BAD] = bad
        return out

    def value(self, spec: _Spec, value: Any, path: Path) -> Any:
        extra = spec.extra
        if "registry" in extra:
            return self.any_message(extra["registry"], value, path)
        if extra.get("kind") == "layered_runtime":
            return self.layered_runtime(value, path)
        if extra.get("kind") == "duration":
            return self.duration(value, path)
        if extra.get("kind") == "percent":
            # envoy.type.v3.Percent is a message: Envoy rejects a bare number.
            inner = self.single_value_message(value, path, "envoy.type.v3.Percent")
            return self.scalar("float", inner, path + ("value",))
        if spec.kind == "struct":
            return self.message(spec.sub, value, path)
        if spec.kind == "list":
            if not isinstance(value, list):
                raise self.error(path, f"expected a list, got {_kind(value)}")
            return self.items(lambda item, ipath: self.value(spec.sub, item, ipath), value, path)
        if extra.get("wrapper") and isinstance(value, dict):
            # google.protobuf.*Value wrappers may also be written {"value": x}.
            value = self.single_value_message(value, path, "wrapper")
        if "enum" in extra:
            return self.enum(extra["enum"], value, path)
        return self.scalar(spec.kind, value, path)

    def items(self, read: Any, values: List[Any], path: Path) -> List[Any]:
        """``read(item, item_path)`` for each item; when collecting, an item that
        erred stays in the list as _INVALID (later items keep their index)."""
        out = []
        for i, item in enumerate(values):
            try:
                out.append(read(item, path + (i,)))
            except ConfigError as err:
                self.fail(err)
                out.append(_INVALID)
        return out

    def single_value_message(self, value: Any, path: Path, what: str) -> Any:
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping ({what}, e.g. {{value: 50}}), got {_kind(value)}")
        for key in value:
            if key != "value":
                raise self.error(path + (str(key),), f"unknown field: {what} has no field '{key}'")
        if value.get("value") is None:
            raise self.error(path + ("value",), "missing required field")
        return value["value"]

    def scalar(self, kind: str, value: Any, path: Path) -> Any:
        # The protobuf JSON parser accepts numbers written as strings and whole
        # floats for integer fields, and "true"/"false" strings for bools; any
        # other mismatch is left for msgspec to report with its path.
        if kind == "int" and not isinstance(value, bool):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                if re.fullmatch(r"[-+]?\d+", value):
                    return int(value)
                if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value):
                    number = float(value)
                    if number.is_integer():
                        return int(number)
        elif kind == "float" and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        elif kind == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        elif kind == "bool" and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind == "bool" and not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {value!r}")
        return value

    def enum(self, enum_name: str, value: Any, path: Path) -> str:
        values = t.ENUMS[enum_name]
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            for name, number in values.items():
                if number == value:
                    return name
        elif isinstance(value, str) and value.upper() in values:
            # Envoy's JSON parser matches enum names case-insensitively.
            return value.upper()
        raise self.error(
            path,
            f"unknown enum value {value!r} for {enum_name} (one of {', '.join(values)})",
            diag.enum_hint(value, list(values)),
        )

    def duration(self, value: Any, path: Path) -> float:
        """google.protobuf.Duration: "<decimal seconds>s" or {seconds, nanos}."""
        max_seconds = 315_576_000_000  # protobuf's Duration range
        if isinstance(value, str):
            m = re.fullmatch(r"(-?)(\d+)(?:\.(\d{1,9}))?s", value)
            if m is None:
                raise self.error(
                    path,
                    f"invalid duration {value!r}: write decimal seconds with one trailing 's'"
                    " (e.g. '5s', '0.25s'), as protobuf's JSON mapping requires",
                    diag.duration_hint(value),
                )
            negative = bool(m.group(1))
            seconds, nanos = int(m.group(2)), int((m.group(3) or "").ljust(9, "0"))
        elif isinstance(value, dict):
            parts = {"seconds": 0, "nanos": 0}
            for key, part in value.items():
                if key not in parts:
                    raise self.error(
                        path + (str(key),),
                        f"unknown field: google.protobuf.Duration has no field '{key}'",
                        diag.field_hint(str(key), list(parts), list(parts)),
                    )
                part = self.scalar("int", part, path + (key,))
                if part is not None and (isinstance(part, bool) or not isinstance(part, int)):
                    raise self.error(path + (key,), f"expected an integer, got {_kind(part)}")
                parts[key] = part or 0
            seconds, nanos = parts["seconds"], parts["nanos"]
            if not -999_999_999 <= nanos <= 999_999_999:
                raise self.error(
                    path,
                    f"invalid duration {value!r}: nanos out of range",
                    "nanos must be below 1000000000; put whole seconds in `seconds`",
                )
            negative = seconds < 0 or nanos < 0
        else:
            raise self.error(
                path,
                f"invalid duration {value!r}: expected a string such as '5s' or {{seconds, nanos}}",
                diag.duration_hint(value),
            )
        if negative and (seconds or nanos):
            # Envoy checks every Duration in the bootstrap this way.
            raise self.error(path, f"invalid duration {value!r}: must not be negative", diag.duration_hint(value))
        if seconds > max_seconds:
            raise self.error(path, f"invalid duration {value!r}: out of range")
        return abs(seconds) + abs(nanos) / 1e9

    def any_message(self, registry: str, value: Any, path: Path) -> Dict[str, Any]:
        """A google.protobuf.Any dispatched on ``@type`` through a registry."""
        if registry == "access_logger":
            return self.access_logger(value, path)
        assert registry == "network_filter"
        url, message_name, cls = self.type_url(value, path, t.NETWORK_FILTER_TYPES, "the filter's")
        if message_name == t.HTTP_CONNECTION_MANAGER_TYPE:
            raise self.error(path, "http_connection_manager is not supported yet by envoy_fast (L4 tcp_proxy only)")
        if cls is not None:
            return self.message(cls, value, path)
        supported = ", ".join(t.NETWORK_FILTER_TYPES)
        match = diag.close_match(url, list(t.NETWORK_FILTER_TYPES), cutoff=0.8)
        raise self.error(
            path + ("@type",),
            f"unsupported network filter type '{url}' (envoy_fast supports: {supported})",
            f"did you mean `{match}`?" if match else None,
        )

    def access_logger(self, value: Any, path: Path) -> Dict[str, Any]:
        """An AccessLog's ``typed_config``: one of t.ACCESS_LOGGER_TYPES by ``@type``."""
        url, _name, cls = self.type_url(value, path, t.ACCESS_LOGGER_TYPES, "the access logger's")
        if cls is not None:
            return self.message(cls, value, path)
        supported = ", ".join(t.ACCESS_LOGGER_TYPES)
        raise self.error(path + ("@type",), f"unsupported access logger type '{url}' (envoy_fast supports: {supported})")

    def type_url(self, value: Any, path: Path, types: Dict[str, Any], whose: str):
        """(url, message name, Struct class or None) of a google.protobuf.Any;
        protobuf ignores the URL's host part, so only the message name counts."""
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping with '@type', got {_kind(value)}")
        url = value.get("@type")
        if not isinstance(url, str) or not url:
            raise self.error(
                path + ("@type",),
                f"missing '@type' ({whose} type URL)",
                f'add "@type": {next(iter(types))}',
            )
        message_name = url.rsplit("/", 1)[-1]
        for known_url, cls in types.items():
            if known_url.rsplit("/", 1)[-1] == message_name:
                return url, message_name, cls
        return url, message_name, None

    def layered_runtime(self, value: Any, path: Path) -> Dict[str, Any]:
        """envoy.config.bootstrap.v3.LayeredRuntime, kept as a dict.

        Layer field names are normalised; static_layer keys (runtime keys) are not.
        """
        runtime = "envoy.config.bootstrap.v3.LayeredRuntime"
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping ({runtime}), got {_kind(value)}")
        layers: List[Dict[str, Any]] = []
        for key, raw_layers in value.items():
            if key != "layers":
                raise self.error(
                    path + (str(key),),
                    f"unknown field: {runtime} has no field '{key}'",
                    diag.field_hint(str(key), ["layers"], ["layers"]),
                )
            if raw_layers is None:
                continue
            if not isinstance(raw_layers, list):
                raise self.error(path + ("layers",), f"expected a list, got {_kind(raw_layers)}")
            layers.extend(self.items(self.runtime_layer, raw_layers, path + ("layers",)))
        return {"layers": layers}

    def runtime_layer(self, raw: Any, path: Path) -> Dict[str, Any]:
        """envoy.config.bootstrap.v3.RuntimeLayer: a name plus a static or admin layer."""
        message = "envoy.config.bootstrap.v3.RuntimeLayer"
        fields = ("name", "static_layer", "disk_layer", "admin_layer", "rtds_layer")
        if not isinstance(raw, dict):
            raise self.error(path, f"expected a mapping ({message}), got {_kind(raw)}")
        layer: Dict[str, Any] = {}
        for key, value in raw.items():
            name = next((f for f in fields if key in (f, _json_name(f))), None)
            if name is None:
                raise self.error(
                    path + (str(key),),
                    f"unknown field: {message} has no field '{key}'",
                    diag.field_hint(str(key), fields, ("name", "static_layer", "admin_layer")),
                )
            fpath = path + (name,)
            if value is None:
                continue
            if name in ("disk_layer", "rtds_layer"):
                raise self.error(fpath, f"not supported by envoy_fast ({message}.{name})")
            if name == "name":
                if not isinstance(value, str):
                    raise self.error(fpath, f"expected a string, got {_kind(value)}")
            elif not isinstance(value, dict):
                raise self.error(fpath, f"expected a mapping, got {_kind(value)}")
            elif name == "admin_layer" and value:  # AdminLayer has no fields
                first = next(iter(value))
                raise self.error(fpath + (str(first),), f"unknown field: {message}.AdminLayer has no field '{first}'")
            layer[name] = _deep_copy(value)
        if "static_layer" not in layer and "admin_layer" not in layer:
            raise self.error(path, "a runtime layer needs static_layer or admin_layer")
        return layer


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _normalise_document(doc: Dict[str, Any], note: str, source: str = diag.FILE) -> Dict[str, Any]:
    return _Normaliser(note, source).message(t.Bootstrap, doc, ())


def _merge(dst: Dict[str, Any], src: Dict[str, Any]) -> None:
    """protobuf MergeFrom on normalised documents: lists append, messages merge.

    An ``Any`` (a dict with ``@type``) is replaced whole, as its type URL and
    payload are scalar fields of the Any message. Setting one member of a oneof
    does not clear another here, unlike protobuf; no modelled oneof can meet
    another through a merge, since they all live inside list items.
    """
    for key, value in src.items():
        old = dst.get(key)
        if key == _BAD:
            dst[key] = set(old or ()) | value
        elif isinstance(old, list) and isinstance(value, list):
            dst[key] = old + value
        elif isinstance(old, dict) and isinstance(value, dict) and "@type" not in value:
            _merge(old, value)
        else:
            dst[key] = value


_AT = re.compile(r"(?P<msg>.*) - at `\$(?P<loc>[^`]*)`", re.S)


def _from_validation_error(err: msgspec.ValidationError) -> ConfigError:
    """Turn msgspec's ``"<msg> - at `$.a.b[1]`"`` into a ConfigError at ``a.b[1]``."""
    text = str(err)
    m = _AT.fullmatch(text)
    path, message = (m.group("loc").lstrip("."), m.group("msg")) if m else ("", text)
    missing = re.fullmatch(r"Object missing required field `(.+)`", message)
    hint = None
    if missing:
        hint = f"add `{missing.group(1)}` to {path or 'the top level'}"
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
        message = "missing required field"
    return ConfigError(message, path, hint=hint)


class _TypeChecker:
    """msgspec's checks (types, bounds, required fields) over a whole normalised
    document, collecting every error rather than stopping at the first, and
    repairing the document so the cross-field checks can still run on it.

    Each scalar (or list of scalars) is converted on its own with its field's
    type, so messages are msgspec's own. A value that erred -- here, or while
    normalising (_INVALID, fields named under _BAD) -- is removed: an optional
    field then takes its default and its path is noted in ``repaired``; a
    required one makes its message unbuildable, which removes the field holding
    the message in turn. A listener or cluster that cannot be built is left out
    of its list; ``kept`` gives the document index of each one left in, and
    ``unchecked`` the names of clusters left out (None when one has no name).
    """

    TOP_LISTS = (("static_resources", "listeners"), ("static_resources", "clusters"))

    def __init__(self, errors: List[ConfigError]) -> None:
        self.errors = errors
        self.repaired: List[str] = []
        self.kept: Dict[str, List[int]] = {"listeners": [], "clusters": []}
        self.unchecked: Optional[set] = set()

    def message(self, cls: type, doc: Dict[str, Any], path: Path) -> bool:
        """Check and repair ``doc``; False when it cannot be built as a ``cls``."""
        ok = True
        bad = doc.pop(_BAD, ())
        for f in _fields(cls):
            fpath = path + (f.name,)
            if f.name in doc:
                if self.value(f.type, doc[f.name], fpath):
                    continue
                del doc[f.name]
            elif f.name not in bad:
                if f.required:
                    where = _fmt(path) or "the top level"
                    self.errors.append(
                        ConfigError("missing required field", _fmt(fpath), hint=f"add `{f.name}` to {where}")
                    )
                    ok = False
                continue
            if f.required:
                ok = False
            else:
                self.repaired.append(_fmt(fpath))
        if ok and hasattr(cls, "__post_init__"):
            # Checks a message makes on itself (msgspec reports its ValueError).
            ok = self.convert(cls, doc, path)
        return ok

    def value(self, tp: Any, value: Any, path: Path) -> bool:
        if value is _INVALID:
            return False
        base, metas = _unwrap(tp)
        if typing.get_origin(base) is Union and isinstance(value, dict):
            # An Any of several types: the Struct tagged with its @type.
            for arg in typing.get_args(base):
                if _is_struct(arg) and arg.__struct_config__.tag == value.get("@type"):
                    base = arg
        if _is_struct(base) and isinstance(value, dict):
            return self.message(base, value, path)
        if typing.get_origin(base) in (list, List) and isinstance(value, list):
            (item_tp,) = typing.get_args(base)
            if path in self.TOP_LISTS:
                self.top_list(item_tp, value, path)
                return True
            ok = self.convert(typing.Annotated[(list, *metas)], value, path) if metas else True
            for i, item in enumerate(value):
                ok = self.value(item_tp, item, path + (i,)) and ok
            return ok
        if _tainted(value):  # a runtime layer that erred
            return False
        return self.convert(tp, value, path)

    def top_list(self, item_tp: Any, items: List[Any], path: Path) -> None:
        """Listeners / clusters: leave out the ones that cannot be built."""
        kind = path[-1]
        kept = []
        for i, item in enumerate(items):
            if self.value(item_tp, item, path + (i,)):
                kept.append(item)
                self.kept[kind].append(i)
            elif kind == "clusters" and self.unchecked is not None:
                name = item.get("name") if isinstance(item, dict) else None
                if isinstance(name, str):
                    self.unchecked.add(name)
                else:
                    self.unchecked = None
        items[:] = kept

    def convert(self, tp: Any, value: Any, path: Path) -> bool:
        try:
            msgspec.convert(value, tp)
        except msgspec.ValidationError as err:
            inner = _from_validation_error(err)
            sep = "." if inner.path and not inner.path.startswith("[") else ""
            self.errors.append(ConfigError(inner.message, _fmt(path) + sep + inner.path, hint=inner.hint))
            return False
        return True


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


_struct_fields: Dict[type, Tuple[Any, ...]] = {}


def _fields(cls: type) -> Tuple[Any, ...]:
    fields = _struct_fields.get(cls)
    if fields is None:
        fields = _struct_fields[cls] = msgspec.structs.fields(cls)
    return fields


def _unwrap(tp: Any) -> Tuple[Any, List[Any]]:
    """``Optional[Annotated[X, m...]]`` -> ``(X, [m...])``."""
    metas: List[Any] = []
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp, *more = typing.get_args(tp)
            metas.extend(more)
        elif origin is Union:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp, metas
            tp = args[0]
        else:
            return tp, metas


# --- cross-field checks ------------------------------------------------------------

_SUPPORTED_LB = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM")


def _related(path: str, other: str) -> bool:
    """Whether one path is the other or inside it."""
    if len(path) > len(other):
        path, other = other, path
    return other == path or other.startswith((path + ".", path + "["))


def _ip(address: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


class _Checker:
    """The checks Envoy makes after parsing, plus envoy_fast's subset limits."""

    def __init__(
        self,
        bootstrap: t.Bootstrap,
        errors: Optional[List[ConfigError]] = None,
        listener_index: Optional[List[int]] = None,
        cluster_index: Optional[List[int]] = None,
        unchecked_clusters: Optional[set] = frozenset(),
    ) -> None:
        """``errors``: None to raise the first error, or a list to collect them all in.

        validate_bootstrap checks a Bootstrap with the listeners and clusters that
        erred left out: ``listener_index`` / ``cluster_index`` give the document
        index of each one kept, ``unchecked_clusters`` the names of those left out
        (None: unknown, so cluster references are not checked).
        """
        self.bs = bootstrap
        self.errors = errors
        self.clusters: Dict[str, int] = {}
        resources = bootstrap.static_resources
        self.listener_index = listener_index or list(range(len(resources.listeners)))
        self.cluster_index = cluster_index or list(range(len(resources.clusters)))
        self.unchecked_clusters = unchecked_clusters
        self.repaired: List[str] = []

    def fail(self, err: ConfigError) -> None:
        """Raise ``err``, or note it and go on when collecting.

        When collecting, an error about a value validate_bootstrap repaired
        (see _TypeChecker), or about a message holding one, or inside one, is
        dropped: it would be about the default put in place of the bad value.
        """
        if self.errors is None:
            raise err
        if not any(_related(err.path, repaired) for repaired in self.repaired):
            self.errors.append(err)

    def check(self) -> None:
        resources = self.bs.static_resources
        # Clusters first: Envoy's cluster manager initialises before listeners,
        # and tcp_proxy references are checked against the cluster names.
        for i, cluster in enumerate(resources.clusters):
            self.cluster(cluster, f"static_resources.clusters[{self.cluster_index[i]}]")
        names: Dict[str, int] = {}
        addresses: Dict[Tuple[str, int], int] = {}
        for i, listener in enumerate(resources.listeners):
            index = self.listener_index[i]
            path = f"static_resources.listeners[{index}]"
            self.listener(listener, index, path)
            if listener.name in names:
                self.fail(
                    ConfigError(
                        f"duplicate listener name '{listener.name}'"
                        f" (also static_resources.listeners[{names[listener.name]}])",
                        f"{path}.name",
                        hint="give each listener a unique name",
                    )
                )
            names.setdefault(listener.name, index)
            sa = listener.address.socket_address
            # Port 0 asks the kernel for a fresh port each time, so it never clashes.
            key = (str(_ip(sa.address)), sa.port_value)
            if sa.port_value != 0 and key in addresses:
                other = resources.listeners[addresses[key]].name
                self.fail(
                    ConfigError(
                        f"listener '{listener.name}' has duplicate address '{sa.address}:{sa.port_value}'"
                        f" as existing listener '{other}'",
                        f"{path}.address",
                        hint="give each listener its own port (or address)",
                    )
                )
            addresses.setdefault(key, i)
        if self.bs.admin is not None:
            self.socket_address(self.bs.admin.address.socket_address, "admin.address.socket_address", "admin")

    # addresses

    def socket_address(self, sa: t.SocketAddress, path: str, what: str) -> None:
        if sa.protocol != "TCP":
            self.fail(
                ConfigError(
                    f"{sa.protocol} is not supported by envoy_fast (TCP only)",
                    f"{path}.protocol",
                    hint="remove `protocol` or set it to TCP",
                )
            )
        if _ip(sa.address) is None:
            hint = ""
            if what == "endpoint":
                hint = (
                    " (a STATIC cluster takes IP literals;"
                    " STRICT_DNS/LOGICAL_DNS are not supported yet by envoy_fast)"
                )
            self.fail(
                ConfigError(
                    f"malformed IP address: {sa.address}{hint}",
                    f"{path}.address",
                    hint="write an IP address such as 127.0.0.1, 0.0.0.0 or ::1",
                )
            )

    def cidr(self, cidr: t.CidrRange, path: str) -> Union[ipaddress.IPv4Network, ipaddress.IPv6Network]:
        ip = _ip(cidr.address_prefix)
        if ip is None:
            raise ConfigError(f"malformed IP address: {cidr.address_prefix}", f"{path}.address_prefix")
        if cidr.prefix_len > ip.max_prefixlen:
            raise ConfigError(
                f"prefix_len {cidr.prefix_len} is out of range for IPv{ip.version} (0-{ip.max_prefixlen})",
                f"{path}.prefix_len",
            )
        # Host bits are masked off, as Envoy's CidrRange does.
        return ipaddress.ip_network(f"{ip}/{cidr.prefix_len}", strict=False)

    # clusters

    def cluster(self, cluster: t.Cluster, path: str) -> None:
        if cluster.name in self.clusters:
            self.fail(
                ConfigError(
                    f"cluster manager: duplicate cluster '{cluster.name}'",
                    f"{path}.name",
                    hint="give each cluster a unique name",
                )
            )
        self.clusters.setdefault(cluster.name, len(self.clusters))
        if cluster.type != "STATIC":
            self.fail(
                ConfigError(
                    f"cluster type {cluster.type} is not supported yet by envoy_fast (STATIC only)",
                    f"{path}.type",
                    hint="use type: STATIC with IP-address endpoints",
                )
            )
        if cluster.connect_timeout <= 0:
            self.fail(
                ConfigError(
                    "value must be greater than 0s", f"{path}.connect_timeout", hint='e.g. connect_timeout: "0.25s"'
                )
            )
        if cluster.lb_policy not in _SUPPORTED_LB:
            self.fail(
                ConfigError(
                    f"lb_policy {cluster.lb_policy} is not supported by envoy_fast ({', '.join(_SUPPORTED_LB)})",
                    f"{path}.lb_policy",
                    hint=f"use one of {', '.join(_SUPPORTED_LB)}",
                )
            )
        la = cluster.load_assignment
        if la is None:
            return
        if not la.cluster_name:
            self.fail(
                ConfigError(
                    "value length must be at least 1 characters",
                    f"{path}.load_assignment.cluster_name",
                    hint=f"set cluster_name (usually the cluster's name, '{cluster.name}')",
                )
            )
        for i, locality in enumerate(la.endpoints):
            lpath = f"{path}.load_assignment.endpoints[{i}]"
            if locality.priority != 0:
                self.fail(
                    ConfigError(
                        f"priority {locality.priority} is not supported by envoy_fast (priority 0 only)",
                        f"{lpath}.priority",
                        hint="remove `priority`",
                    )
                )
            for j, lb_endpoint in enumerate(locality.lb_endpoints):
                epath = f"{lpath}.lb_endpoints[{j}].endpoint.address.socket_address"
                self.socket_address(lb_endpoint.endpoint.address.socket_address, epath, "endpoint")

    # listeners

    def listener(self, listener: t.Listener, index: int, path: str) -> None:
        sa = listener.address.socket_address
        self.socket_address(sa, f"{path}.address.socket_address", "listener")
        if not listener.name:
            # Envoy names an unnamed listener with a random UUID; a stable one
            # keeps every worker process agreeing on it.
            seed = f"envoy_fast:listener:{index}:{sa.address}:{sa.port_value}"
            listener.name = str(uuid.uuid5(uuid.NAMESPACE_URL, seed))
        if not listener.filter_chains and listener.default_filter_chain is None:
            self.fail(
                ConfigError(
                    f"listener '{listener.name}' has no filter chains (give filter_chains or default_filter_chain)",
                    path,
                    hint="add a filter chain with a tcp_proxy filter",
                )
            )
        keys: List[Optional[Tuple[Any, ...]]] = []
        for i, chain in enumerate(listener.filter_chains):
            cpath = f"{path}.filter_chains[{i}]"
            self.filter_chain(chain, cpath)
            match = chain.filter_chain_match or t.FilterChainMatch()
            if any(_related(f"{cpath}.filter_chain_match", r) for r in self.repaired):
                keys.append(None)  # not compared: it holds a default for a bad value
                continue
            try:
                keys.append(self.match_key(match, f"{cpath}.filter_chain_match"))
            except ConfigError as err:
                self.fail(err)
                keys.append(None)  # not compared with the others
        if listener.default_filter_chain is not None:
            self.filter_chain(listener.default_filter_chain, f"{path}.default_filter_chain")
        self.overlaps(listener, keys, path)

    def filter_chain(self, chain: t.FilterChain, path: str) -> None:
        last = len(chain.filters) - 1
        for i, network_filter in enumerate(chain.filters):
            fpath = f"{path}.filters[{i}]"
            config = network_filter.typed_config
            if type(config) in t.TERMINAL_NETWORK_FILTERS and i != last:
                self.fail(
                    ConfigError(
                        f"terminal filter named {network_filter.name} must be the last filter in a network filter chain",
                        fpath,
                        hint=f"move {network_filter.name} to the end of filters",
                    )
                )
            if isinstance(config, t.TcpProxy):
                self.tcp_proxy(config, f"{fpath}.typed_config")

    def tcp_proxy(self, proxy: t.TcpProxy, path: str) -> None:
        if proxy.cluster is not None and proxy.weighted_clusters is not None:
            self.fail(
                ConfigError(
                    "only one of cluster and weighted_clusters may be set",
                    path,
                    hint="remove `cluster` or `weighted_clusters`",
                )
            )
        if proxy.cluster is None and proxy.weighted_clusters is None:
            self.fail(
                ConfigError(
                    "one of cluster or weighted_clusters is required", path, hint="add `cluster: <cluster name>`"
                )
            )
        # Envoy accepts an unknown cluster and resets every connection
        # (downstream_cx_no_route); envoy_fast refuses the config instead.
        if proxy.cluster is not None and not self.known_cluster(proxy.cluster):
            self.fail(
                ConfigError(
                    f"unknown cluster '{proxy.cluster}'", f"{path}.cluster", hint=self.cluster_hint(proxy.cluster)
                )
            )
        if proxy.weighted_clusters is not None:
            for i, weighted in enumerate(proxy.weighted_clusters.clusters):
                if not self.known_cluster(weighted.name):
                    self.fail(
                        ConfigError(
                            f"unknown cluster '{weighted.name}'",
                            f"{path}.weighted_clusters.clusters[{i}].name",
                            hint=self.cluster_hint(weighted.name),
                        )
                    )
        limit = proxy.max_downstream_connection_duration
        if limit is not None and limit < 0.001:
            self.fail(
                ConfigError(
                    "value must be greater than or equal to 1ms",
                    f"{path}.max_downstream_connection_duration",
                    hint='e.g. "0.001s", or leave it out for no limit',
                )
            )

    def known_cluster(self, name: str) -> bool:
        """Whether ``name`` is a cluster (or one validate_bootstrap left unchecked)."""
        if self.unchecked_clusters is None:
            return True
        return name in self.clusters or name in self.unchecked_clusters

    def cluster_hint(self, name: str) -> str:
        names = list(self.clusters) + sorted(self.unchecked_clusters or ())
        if not names:
            return "define the cluster under static_resources.clusters"
        match = diag.close_match(name, names)
        defined = f"defined clusters: {', '.join(names)}"
        return f"did you mean `{match}`? {defined}" if match else defined

    def match_key(self, match: t.FilterChainMatch, path: str) -> Tuple[Any, ...]:
        """The filter_chain_match as per-criterion sets of values (None = unset)."""

        def cidrs(ranges: List[t.CidrRange], name: str) -> frozenset:
            return frozenset(self.cidr(r, f"{path}.{name}[{i}]") for i, r in enumerate(ranges)) or frozenset([None])

        return (
            match,
            frozenset([match.destination_port]),
            cidrs(match.prefix_ranges, "prefix_ranges"),
            cidrs(match.direct_source_prefix_ranges, "direct_source_prefix_ranges"),
            frozenset([match.source_type]),
            cidrs(match.source_prefix_ranges, "source_prefix_ranges"),
            frozenset(match.source_ports) or frozenset([None]),
        )

    def overlaps(self, listener: t.Listener, keys: List[Tuple[Any, ...]], path: str) -> None:
        """Reject two chains that could both be the most specific match, as Envoy.

        Envoy files each chain under every combination of its criteria values; two
        chains sharing a value for every criterion (unset only equals unset) would
        share a slot in its lookup tree.
        """
        hint = "make the filter_chain_match of the two chains differ in some criterion"
        for j, key in enumerate(keys):
            for i in range(j):
                other = keys[i]
                if key is None or other is None:
                    continue
                if all(a & b for a, b in zip(key[1:], other[1:])):
                    chains = listener.filter_chains
                    mpath = f"{path}.filter_chains[{j}].filter_chain_match"
                    if key[0] == other[0]:
                        self.fail(
                            ConfigError(
                                f"filter chain '{chains[j].name}' has the same matching rules defined as"
                                f" '{chains[i].name}' (filter_chains[{i}])",
                                mpath,
                                hint=hint,
                            )
                        )
                    else:
                        self.fail(
                            ConfigError(
                                f"filter chain '{chains[j].name}' has matching rules overlapping those of"
                                f" '{chains[i].name}' (filter_chains[{i}])",
                                mpath,
                                hint=hint,
                            )
                        )
                    break  # one report per chain


# --- dumping -------------------------------------------------------------------


def dump_bootstrap(bootstrap: t.Bootstrap) -> Dict[str, Any]:
    """The bootstrap as an Envoy-style document (for ``/config_dump`` and workers).

    Durations become ``"<seconds>s"`` strings and percents ``{"value": x}``, so the
    result loads again with :func:`load_bootstrap` (after ``json.dump``) to an
    equal Bootstrap. Unset optional fields are left out; defaults are written.
    """
    return _dump(bootstrap)


def _format_duration(seconds: float) -> str:
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return text + "s"


def _dump(struct: msgspec.Struct) -> Dict[str, Any]:
    schema = _schema(type(struct))
    out: Dict[str, Any] = {}
    tag = type(struct).__struct_config__.tag
    if tag is not None:
        out["@type"] = tag
    for name, spec in schema.fields.items():
        value = getattr(struct, name)
        if value is not None:
            out[name] = _dump_value(spec, value)
    return out


def _dump_value(spec: _Spec, value: Any) -> Any:
    kind = spec.extra.get("kind")
    if kind == "duration":
        return _format_duration(value)
    if kind == "percent":
        return {"value": value}
    if kind == "layered_runtime":
        return _deep_copy(value)
    if isinstance(value, msgspec.Struct):
        return _dump(value)
    if spec.kind == "list":
        return [_dump_value(spec.sub, item) for item in value]
    return value
