"""REP-2011 type hashes (``RIHS01_<sha256 hex>``), as ROS 2 Iron and later advertise them.

Iron+ (rmw_cyclonedds, through rmw_dds_common) puts ``typehash=RIHS01_<64 hex>;`` into the USER_DATA QoS of
every reader and writer; Humble puts nothing there and ignores it. The hash is the SHA-256 of a JSON text of
the type's description — the type, then every type it refers to (directly or not) sorted by name — in which
each field is its name and its type: a FieldType id (the primitive, plus 48 for a fixed array, 96 for a
bounded sequence, 144 for an unbounded one), the array capacity, the string bound and the nested type's
name. Default values, constants and comments are not part of it. The text is what Python's ``json.dumps``
writes with ``", "`` and ``": "`` separators, keys in the order below.

Checked against an independent implementation (PyPI ``rosbags``' ``hash_rihs01``) in tests/ros2.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hybrid_knative.ros2.msgtypes import Field, TypeRegistry, normalize_type

# type_description_interfaces/msg/FieldType: the ids of the primitives a .msg can name. A .msg `char` is an IDL
# uint8 and a .msg `byte` an IDL octet (rosidl's mapping), so they hash as UINT8 and BYTE.
_NESTED = 1
_BOUNDED_STRING = 21
_PRIMITIVE_IDS = {
    "int8": 2, "uint8": 3, "char": 3, "int16": 4, "uint16": 5, "int32": 6, "uint32": 7, "int64": 8, "uint64": 9,
    "float32": 10, "float64": 11, "bool": 15, "byte": 16, "string": 17,
}
_ARRAY_OFFSET = {"": 0, "fixed": 48, "bseq": 96, "seq": 144}
PREFIX = "RIHS01_"


def _field_type(f: Field) -> dict[str, Any]:
    if f.is_primitive:
        type_id = _BOUNDED_STRING if f.base == "string" and f.string_bound else _PRIMITIVE_IDS[f.base]
        nested = ""
    else:
        type_id, nested = _NESTED, f.base
    return {"type_id": type_id + _ARRAY_OFFSET[f.array],
            "capacity": f.size if f.array in ("fixed", "bseq") else 0,
            "string_capacity": f.string_bound,
            "nested_type_name": nested}


def _individual(registry: TypeRegistry, name: str) -> dict[str, Any]:
    msg = registry.definition(name)
    return {"type_name": msg.full_name, "fields": [{"name": f.name, "type": _field_type(f)} for f in msg.fields]}


def type_description(registry: TypeRegistry, full_name: str) -> dict[str, Any]:
    """The hashed form of ``full_name``'s description (ConfigError for unknown or recursive types)."""
    name = normalize_type(full_name)
    registry.check(name)
    seen: set[str] = set()
    todo = [f.base for f in registry.definition(name).fields if not f.is_primitive]
    while todo:
        nested = todo.pop()
        if nested not in seen:
            seen.add(nested)
            todo += [f.base for f in registry.definition(nested).fields if not f.is_primitive]
    return {"type_description": _individual(registry, name),
            "referenced_type_descriptions": [_individual(registry, n) for n in sorted(seen)]}


def rihs01(registry: TypeRegistry, full_name: str) -> str:
    """``RIHS01_<64 hex>`` of a message type (built-in or given as a .msg definition)."""
    text = json.dumps(type_description(registry, full_name), ensure_ascii=True, allow_nan=False,
                      separators=(", ", ": "))
    return PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()


def user_data(registry: TypeRegistry, full_name: str) -> bytes:
    """The USER_DATA QoS value rmw_cyclonedds (Iron+) gives a topic's readers and writers."""
    return f"typehash={rihs01(registry, full_name)};".encode("ascii")


def parse_user_data(data: bytes) -> str | None:
    """The ``typehash`` of a USER_DATA value (``key=value;`` pairs, as rmw_dds_common reads it), or None."""
    for pair in data.decode("utf-8", errors="replace").split(";"):
        key, sep, value = pair.partition("=")
        if sep and key == "typehash":
            return value
    return None
