"""ROS 2 message types without a ROS install: `.msg` definitions → cyclonedds IDL structs.

ROS 2 (rmw_cyclonedds) names the DDS type of ``pkg/msg/Type`` ``pkg::msg::dds_::Type_`` and
encodes it as plain XCDR1 (encapsulation ``00 01 00 00``). A definition is parsed once into
:class:`MsgDef` (fields, with arrays and bounds), then turned into a cyclonedds ``IdlStruct``
created at run time, so users can bring their own ``.msg`` files.

Values cross HTTP as JSON (:meth:`TypeRegistry.to_jsonable` / :meth:`TypeRegistry.from_jsonable`,
strictly checked: unknown or missing fields, out-of-range integers and too-long arrays are clear
errors, never a DDS assertion) or as the CDR bytes themselves (:meth:`TypeRegistry.encode` /
:meth:`TypeRegistry.decode`).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import math
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from hybrid_knative.errors import ConfigError, HybridError

# ROS 2 primitive → (cyclonedds annotation, python kind, integer range)
_INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 2**8 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "byte": (0, 255),
    "char": (0, 255),
}
PRIMITIVES = frozenset({"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
                        "uint32", "int64", "uint64", "string"})


@functools.cache
def _cdds() -> tuple[Any, dict[str, Any]]:
    """cyclonedds' IDL module and the primitive annotations, imported only when a type is built
    (rendering objects or parsing settings does not need cyclonedds)."""
    try:
        import cyclonedds.idl as idl
        import cyclonedds.idl.types as t
    except ImportError:
        raise HybridError("the ROS 2 bridge needs the Python package cyclonedds",
                          resolution="pip install 'hybrid-knative[ros2]' (the bridge image ships it)") from None
    prims: dict[str, Any] = {"bool": bool, "byte": t.uint8, "char": t.uint8, "float32": t.float32,
                             "float64": t.float64, "int8": t.int8, "uint8": t.uint8, "int16": t.int16,
                             "uint16": t.uint16, "int32": t.int32, "uint32": t.uint32, "int64": t.int64,
                             "uint64": t.uint64, "string": str,
                             # cyclonedds' generics are runtime-indexable but not typed as such
                             "sequence": t.sequence, "array": t.array, "bounded_str": t.bounded_str}
    return idl, prims


_BINARY = frozenset({"uint8", "byte", "char"})
_FLOAT32_MAX = 3.4028234663852886e38

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_PKG_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TYPE_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_FULL_RE = re.compile(r"^([a-z][a-z0-9_]*)/(?:msg/)?([A-Z][A-Za-z0-9]*)$")
_FIELD_TYPE_RE = re.compile(
    r"^(?P<base>[A-Za-z][A-Za-z0-9_/]*?)(?:<=(?P<strbound>\d+))?(?:\[(?P<arr>(?:<=)?\d*)\])?$"
)
_EMPTY_MEMBER = "structure_needs_at_least_one_member"


class MessageError(ValueError):
    """A value does not fit its ROS 2 message type (bad JSON body, bad CDR bytes)."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a message: ``base`` is a primitive or ``pkg/msg/Type``."""

    name: str
    base: str
    array: str = ""  # "" scalar, "seq" unbounded, "bseq" bounded sequence, "fixed" array
    size: int = 0  # bound or fixed length
    string_bound: int = 0
    default: str = ""  # the .msg default value text (scalars only)

    @property
    def is_primitive(self) -> bool:
        return self.base in PRIMITIVES


@dataclasses.dataclass(frozen=True)
class MsgDef:
    package: str
    name: str
    fields: tuple[Field, ...]

    @property
    def full_name(self) -> str:
        return f"{self.package}/msg/{self.name}"

    @property
    def dds_name(self) -> str:
        return dds_type_name(self.full_name)


def normalize_type(name: str) -> str:
    """``std_msgs/String`` or ``std_msgs/msg/String`` → ``std_msgs/msg/String`` (or ConfigError)."""
    match = _FULL_RE.match(name.strip())
    if not match:
        raise ConfigError(
            f"not a ROS 2 message type name: {name!r}",
            resolution="write it as <package>/msg/<Type>, e.g. std_msgs/msg/String",
        )
    return f"{match.group(1)}/msg/{match.group(2)}"


def dds_type_name(full_name: str) -> str:
    """``std_msgs/msg/String`` → ``std_msgs::msg::dds_::String_`` (rmw_cyclonedds' naming)."""
    pkg, _, name = normalize_type(full_name).split("/")
    return f"{pkg}::msg::dds_::{name}_"


def event_type(full_name: str) -> str:
    """``std_msgs/msg/String`` → CloudEvent type ``org.ros2.std_msgs.msg.String``."""
    return "org.ros2." + normalize_type(full_name).replace("/", ".")


