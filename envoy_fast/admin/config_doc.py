"""The bootstrap as Envoy's /config_dump prints it.

Envoy prints the protos it parsed: a field appears when the config set it
(messages, wrappers, durations, oneof members) or when it is a plain scalar
with a non-default value; fields come in field-number order; durations are
``"1s"`` / ``"0.250s"``. ``dump_bootstrap`` writes every default, so this
re-reads the configuration sources (normalised by the loader, which keeps only
what was written) and prints that against the config schema. If the sources
cannot be read again, ``dump_bootstrap`` of the running Bootstrap is used.
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Dict, Optional

from envoy_fast.admin import render
from envoy_fast.config import proto_schema

log = logging.getLogger("envoy_fast.admin")

_OMIT = object()


class Sources:
    """What -c / --config-yaml say, read again: `doc` is the merged document
    normalised by the loader (only fields that were written), or None."""

    def __init__(self, doc: Optional[Dict[str, Any]]) -> None:
        self.doc = doc


def read_sources(config_path: Optional[str], config_yaml: Optional[str]) -> Sources:
    doc: Optional[Dict[str, Any]] = None
    try:
        from envoy_fast.config import normalise
        from envoy_fast.config.source import Sources as ConfigSources
        raws = ConfigSources(config_path or None, config_yaml or None).documents()
        if not raws:
            return Sources(None)
        merged: Dict[str, Any] = {}
        for raw, note, source in raws:
            normalise.merge(merged, normalise.normalise_document(raw, note, source))
        normalise.drop_admin_without_address(merged)
        doc = merged
    except Exception as exc:  # a changed file or loader; fall back (see module doc)
        log.debug("config_dump: cannot re-read the configuration: %s", exc)
    return Sources(doc)


def _registry_class(registry: str, value: Dict[str, Any]):
    from envoy_fast.extensions import registry as extensions
    return extensions.config_type(registry, value.get("@type", ""))


def to_envoy(cls, doc: Dict[str, Any]) -> Dict[str, Any]:
    """A normalised message document as Envoy's JSON printer writes it."""
    from envoy_fast.config.schema import schema_of
    schema = schema_of(cls)
    out: Dict[str, Any] = {}
    if "@type" in doc:
        out["@type"] = doc["@type"]
    for name, value in doc.items():
        if name == "@type" or name not in schema.fields:
            continue
        v = _field(cls, name, schema.fields[name], value, top=True)
        if v is not _OMIT:
            out[name] = v
    return proto_schema.order_fields(cls.ENVOY_TYPE, out)


def _field(cls, name: str, spec, value: Any, top: bool) -> Any:
    from envoy_fast.config import types as t
    extra = spec.extra
    if "registry" in extra and isinstance(value, dict):
        sub = _registry_class(extra["registry"], value)
        return to_envoy(sub, value) if sub is not None else copy.deepcopy(value)
    kind = extra.get("kind")
    if kind == "duration":
        return render.fmt_seconds(value)
    if kind == "percent":
        return {"value": value}
    if kind == "layered_runtime":
        return copy.deepcopy(value)
    if spec.kind == "struct":
        return to_envoy(spec.sub, value)
    if spec.kind == "list":
        items = [_field(cls, name, spec.sub, item, top=False) for item in value]
        return items if items or not top else _OMIT
    if spec.kind == "dict":
        return copy.deepcopy(value)
    if extra.get("wrapper") or not top:
        return value
    if "enum" in extra:
        zero = next((n for n, num in t.ENUMS[extra["enum"]].items() if num == 0), None)
        if value == zero and (cls.ENVOY_TYPE, name) not in proto_schema.ONEOF_ENUMS:
            return _OMIT
        return value
    if isinstance(value, bool) or isinstance(value, (int, float, str)):
        if not value:                      # proto3 default: not printed
            return _OMIT
    return value


def bootstrap_json(bootstrap, raw: Optional[Dict[str, Any]], version: str) -> Dict[str, Any]:
    """The running bootstrap for /config_dump, with the node's build info."""
    from envoy_fast.config import dump_bootstrap, types as t
    if raw is not None:
        try:
            doc = to_envoy(t.Bootstrap, raw)
        except Exception as exc:  # pragma: no cover - schema drift
            log.debug("config_dump: %s", exc)
            doc = _plain(dump_bootstrap(bootstrap))
    else:
        doc = _plain(dump_bootstrap(bootstrap))
    # Listeners the config left unnamed carry the name the loader gave them.
    listeners = doc.get("static_resources", {}).get("listeners", [])
    for item, lst in zip(listeners, bootstrap.static_resources.listeners):
        if not item.get("name"):
            item["name"] = lst.name
            listeners[listeners.index(item)] = proto_schema.order_fields(
                "envoy.config.listener.v3.Listener", item)
    node = render.node_json(doc.get("node"), version, defaults=False)
    node.update({k: v for k, v in (doc.get("node") or {}).items() if k not in node})
    doc["node"] = proto_schema.order_fields("envoy.config.core.v3.Node", node)
    return proto_schema.order_fields("envoy.config.bootstrap.v3.Bootstrap", doc)


def _plain(doc: Dict[str, Any]) -> Dict[str, Any]:
    return copy.deepcopy(doc)
