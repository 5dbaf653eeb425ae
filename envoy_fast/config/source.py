"""Reading the configuration texts (``-c`` file, ``--config-yaml``) into
documents, keeping their YAML node trees to place errors at their lines."""
import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import yaml

from . import _diagnostics as diag
from . import nesting
from .errors import ConfigError

_YAML_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_BOOL_TAG = "tag:yaml.org,2002:bool"


class _YamlLoader(_YAML_BASE):   # type: ignore[misc, valid-type]
    """YAML 1.1's safe loader as Envoy's YAML-to-JSON conversion reads a
    config: no timestamp type (an unquoted `2026-01-01` in a json_format
    stays that text); `y`/`n` are booleans besides yes/no/true/false/on/off,
    as yaml-cpp has them (so `value: y` is refused where a string is due, as
    Envoy refuses it); and a mapping key keeps its text (a json_format key
    `on` or `y` names a field, as in Envoy)."""

    bool_values = dict(_YAML_BASE.bool_values, y=True, n=False)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _BOOL_TAG:
                    key_node.tag = "tag:yaml.org,2002:str"
        return super().construct_mapping(node, deep=deep)


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _YAML_BASE.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
_YAML_LOADER = _YamlLoader

#: Appended to the messages of errors in the --config-yaml document.
OVERLAY_NOTE = " (in --config-yaml)"


class Sources:
    """The input texts, read once, and where an error's path is in them."""

    def __init__(self, config_path: Optional[str], config_yaml: Optional[str]) -> None:
        self.config_path = config_path
        self.config_yaml = config_yaml
        self.file_text: Optional[str] = None
        # YAML node trees, kept from parsing (None: compose the text if needed).
        self.file_node: Optional[yaml.Node] = None
        self.overlay_node: Optional[yaml.Node] = None

    def file_document(self) -> Dict[str, Any]:
        """The parsed ``-c`` file; raises ConfigError."""
        assert self.config_path is not None
        self.file_text, doc, self.file_node = read_file(self.config_path)
        return doc

    def overlay_document(self) -> Dict[str, Any]:
        """The parsed ``--config-yaml`` text; raises ConfigError."""
        assert self.config_yaml is not None
        doc, self.overlay_node = parse_text(self.config_yaml, "--config-yaml", as_json=False, source=diag.CONFIG_YAML)
        return doc

    def documents(self, errors: Optional[List[ConfigError]] = None) -> List[Tuple[Dict[str, Any], str, str]]:
        """``(document, note, source)`` of each text given, the file's first.

        A text that cannot be read raises its ConfigError, or, given
        ``errors``, has it appended there and is left out.
        """
        docs = []
        for present, read, note, source in (
            (self.config_path is not None, self.file_document, "", diag.FILE),
            (self.config_yaml is not None, self.overlay_document, OVERLAY_NOTE, diag.CONFIG_YAML),
        ):
            if present:
                try:
                    docs.append((read(), note, source))
                except ConfigError as err:
                    if errors is None:
                        raise
                    errors.append(err)
        return docs

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


def read_file(config_path: str) -> Tuple[str, Dict[str, Any], Optional[yaml.Node]]:
    """(text, document, YAML node tree or None) of a YAML or JSON config file."""
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
    return (text,) + parse_text(text, f"config file '{path}'", as_json=ext == ".json", source=diag.FILE)


def parse_text(text: str, what: str, as_json: bool, source: str) -> Tuple[Dict[str, Any], Optional[yaml.Node]]:
    """The document, and its YAML node tree (None for JSON) for error lines."""
    node = None
    try:
        if as_json:
            where = nesting.json_too_deep(text)
            if where is not None:
                raise ConfigError(f"{what}: invalid JSON at line {where[0]}, column {where[1]}: {nesting.TOO_DEEP}",
                                  line=where[0], column=where[1], source=source)
            doc = json.loads(text) if text.strip() else None
        else:
            # yaml.load, keeping the node tree it is built from.
            loader = _YAML_LOADER(text)
            try:
                node = loader.get_single_node()
                deep = nesting.yaml_too_deep(node) if node is not None else None
                if deep is not None:
                    line, column = deep.start_mark.line + 1, deep.start_mark.column + 1
                    raise ConfigError(f"{what}: invalid YAML at line {line}, column {column}: {nesting.TOO_DEEP}",
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
        raise ConfigError(f"{what}: the bootstrap must be a mapping, got {diag.kind(doc)}")
    return doc, node
