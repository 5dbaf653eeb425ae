"""A Bootstrap back to an Envoy-style document (``/config_dump``, workers)."""
from typing import Any, Dict

import msgspec

from . import types as t
from .normalise import deep_copy
from .schema import Spec, schema_of

__all__ = ["dump_bootstrap"]


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
    schema = schema_of(type(struct))
    out: Dict[str, Any] = {}
    tag = type(struct).__struct_config__.tag
    if tag is not None:
        out["@type"] = tag
    for name, spec in schema.fields.items():
        value = getattr(struct, name)
        if value is not None:
            out[name] = _dump_value(spec, value)
    return out


def _dump_value(spec: Spec, value: Any) -> Any:
    kind = spec.extra.get("kind")
    if kind == "duration":
        return _format_duration(value)
    if kind == "percent":
        return {"value": value}
    if kind == "layered_runtime":
        return deep_copy(value)
    if kind == "protocol_options":
        from .upstream_http_types import UpstreamHttpProtocolOptions  # lazily: see that module
        return {name: _dump(msgspec.convert(v, UpstreamHttpProtocolOptions)) for name, v in value.items()}
    if isinstance(value, msgspec.Struct):
        return _dump(value)
    if spec.kind == "list":
        return [_dump_value(spec.sub, item) for item in value]
    return value
