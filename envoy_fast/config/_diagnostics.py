"""Helpers that make configuration errors actionable: source lines and hints.

Line numbers come from the YAML *node* tree of each document (``yaml.compose``,
with libyaml's composer when available); JSON is YAML, so ``.json`` files get
lines too. An error's document path (Envoy field names, ``a.b[1].c``) is walked
down that tree: keys are compared in snake_case, so ``connectTimeout`` in the
document matches ``connect_timeout`` in the path. A path that leaves the tree
(a missing field, say) is placed at the deepest node it reached.

Hints are short "how to fix it" texts: a close match for a misspelt name, the
accepted forms of a duration, ...
"""
import difflib
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import yaml

Segments = Tuple[Union[str, int], ...]
#: Where an error is: (source, line, column), source "file" or "--config-yaml".
Location = Tuple[str, int, int]

FILE = "file"
CONFIG_YAML = "--config-yaml"

_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULL_TAG = "tag:yaml.org,2002:null"


def snake(key: str) -> str:
    """``connectTimeout`` -> ``connect_timeout`` (protobuf JSON names back to field names)."""
    if not any(c.isupper() for c in key):
        return key
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


_SEGMENT = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def parse_path(path: str) -> Segments:
    """``"a.b[1].c"`` -> ``("a", "b", 1, "c")``."""
    return tuple(int(m.group(1)) if m.group(1) is not None else m.group(2) for m in _SEGMENT.finditer(path))


def fmt_path(path: Segments) -> str:
    """``("a", "b", 1, "c")`` -> ``"a.b[1].c"`` (the inverse of :func:`parse_path`)."""
    out = ""
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if out else seg)
    return out


def kind(value: Any) -> str:
    """What a document value is, for messages: "a string", "a list", "null", ..."""
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


def compose(text: Optional[str]) -> Optional[yaml.Node]:
    """The YAML node tree of ``text``, or None (no text, or it does not compose)."""
    if not text:
        return None
    try:
        return yaml.compose(text, Loader=_COMPOSER)
    except yaml.YAMLError:
        return None


def _mark(node: yaml.Node) -> Tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG


def _entry(node: Optional[yaml.Node], key: str) -> Optional[Tuple[yaml.Node, yaml.Node]]:
    """The (key node, value node) of ``key`` in a mapping node."""
    if not isinstance(node, yaml.MappingNode):
        return None
    wanted = snake(key)
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and snake(str(key_node.value)) == wanted:
            return key_node, value_node
    return None


def find(node: Optional[yaml.Node], segments: Segments) -> Optional[Tuple[int, int]]:
    """(line, column) of the deepest node of ``segments`` in one document.

    A mapping entry is placed at its key, a list item at the item.
    """
    best = None
    for seg in segments:
        if isinstance(seg, int):
            if not isinstance(node, yaml.SequenceNode) or not 0 <= seg < len(node.value):
                break
            node = node.value[seg]
            best = _mark(node)
        else:
            entry = _entry(node, seg)
            if entry is None:
                break
            best = _mark(entry[0])
            node = entry[1]
    if best is None and node is not None and not segments:
        best = _mark(node)
    return best


def _has_type_url(node: yaml.Node) -> bool:
    return _entry(node, "@type") is not None


