"""The independent reference: ROS 2 CDR bytes from the PyPI package `rosbags` (its own serializer and
its own copy of the ROS 2 message definitions), for values given as the bridge's JSON."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.msg import get_types_from_msg

_NP = {"bool": np.bool_, "byte": np.uint8, "char": np.uint8, "float32": np.float32, "float64": np.float64,
       "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
       "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64}


def typestore(extra: dict[str, str] | None = None) -> Any:
    store = get_typestore(Stores.ROS2_HUMBLE)
    for name, text in (extra or {}).items():
        store.register(get_types_from_msg(text, name))
    return store


def _node(store: Any, node: tuple[Any, Any], value: Any) -> Any:
    kind, detail = node
    kind = int(kind)
    if kind == 1:  # BASE
        return value
    if kind == 2:  # NAME
        return build(store, detail, value)
    inner, _size = detail
    if int(inner[0]) == 1 and inner[1][0] != "string":
        prim = inner[1][0]
        if prim in ("uint8", "byte", "char") and isinstance(value, str):
            return np.frombuffer(base64.b64decode(value), dtype=np.uint8)
        return np.array(value, dtype=_NP[prim])
    return [_node(store, inner, v) for v in value]


def build(store: Any, typename: str, value: dict[str, Any]) -> Any:
    _, fields = store.fielddefs[typename]
    kwargs = {name: _node(store, node, value[name]) for name, node in fields}
    return store.types[typename](**kwargs)


def cdr(store: Any, typename: str, value: dict[str, Any]) -> bytes:
    return bytes(store.serialize_cdr(build(store, typename, value), typename))
