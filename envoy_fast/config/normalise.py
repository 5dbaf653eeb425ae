"""Normalising a parsed document against the config schema, and merging.

Each document (``-c`` file, ``--config-yaml``) is read against the message
schema in ``types.py`` (see ``schema.py``): lowerCamelCase keys become field
names, ``null`` means unset, durations / enums / wrappers / percents become
plain values, ``typed_config`` is dispatched on ``@type``, and unknown or
unsupported fields are reported with their document path. The normalised
documents are then merged like protobuf ``MergeFrom`` (scalars replaced,
messages merged, lists appended); msgspec builds the Structs from the result.
"""
import logging
import re
from typing import Any, Dict, List, Optional, Tuple, Union

import msgspec

from envoy_fast.extensions import registry as extensions

from . import _diagnostics as diag
from . import types as t
from .errors import ConfigError
from .schema import Spec, json_name, schema_of

__all__ = ["Normaliser", "normalise_document", "merge", "drop_admin_without_address", "deep_copy", "ERRED", "INVALID"]

Path = Tuple[Union[str, int], ...]

# Ignored fields are said at debug level under the loader's name.
log = logging.getLogger("envoy_fast.config.loader")


def _is_set(value: Any) -> bool:
    """proto3 presence: a message ({} included) is set; a zero scalar or empty list is not."""
    if isinstance(value, dict):
        return True
    return value not in (None, "", 0, False, [])


# Marks a collecting Normaliser leaves where a value erred (the value itself is
# left out); ``convert.py`` takes them out again before msgspec sees the document.
#: Key of a message dict: the set of its modelled fields whose value erred.
ERRED = "!erred"