def find_merged(
    file_node: Optional[yaml.Node], overlay_node: Optional[yaml.Node], segments: Segments
) -> Optional[Location]:
    """Where ``segments`` of the merged document came from (``--config-yaml`` merged
    over the file as the loader merges: lists append, messages merge, the rest --
    an ``Any`` with ``@type`` included -- is replaced)."""
    f, o = file_node, overlay_node
    best: Optional[Location] = None
    for seg in segments:
        if isinstance(seg, int):
            f_items = f.value if isinstance(f, yaml.SequenceNode) else []
            o_items = o.value if isinstance(o, yaml.SequenceNode) else []
            if 0 <= seg < len(f_items):
                f, o = f_items[seg], None
                best = (FILE,) + _mark(f)
            elif 0 <= seg - len(f_items) < len(o_items):
                f, o = None, o_items[seg - len(f_items)]
                best = (CONFIG_YAML,) + _mark(o)
            else:
                break
            continue
        fe, oe = _entry(f, seg), _entry(o, seg)
        if fe is None and oe is None:
            break
        # null leaves a field unset: the other document's value stands.
        if fe is not None and oe is not None:
            if _is_null(oe[1]):
                oe = None
            elif _is_null(fe[1]):
                fe = None
        if fe is not None and oe is not None:
            fv, ov = fe[1], oe[1]
            merges = (
                isinstance(fv, yaml.MappingNode) and isinstance(ov, yaml.MappingNode) and not _has_type_url(ov)
            ) or (isinstance(fv, yaml.SequenceNode) and isinstance(ov, yaml.SequenceNode))
            if merges:
                f, o = fv, ov
                best = (FILE,) + _mark(fe[0])
            else:  # the overlay's value replaces the file's
                f, o = None, ov
                best = (CONFIG_YAML,) + _mark(oe[0])
        elif fe is not None:
            f, o = fe[1], None
            best = (FILE,) + _mark(fe[0])
        else:
            f, o = None, oe[1]
            best = (CONFIG_YAML,) + _mark(oe[0])
    return best


# --- hints -----------------------------------------------------------------------


def close_match(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> Optional[str]:
    """The candidate most like ``word`` (difflib), or None."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def field_hint(key: str, names: Sequence[str], supported: Sequence[str]) -> str:
    """Hint for an unknown field ``key``: the closest field name, else the fields to use.

    ``names`` are every accepted spelling (field names and JSON names); the
    suggestion keeps the document's style (camelCase or snake_case).
    """
    camel = any(c.isupper() for c in key)
    pool = sorted({n for n in names if any(c.isupper() for c in n) == camel or "_" not in snake(n)})
    match = close_match(key, pool) or close_match(snake(key), sorted({snake(n) for n in names}))
    if match:
        return f"did you mean `{match}`?"
    return f"fields envoy_fast supports here: {', '.join(supported)}"


_DURATION_FORMS = 'accepted forms: "5s", "0.25s" (decimal seconds ending in s) or {seconds: 5, nanos: 250000000}'
_UNITS = {
    None: Decimal(1), "s": Decimal(1), "sec": Decimal(1), "ms": Decimal("0.001"), "us": Decimal("0.000001"),
    "µs": Decimal("0.000001"), "ns": Decimal("0.000000001"), "m": Decimal(60), "min": Decimal(60),
    "h": Decimal(3600),
}


def _seconds_text(seconds: Decimal) -> str:
    text = format(seconds.quantize(Decimal("0.000000001")), "f").rstrip("0").rstrip(".")
    return (text or "0") + "s"


def duration_hint(value: object) -> str:
    """Hint for an invalid google.protobuf.Duration: the value in seconds if it can
    be guessed (``500ms`` -> ``0.5s``), and the accepted forms."""
    guess = None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+\.?\d*|\.\d+)\s*(s|sec|ms|us|µs|ns|m|min|h)?\s*", value, re.I)
        if m:
            try:
                seconds = Decimal(m.group(1)) * _UNITS[m.group(2).lower() if m.group(2) else None]
            except (InvalidOperation, KeyError):
                seconds = None
            if seconds is not None:
                guess = _seconds_text(seconds)
        elif value.strip().startswith("-"):
            return "durations must not be negative; " + _DURATION_FORMS
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        guess = _seconds_text(Decimal(repr(value)))
    if guess is not None and guess != value:
        return f'did you mean "{guess}"? ' + _DURATION_FORMS
    return _DURATION_FORMS


def enum_hint(value: object, names: Sequence[str]) -> str:
    """Hint for an unknown enum value: the closest name, and how enums are written."""
    match = None
    if isinstance(value, str):
        match = close_match(value.upper().replace("-", "_").replace(" ", "_"), names, cutoff=0.7)
    if match:
        return f"did you mean `{match}`?"
    return f"use one of {', '.join(names)} (in any case) or its number"


def dedupe(errors: List[Any]) -> List[Any]:
    """Errors without repeats of the same (path, message)."""
    seen = set()
    out = []
    for err in errors:
        key = (getattr(err, "path", ""), getattr(err, "message", str(err)))
        if key not in seen:
            seen.add(key)
            out.append(err)
    return out
