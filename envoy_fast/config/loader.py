"""Bootstrap loading: YAML/JSON -> checked, typed :class:`~.types.Bootstrap`.

The pipeline mirrors what Envoy does with ``-c`` / ``--config-yaml``, one
module per step:

1. ``source``: each text is read and parsed (YAML, or JSON for ``.json``
   files), refused when nested too deep (``nesting``);
2. ``normalise``: each document is read against the message schema
   (``schema``, ``types``) and the ``--config-yaml`` one merged over the file
   like protobuf ``MergeFrom``;
3. ``convert``: msgspec builds the Structs, checking types and bounds;
4. ``checks``: the cross-field checks Envoy makes when it loads the config
   (duplicate names, unknown clusters, overlapping filter chain matches, ...).

Every step notes each error and goes on (:func:`validate_bootstrap` returns
them all); :func:`load_bootstrap` runs the same steps and raises the first.
Every error is a :class:`ConfigError` naming the path with Envoy's field names,
e.g. ``static_resources.clusters[1].connect_timeout: invalid duration '500ms'
...``, placed at its line (``_diagnostics``).
"""
from typing import Any, Dict, List, Optional, Tuple

from . import _diagnostics as diag
from . import types as t
from .checks import Checker
from .convert import Conversion
from .errors import ConfigError
from .normalise import Normaliser, drop_admin_without_address, merge
from .source import Sources

__all__ = ["load_bootstrap", "validate_bootstrap"]


def load_bootstrap(config_path: Optional[str] = None, config_yaml: Optional[str] = None) -> t.Bootstrap:
    """Load, merge and check a bootstrap, as Envoy's ``-c`` and ``--config-yaml``.

    ``config_path`` names a YAML or JSON file; ``config_yaml`` is YAML (or JSON)
    text merged over it like protobuf ``MergeFrom`` (lists are appended). Either
    may be omitted, not both. Returns the typed :class:`Bootstrap`; raises
    :class:`ConfigError` for anything Envoy would reject, and for Envoy features
    envoy_fast does not implement: the first error :func:`validate_bootstrap`
    finds, in the earliest step that finds one (a later step's error may be a
    consequence of it).
    """
    bootstrap, stages = _validate(config_path, config_yaml)
    for errors in stages:
        if errors:
            raise errors[0]
    assert bootstrap is not None
    return bootstrap


def validate_bootstrap(config_path: Optional[str] = None, config_yaml: Optional[str] = None) -> List[ConfigError]:
    """Every error :func:`load_bootstrap` could raise for this input, not just the first.

    Returns an empty list when ``load_bootstrap`` would succeed. Each error has
    its ``line`` (and ``column``/``source``) where it could be placed, and a
    ``hint`` where there is an obvious fix; the list is in document order. The
    checks go on past an error in one field or list item: fields and list
    items that are fine are still checked, and the cross-field checks (names,
    addresses, cluster references, ...) run over every listener and cluster
    that has no error of its own.
    """
    stages = _validate(config_path, config_yaml)[1]
    return _in_document_order(diag.dedupe([err for errors in stages for err in errors]))


def _validate(
    config_path: Optional[str], config_yaml: Optional[str]
) -> Tuple[Optional[t.Bootstrap], List[List[ConfigError]]]:
    """(the Bootstrap or None, the errors of each step -- reading,
    normalising, conversion, cross-field checks -- each in the order found)."""
    if config_path is None and config_yaml is None:
        return None, [[ConfigError("no configuration given: need config_path or config_yaml")]]
    sources = Sources(config_path, config_yaml)
    reading: List[ConfigError] = []
    normalising: List[ConfigError] = []
    docs = sources.documents(reading)
    doc: Dict[str, Any] = {}
    for raw, note, source in docs:
        merge(doc, Normaliser(note, source, normalising).message(t.Bootstrap, raw, ()))
    bootstrap = None
    converting: List[ConfigError] = []
    checking: List[ConfigError] = []
    if not reading:
        drop_admin_without_address(doc)
        conversion = Conversion(doc, converting)
        bootstrap = conversion.build()
        if bootstrap is not None:
            Checker(
                bootstrap,
                checking,
                conversion.kept["listeners"],
                conversion.kept["clusters"],
                conversion.unchecked,
                conversion.repaired,
            ).check()
    stages = [reading, normalising, converting, checking]
    sources.locate([err for errors in stages for err in errors])
    return bootstrap, stages


def _in_document_order(errors: List[ConfigError]) -> List[ConfigError]:
    """Errors with a line first, file before --config-yaml, by line and column."""

    def key(err: ConfigError) -> Tuple[int, int, int, int]:
        if err.line is None:
            return (1, 0, 0, 0)
        return (0, int(err.source == diag.CONFIG_YAML), err.line, err.column or 0)

    return sorted(errors, key=key)