def dds_topic_name(topic: str) -> str:
    """ROS 2 topic ``/camera/info`` → DDS topic ``rt/camera/info``."""
    return "rt" + validate_topic(topic)


_TOPIC_RE = re.compile(r"^(/[A-Za-z][A-Za-z0-9_]*)+$")


def validate_topic(topic: str) -> str:
    if not isinstance(topic, str) or not _TOPIC_RE.match(topic) or "__" in topic:
        raise ConfigError(
            f"not a fully qualified ROS 2 topic name: {topic!r}",
            resolution="use /name or /namespace/name (letters, digits, single underscores; starts with /)",
        )
    return topic


def parse_msg(full_name: str, text: str) -> MsgDef:
    """Parse a ROS 2 ``.msg`` definition. Constants are skipped; defaults are accepted and ignored."""
    pkg, _, name = normalize_type(full_name).split("/")
    fields: list[Field] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        where = f"{full_name} line {lineno}: {raw.strip()!r}"
        if len(parts) != 2:
            raise ConfigError(f"cannot parse {where}", resolution="a field line is '<type> <name> [default]'")
        ftype, rest = parts
        if "=" in rest and rest.split("=", 1)[0].strip().isupper():
            continue  # constant: TYPE NAME=value
        fname = rest.split(None, 1)[0]
        if not _NAME_RE.match(fname) or "__" in fname or fname.endswith("_"):
            raise ConfigError(f"bad field name in {where}", resolution="field names are lower_snake_case")
        if fname in seen:
            raise ConfigError(f"duplicate field {fname!r} in {where}")
        seen.add(fname)
        field = _parse_field_type(ftype, fname, pkg, where)
        default = rest.split(None, 1)[1].strip() if len(rest.split(None, 1)) == 2 else ""
        fields.append(dataclasses.replace(field, default=default))
    if not fields:
        fields.append(Field(name=_EMPTY_MEMBER, base="uint8"))
    return MsgDef(package=pkg, name=name, fields=tuple(fields))


def _parse_field_type(ftype: str, fname: str, pkg: str, where: str) -> Field:
    match = _FIELD_TYPE_RE.match(ftype)
    if not match:
        raise ConfigError(f"bad field type in {where}")
    base, strbound, arr = match.group("base"), match.group("strbound"), match.group("arr")
    if base == "wstring":
        raise ConfigError(f"wstring is not supported ({where})", resolution="use string (UTF-8)")
    if strbound is not None and base != "string":
        raise ConfigError(f"only strings take a <= bound ({where})")
    if base not in PRIMITIVES:
        if base == "Header":
            base = "std_msgs/msg/Header"
        elif "/" not in base:
            if not _TYPE_RE.match(base):
                raise ConfigError(f"unknown field type {base!r} in {where}")
            base = f"{pkg}/msg/{base}"
        else:
            base = normalize_type(base)
    array, size = "", 0
    if arr is not None:
        if arr == "":
            array = "seq"
        elif arr.startswith("<="):
            array, size = "bseq", int(arr[2:])
        else:
            array, size = "fixed", int(arr)
        if array != "seq" and size <= 0:
            raise ConfigError(f"array bound must be positive ({where})")
    return Field(name=fname, base=base, array=array, size=size, string_bound=int(strbound or 0))


# --- built-in definitions (ROS 2 Humble/Jazzy; field order matters for CDR) -------------------

BUILTIN_MSGS: dict[str, str] = {
    "builtin_interfaces/msg/Time": "int32 sec\nuint32 nanosec\n",
    "builtin_interfaces/msg/Duration": "int32 sec\nuint32 nanosec\n",
    "std_msgs/msg/Header": "builtin_interfaces/Time stamp\nstring frame_id\n",
    "std_msgs/msg/String": "string data\n",
    "std_msgs/msg/Bool": "bool data\n",
    "std_msgs/msg/Empty": "",
    **{f"std_msgs/msg/{type_name}": f"{prim} data\n" for type_name, prim in (
        ("Int8", "int8"), ("Int16", "int16"), ("Int32", "int32"), ("Int64", "int64"),
        ("UInt8", "uint8"), ("UInt16", "uint16"), ("UInt32", "uint32"), ("UInt64", "uint64"),
        ("Float32", "float32"), ("Float64", "float64"))},
    "geometry_msgs/msg/Vector3": "float64 x\nfloat64 y\nfloat64 z\n",
    "geometry_msgs/msg/Point": "float64 x\nfloat64 y\nfloat64 z\n",
    "geometry_msgs/msg/Quaternion": "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1\n",
    "geometry_msgs/msg/Pose": "Point position\nQuaternion orientation\n",
    "geometry_msgs/msg/Twist": "Vector3 linear\nVector3 angular\n",
    "sensor_msgs/msg/Imu": (
        "std_msgs/Header header\n"
        "geometry_msgs/Quaternion orientation\nfloat64[9] orientation_covariance\n"
        "geometry_msgs/Vector3 angular_velocity\nfloat64[9] angular_velocity_covariance\n"
        "geometry_msgs/Vector3 linear_acceleration\nfloat64[9] linear_acceleration_covariance\n"
    ),
    "sensor_msgs/msg/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data\n",
}


