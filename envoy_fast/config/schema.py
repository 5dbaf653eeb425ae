"""How each field of the config Structs (``types.py``) is read from a document.

A Struct's fields carry ``msgspec.Meta(extra=...)`` notes saying what protobuf
JSON form they take (``duration``, ``percent``, ``enum``, ``wrapper``, an
``Any`` ``registry`` of extensions); :func:`schema_of` turns a Struct class into the table
the normaliser walks and the dumpers print from.
"""
import typing
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Union

import msgspec

__all__ = ["Spec", "Schema", "schema_of", "json_name"]


class Spec(NamedTuple):
    """How one field's value is read: ``kind`` is struct/list/any/int/float/str/bool/dict."""

    kind: str
    sub: Any = None  # the Struct class, or the item Spec of a list
    extra: Mapping[str, Any] = {}


class Schema(NamedTuple):
    names: Dict[str, str]  # accepted key (field name or its JSON name) -> field name
    fields: Dict[str, Spec]  # modelled fields


_SCALARS = {int: "int", float: "float", str: "str", bool: "bool"}
_schemas: Dict[type, Schema] = {}


def spec_of(tp: Any, extra: Optional[Dict[str, Any]] = None) -> Spec:
    """The Spec of a field annotated ``tp``."""
    extra = dict(extra or {})
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        base, *metas = typing.get_args(tp)
        for meta in metas:
            if isinstance(meta, msgspec.Meta) and meta.extra:
                extra.update(meta.extra)
        return spec_of(base, extra)
    if "registry" in extra:  # a google.protobuf.Any: the registered type its @type names
        return Spec("any", None, extra)
    if origin is Union:  # Optional[X]: null is dropped before values are read
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return spec_of(inner, extra)
    if origin in (list, List):
        return Spec("list", spec_of(typing.get_args(tp)[0]), extra)
    if origin in (dict, Dict) or tp is dict:
        return Spec("dict", None, extra)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return Spec("struct", tp, extra)
    return Spec(_SCALARS[tp], None, extra)


def json_name(field_name: str) -> str:
    """protobuf's JSON name: ``connect_timeout`` -> ``connectTimeout``."""
    head, *rest = field_name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def schema_of(cls: type) -> Schema:
    """The (cached) Schema of a config Struct class."""
    schema = _schemas.get(cls)
    if schema is None:
        fields = {f.name: spec_of(f.type) for f in msgspec.structs.fields(cls)}
        names: Dict[str, str] = {}
        for name in set(fields) | set(cls.ENVOY_FIELDS):
            names[name] = name
            names[json_name(name)] = name
        schema = _schemas[cls] = Schema(names, fields)
    return schema
