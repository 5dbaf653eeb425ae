"""The nesting guard: a document nested deeper than Envoy allows is refused
before anything walks it, so every later walk may recurse safely."""
import re
from typing import Optional, Tuple

import yaml

#: Envoy's limit (protobuf's JSON parser): a bootstrap nested deeper is rejected.
MAX_NESTING = 100

TOO_DEEP = f"exceeded maximum nesting depth ({MAX_NESTING} levels)"

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_too_deep(text: str) -> Optional[Tuple[int, int]]:
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


def yaml_too_deep(node: yaml.Node) -> Optional[yaml.Node]:
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