class TypeRegistry:
    """Known message definitions and their (lazily built, cached) cyclonedds structs."""

    def __init__(self, extra: Mapping[str, str] | None = None) -> None:
        self._defs: dict[str, MsgDef] = {}
        self._structs: dict[str, type[Any]] = {}
        self._lock = threading.Lock()
        for name, text in BUILTIN_MSGS.items():
            self.add(name, text)
        for name, text in (extra or {}).items():
            self.add(name, text)

    def add(self, full_name: str, text: str) -> MsgDef:
        msg = parse_msg(full_name, text)
        self._defs[msg.full_name] = msg
        return msg

    def names(self) -> list[str]:
        return sorted(self._defs)

    def definition(self, full_name: str) -> MsgDef:
        name = normalize_type(full_name)
        if name not in self._defs:
            raise ConfigError(
                f"unknown ROS 2 message type {name}",
                resolution="use a built-in type (hybrid-knative ros2 types) or give its .msg definition "
                "(msg: {<pkg>/msg/<Type>: <definition text>} in the bridge spec)",
            )
        return self._defs[name]

    def check(self, full_name: str) -> None:
        """Resolve a type and all nested types now (ConfigError naming what is missing or recursive).
        Needs no cyclonedds: rendering a bridge's objects calls this."""
        self._resolve(normalize_type(full_name), ())

    def _resolve(self, name: str, stack: tuple[str, ...]) -> None:
        if name in stack:
            raise ConfigError(f"recursive message definition: {' → '.join((*stack, name))}")
        for f in self.definition(name).fields:
            if not f.is_primitive:
                self._resolve(f.base, (*stack, name))

    def struct(self, full_name: str) -> type[Any]:
        self.check(full_name)
        with self._lock:
            return self._struct(normalize_type(full_name), ())

    def _struct(self, name: str, stack: tuple[str, ...]) -> type[Any]:
        if name in self._structs:
            return self._structs[name]
        if name in stack:
            raise ConfigError(f"recursive message definition: {' → '.join((*stack, name))}")
        msg = self.definition(name)
        idl, prims = _cdds()
        members: dict[str, Any] = {}
        for f in msg.fields:
            if f.is_primitive:
                bounded = f.base == "string" and f.string_bound
                base: Any = prims["bounded_str"][f.string_bound] if bounded else prims[f.base]
            else:
                base = self._struct(f.base, (*stack, name))
            if f.array == "seq":
                base = prims["sequence"][base]
            elif f.array == "bseq":
                base = prims["sequence"][base, f.size]
            elif f.array == "fixed":
                base = prims["array"][base, f.size]
            members[f.name] = base
        cls: type[Any] = idl.make_idl_struct(msg.name + "_", msg.dds_name, members)
        self._structs[name] = cls
        return cls

    def has_binary(self, full_name: str) -> bool:
        """True when the type carries a byte sequence (images, point clouds): sent as application/cdr."""
        return any(self._binary(normalize_type(full_name), ()))

    def _binary(self, name: str, stack: tuple[str, ...]) -> Iterable[bool]:
        for f in self.definition(name).fields:
            if f.is_primitive:
                yield f.base in _BINARY and f.array in ("seq", "bseq")
            elif f.base not in stack:
                yield from self._binary(f.base, (*stack, name))

    # -- CDR -------------------------------------------------------------------------------------

    def encode(self, value: Any) -> bytes:
        return bytes(value.serialize())

    def decode(self, full_name: str, data: bytes) -> Any:
        cls = self.struct(full_name)
        if len(data) < 4 or data[0] != 0 or data[1] not in (0, 1) or data[2:4] not in (b"\x00\x00",):
            raise MessageError("not XCDR1 data (expected a 00 00|01 00 00 encapsulation header)")
        try:
            return cls.deserialize(bytes(data))
        except Exception as exc:  # cyclonedds raises bare struct/IndexError/assertion errors
            raise MessageError(f"CDR data does not decode as {normalize_type(full_name)}: {exc!r}") from None

    # -- JSON --------------------------------------------------------------------------------------

    def to_jsonable(self, full_name: str, value: Any) -> dict[str, Any]:
        return self._to_json(self.definition(full_name), value)

    def _to_json(self, msg: MsgDef, value: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in msg.fields:
            v = getattr(value, f.name)
            if f.is_primitive:
                if f.base in _BINARY and f.array:
                    out[f.name] = base64.b64encode(bytes(v)).decode("ascii")
                elif f.array:
                    out[f.name] = [_json_scalar(x) for x in v]
                else:
                    out[f.name] = _json_scalar(v)
            else:
                sub = self.definition(f.base)
                out[f.name] = [self._to_json(sub, x) for x in v] if f.array else self._to_json(sub, v)
        return out

    def from_jsonable(self, full_name: str, data: Any) -> Any:
        name = normalize_type(full_name)
        self.struct(name)
        return self._from_json(name, data, "$")

    def _from_json(self, name: str, data: Any, path: str) -> Any:
        msg = self.definition(name)
        if not isinstance(data, dict):
            raise MessageError(f"{path}: expected an object for {name}, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in msg.fields})
        if unknown:
            raise MessageError(f"{path}: unknown field(s) {', '.join(unknown)} for {name}")
        kwargs: dict[str, Any] = {}
        for f in msg.fields:
            here = f"{path}.{f.name}"
            if f.name not in data:
                kwargs[f.name] = self._default(f)
                continue
            kwargs[f.name] = self._field_from_json(f, data[f.name], here)
        return self._structs[name](**kwargs)

    def _field_from_json(self, f: Field, v: Any, path: str) -> Any:
        if f.array:
            if f.base in _BINARY and isinstance(v, str):
                try:
                    items: list[Any] = list(base64.b64decode(v, validate=True))
                except ValueError:
                    raise MessageError(f"{path}: not valid base64") from None
            elif isinstance(v, list):
                items = v
            else:
                raise MessageError(f"{path}: expected a list")
            if f.array == "fixed" and len(items) != f.size:
                raise MessageError(f"{path}: expected exactly {f.size} items, got {len(items)}")
            if f.array == "bseq" and len(items) > f.size:
                raise MessageError(f"{path}: at most {f.size} items allowed, got {len(items)}")
            conv = [self._scalar_from_json(f, x, f"{path}[{i}]") for i, x in enumerate(items)]
            if f.base in _BINARY and f.array != "fixed":
                return bytes(conv)
            return conv
        return self._scalar_from_json(f, v, path)

    def _scalar_from_json(self, f: Field, v: Any, path: str) -> Any:
        if not f.is_primitive:
            return self._from_json(f.base, v, path)
        if f.base == "bool":
            if not isinstance(v, bool):
                raise MessageError(f"{path}: expected true/false")
            return v
        if f.base == "string":
            if not isinstance(v, str):
                raise MessageError(f"{path}: expected a string")
            if f.string_bound and len(v.encode("utf-8")) > f.string_bound:
                raise MessageError(f"{path}: longer than {f.string_bound} bytes")
            if "\x00" in v:
                raise MessageError(f"{path}: strings cannot contain NUL")
            return v
        if f.base in ("float32", "float64"):
            if isinstance(v, str) and v in ("nan", "inf", "-inf"):
                return float(v)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise MessageError(f"{path}: expected a number")
            if f.base == "float32" and math.isfinite(v) and abs(v) > _FLOAT32_MAX:
                raise MessageError(f"{path}: out of float32 range")
            return float(v)
        lo, hi = _INT_RANGES[f.base]
        if isinstance(v, bool) or not isinstance(v, int):
            raise MessageError(f"{path}: expected an integer")
        if not lo <= v <= hi:
            raise MessageError(f"{path}: {v} is out of range for {f.base} [{lo}, {hi}]")
        return v

    def _default(self, f: Field) -> Any:
        if f.array == "fixed":
            return [self._scalar_default(f) for _ in range(f.size)]
        if f.array:
            return b"" if f.base in _BINARY else []
        return self._scalar_default(f)

    def _scalar_default(self, f: Field) -> Any:
        if not f.is_primitive:
            return self._from_json(f.base, {}, "$")
        if f.default and not f.array:
            try:
                return self._scalar_from_json(f, _parse_default(f, f.default), "$default")
            except (MessageError, ValueError):
                pass  # a default we cannot read: the type's zero value, as for fields without one
        if f.base == "bool":
            return False
        if f.base == "string":
            return ""
        if f.base in ("float32", "float64"):
            return 0.0
        return 0


def _parse_default(f: Field, text: str) -> Any:
    if f.base == "bool":
        return text.lower() in ("true", "1")
    if f.base == "string":
        return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text
    if f.base in ("float32", "float64"):
        return float(text)
    return int(text, 0)


def _json_scalar(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf; documented: such floats travel as strings
    return v