class _Invalid:
    """A list item whose value erred (kept so later items keep their index)."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID = _Invalid()


class Normaliser:
    """Walks one parsed document against the schema; see the module docstring."""

    def __init__(self, note: str, source: str = diag.FILE, errors: Optional[List[ConfigError]] = None) -> None:
        self.note = note  # appended to messages, says which document erred
        self.source = source  # which document: its errors' paths are into it
        # None: raise the first error. A list: collect every error in it, leave
        # out the value that erred (a list item becomes INVALID; a message notes
        # its modelled fields that erred under ERRED) and go on.
        self.errors = errors

    def error(self, path: Path, message: str, hint: Optional[str] = None) -> ConfigError:
        return ConfigError(message + self.note, diag.fmt_path(path), hint=hint, source=self.source)

    def fail(self, err: ConfigError) -> None:
        """Raise ``err``, or note it and go on when collecting."""
        if self.errors is None:
            raise err
        self.errors.append(err)

    def message(self, cls: type, raw: Any, path: Path) -> Dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.error(path, f"expected a mapping ({cls.ENVOY_TYPE}), got {diag.kind(raw)}")
        schema = schema_of(cls)
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
                    log.debug("%s: ignored (no effect in envoy_fast)", diag.fmt_path(fpath))
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
            out[ERRED] = bad
        return out

    def value(self, spec: Spec, value: Any, path: Path) -> Any:
        extra = spec.extra
        if "registry" in extra:
            return self.any_message(extra["registry"], value, path)
        if extra.get("kind") == "layered_runtime":
            return self.layered_runtime(value, path)
        if extra.get("kind") == "protocol_options":
            return self.protocol_options(value, path)
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
                raise self.error(path, f"expected a list, got {diag.kind(value)}")
            return self.items(lambda item, ipath: self.value(spec.sub, item, ipath), value, path)
        if extra.get("wrapper") and isinstance(value, dict):
            # google.protobuf.*Value wrappers may also be written {"value": x}.
            value = self.single_value_message(value, path, "wrapper")
        if "enum" in extra:
            return self.enum(extra["enum"], value, path)
        return self.scalar(spec.kind, value, path)

    def items(self, read: Any, values: List[Any], path: Path) -> List[Any]:
        """``read(item, item_path)`` for each item; when collecting, an item that
        erred stays in the list as INVALID (later items keep their index)."""
        out = []
        for i, item in enumerate(values):
            try:
                out.append(read(item, path + (i,)))
            except ConfigError as err:
                self.fail(err)
                out.append(INVALID)
        return out

    def single_value_message(self, value: Any, path: Path, what: str) -> Any:
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping ({what}, e.g. {{value: 50}}), got {diag.kind(value)}")
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
                    raise self.error(path + (key,), f"expected an integer, got {diag.kind(part)}")
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
        """A google.protobuf.Any: the Struct registered for its ``@type``
        (``envoy_fast.extensions.registry``)."""
        types = extensions.config_types(registry)
        if registry == "access_logger":
            url, _name, cls = self.type_url(value, path, types, "the access logger's")
            if cls is not None:
                return self.message(cls, value, path)
            supported = ", ".join(types)
            raise self.error(
                path + ("@type",), f"unsupported access logger type '{url}' (envoy_fast supports: {supported})"
            )
        url, message_name, cls = self.type_url(value, path, types, "the filter's")
        if cls is not None:
            return self.message(cls, value, path)
        reason = extensions.reason_not_supported(registry, message_name)
        if reason is not None:
            raise self.error(path, reason)
        supported = ", ".join(types)
        match = diag.close_match(url, list(types), cutoff=0.8)
        label = extensions.REGISTRY_LABELS.get(registry, registry)
        raise self.error(
            path + ("@type",),
            f"unsupported {label} type '{url}' (envoy_fast supports: {supported})",
            f"did you mean `{match}`?" if match else None,
        )

    def protocol_options(self, value: Any, path: Path) -> Dict[str, Any]:
        """A cluster's typed_extension_protocol_options: {extension name: Any}.
        Only the upstream HTTP options exist in envoy_fast (HTTP/1.1)."""
        from . import upstream_http_types as uh  # lazily: it imports the HCM's config

        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping, got {diag.kind(value)}")
        out: Dict[str, Any] = {}
        for key, any_value in value.items():
            kpath = path + (str(key),)
            if key not in uh.UPSTREAM_HTTP_OPTIONS_NAMES:
                # Envoy's words for a name it has no implementation of.
                self.fail(self.error(
                    kpath, "Didn't find a registered network or http filter or protocol options"
                    f" implementation for name: '{key}'",
                    f"use {uh.UPSTREAM_HTTP_OPTIONS_NAMES[0]}"))
                continue
            try:
                _url, _name, cls = self.type_url(
                    any_value, kpath, {uh.UPSTREAM_HTTP_OPTIONS_URL: uh.UpstreamHttpProtocolOptions},
                    "the protocol options'")
                if cls is None:
                    raise self.error(kpath + ("@type",), f"unsupported protocol options type '{_url}'"
                                     f" (envoy_fast supports: {uh.UPSTREAM_HTTP_OPTIONS_URL})")
                msg = self.message(cls, any_value, kpath)
                if _erred(msg):
                    continue                    # told already
                if "explicit_http_config" not in msg:
                    if any(k in any_value for k in ("use_downstream_protocol_config", "useDownstreamProtocolConfig",
                                                    "auto_config", "autoConfig")):
                        continue        # refused above as not supported
                    raise self.error(kpath, 'Proto constraint validation failed (field: '
                                     '"upstream_protocol_options", reason: is required)',
                                     "add explicit_http_config: {http_protocol_options: {}}")
                # Held in canonical form (every field, defaults included), so
                # that a dumped config loads again to an equal Bootstrap.
                try:
                    out[key] = msgspec.to_builtins(msgspec.convert(msg, cls))
                except msgspec.ValidationError as err:
                    raise self.error(kpath, str(err)) from None
            except ConfigError as err:
                self.fail(err)
        return out

    def type_url(self, value: Any, path: Path, types: Dict[str, Any], whose: str):
        """(url, message name, Struct class or None) of a google.protobuf.Any;
        protobuf ignores the URL's host part, so only the message name counts."""
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping with '@type', got {diag.kind(value)}")
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
            raise self.error(path, f"expected a mapping ({runtime}), got {diag.kind(value)}")
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
                raise self.error(path + ("layers",), f"expected a list, got {diag.kind(raw_layers)}")
            layers.extend(self.items(self.runtime_layer, raw_layers, path + ("layers",)))
        return {"layers": layers}

    def runtime_layer(self, raw: Any, path: Path) -> Dict[str, Any]:
        """envoy.config.bootstrap.v3.RuntimeLayer: a name plus a static or admin layer."""
        message = "envoy.config.bootstrap.v3.RuntimeLayer"
        fields = ("name", "static_layer", "disk_layer", "admin_layer", "rtds_layer")
        if not isinstance(raw, dict):
            raise self.error(path, f"expected a mapping ({message}), got {diag.kind(raw)}")
        layer: Dict[str, Any] = {}
        for key, value in raw.items():
            name = next((f for f in fields if key in (f, json_name(f))), None)
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
                    raise self.error(fpath, f"expected a string, got {diag.kind(value)}")
            elif not isinstance(value, dict):
                raise self.error(fpath, f"expected a mapping, got {diag.kind(value)}")
            elif name == "admin_layer" and value:  # AdminLayer has no fields
                first = next(iter(value))
                raise self.error(fpath + (str(first),), f"unknown field: {message}.AdminLayer has no field '{first}'")
            layer[name] = deep_copy(value)
        if "static_layer" not in layer and "admin_layer" not in layer:
            raise self.error(path, "a runtime layer needs static_layer or admin_layer")
        return layer


def deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def _erred(doc: Any) -> bool:
    """A normalised message, or one inside it, had a field that erred."""
    if isinstance(doc, dict):
        return ERRED in doc or any(_erred(v) for v in doc.values())
    if isinstance(doc, list):
        return any(_erred(v) for v in doc)
    return False


def normalise_document(doc: Dict[str, Any], note: str, source: str = diag.FILE) -> Dict[str, Any]:
    return Normaliser(note, source).message(t.Bootstrap, doc, ())


def merge(dst: Dict[str, Any], src: Dict[str, Any]) -> None:
    """protobuf MergeFrom on normalised documents: lists append, messages merge.

    An ``Any`` (a dict with ``@type``) is replaced whole, as its type URL and
    payload are scalar fields of the Any message. Setting one member of a oneof
    does not clear another here, unlike protobuf; no modelled oneof can meet
    another through a merge, since they all live inside list items.
    """
    for key, value in src.items():
        old = dst.get(key)
        if key == ERRED:
            dst[key] = set(old or ()) | value
        elif isinstance(old, list) and isinstance(value, list):
            dst[key] = old + value
        elif isinstance(old, dict) and isinstance(value, dict) and "@type" not in value:
            merge(old, value)
        else:
            dst[key] = value


def drop_admin_without_address(doc: Dict[str, Any]) -> None:
    """Envoy treats an admin block without an address as "no admin listener"."""
    admin = doc.get("admin")
    if isinstance(admin, dict) and "address" not in admin and "address" not in admin.get(ERRED, ()):
        del doc["admin"]
