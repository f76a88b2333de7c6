"""Typed, validated bridge settings: what the project file's ``events: - ros2: {...}`` and the
bridge's own config file say. Parsed once at the boundary; every bad value is a ConfigError that
names the field and says what to write instead.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal

from hybrid_knative.errors import ConfigError
from hybrid_knative.ros2.msgtypes import TypeRegistry, normalize_type, validate_topic

Encoding = Literal["auto", "json", "cdr"]
Reliability = Literal["reliable", "best_effort"]
Durability = Literal["volatile", "transient_local"]

DEFAULT_MAX_EVENT_BYTES = 256 * 1024  # larger messages go through the claim check
DEFAULT_JSON_MAX_BYTES = 16 * 1024  # "small" messages travel as JSON, larger ones as CDR
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_EXT_NAME = re.compile(r"^[a-z0-9]{1,20}$")


@dataclasses.dataclass(frozen=True)
class QosSpec:
    """ROS 2-style QoS for one topic. ``depth`` is the keep-last history on both DDS ends."""

    reliability: Reliability = "reliable"
    durability: Durability = "volatile"
    depth: int = 10


@dataclasses.dataclass(frozen=True)
class TopicSpec:
    """One ROS 2 topic bridged to events (and optionally its reply topic).

    ``rate`` caps events per second (messages in between are dropped, newest kept);
    ``decimate`` forwards every N-th message. ``ordered`` makes the bridge publish replies in
    sequence-number order. ``control_loop`` marks topics in a control loop (min-scale guidance).
    """

    topic: str
    type: str
    reply_to: str | None = None
    reply_type: str | None = None
    qos: QosSpec = QosSpec()
    rate: float | None = None
    decimate: int = 1
    encoding: Encoding = "auto"
    ordered: bool = False
    control_loop: bool = False

    @property
    def reply_msg_type(self) -> str:
        return self.reply_type or self.type


@dataclasses.dataclass(frozen=True)
class BridgeSpec:
    """Everything one bridge needs, in the cluster and when it runs."""

    topics: tuple[TopicSpec, ...]
    domain_id: int = 0
    interface: str | None = None  # network interface (or address) DDS uses; None = cyclonedds picks
    node: str | None = None  # kubernetes.io/hostname of the robot's node
    node_selector: tuple[tuple[str, str], ...] = ()
    image: str = ""
    broker: str = "default"
    port: int = 8080
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    json_max_bytes: int = DEFAULT_JSON_MAX_BYTES
    buffer_events: int = 1000
    buffer_bytes: int = 8 * 1024 * 1024
    blob_bytes: int = 64 * 1024 * 1024
    msg_definitions: tuple[tuple[str, str], ...] = ()  # (pkg/msg/Type, .msg text)

    def registry(self) -> TypeRegistry:
        return TypeRegistry(dict(self.msg_definitions))


def _expect(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any) -> Any:
    value = data.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "number"
        raise ConfigError(f"{where}.{key}: expected {name}, got {value!r}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}",
            resolution=f"allowed: {', '.join(sorted(allowed))}",
        )


def parse_qos(value: Any, where: str) -> QosSpec:
    """``reliable`` | ``best_effort`` | ``{reliability, durability, depth}``."""
    if value is None:
        return QosSpec()
    if isinstance(value, str):
        value = {"reliability": value}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected reliable, best_effort or a mapping")
    _check_keys(value, {"reliability", "durability", "depth", "history"}, where)
    rel = value.get("reliability", "reliable")
    if rel not in ("reliable", "best_effort"):
        raise ConfigError(f"{where}.reliability: {rel!r} is not reliable or best_effort")
    dur = value.get("durability", "volatile")
    if dur not in ("volatile", "transient_local"):
        raise ConfigError(f"{where}.durability: {dur!r} is not volatile or transient_local")
    if value.get("history", "keep_last") != "keep_last":
        raise ConfigError(f"{where}.history: only keep_last is supported (a bridge must not grow without bound)")
    depth = _expect(value, "depth", int, where, 10)
    if not 1 <= depth <= 10000:
        raise ConfigError(f"{where}.depth: must be 1..10000, got {depth}")
    return QosSpec(reliability=rel, durability=dur, depth=depth)


def parse_topic(data: Any, where: str = "ros2", registry: TypeRegistry | None = None) -> TopicSpec:
    """Parse one ``ros2: {topic, type, reply_to, reply_type, qos, rate, decimate, encoding, ordered,
    control_loop}`` mapping (the project file's event and the bridge config share it)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping with topic and type")
    _check_keys(data, {f.name for f in dataclasses.fields(TopicSpec)}, where)
    for key in ("topic", "type"):
        if key not in data:
            raise ConfigError(f"{where}: {key} is required", resolution="e.g. {topic: /camera/info, "
                              "type: std_msgs/msg/String}")
    try:
        topic = validate_topic(data["topic"])
        msg_type = normalize_type(str(data["type"]))
        reply_to = validate_topic(data["reply_to"]) if data.get("reply_to") is not None else None
        reply_type = normalize_type(str(data["reply_type"])) if data.get("reply_type") is not None else None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.brief}", resolution=exc.resolution) from None
    if reply_type and not reply_to:
        raise ConfigError(f"{where}: reply_type needs reply_to")
    if reply_to and reply_to == topic:
        raise ConfigError(f"{where}: reply_to must differ from topic (the bridge would hear its own replies)")
    rate = _expect(data, "rate", (int, float), where, None)
    if rate is not None and not 0 < rate <= 100000:
        raise ConfigError(f"{where}.rate: events per second must be > 0 and <= 100000, got {rate}")
    decimate = _expect(data, "decimate", int, where, 1)
    if decimate < 1:
        raise ConfigError(f"{where}.decimate: must be >= 1 (1 forwards every message)")
    encoding = data.get("encoding", "auto")
    if encoding not in ("auto", "json", "cdr"):
        raise ConfigError(f"{where}.encoding: {encoding!r} is not auto, json or cdr")
    spec = TopicSpec(
        topic=topic,
        type=msg_type,
        reply_to=reply_to,
        reply_type=reply_type,
        qos=parse_qos(data.get("qos"), f"{where}.qos"),
        rate=float(rate) if rate is not None else None,
        decimate=decimate,
        encoding=encoding,
        ordered=bool(_expect(data, "ordered", bool, where, False)),
        control_loop=bool(_expect(data, "control_loop", bool, where, False)),
    )
    if registry is not None:
        try:
            registry.check(spec.type)
            registry.check(spec.reply_msg_type)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc.brief}", resolution=exc.resolution) from None
    return spec


def parse_bridge(data: Any, where: str = "bridge") -> BridgeSpec:
    """The bridge config file (also what :func:`render_bridge` writes into the ConfigMap)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    allowed = {f.name for f in dataclasses.fields(BridgeSpec)} - {"msg_definitions", "node_selector"}
    _check_keys(data, allowed | {"msg", "node_selector"}, where)
    msg = data.get("msg") or {}
    if not isinstance(msg, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in msg.items()):
        raise ConfigError(f"{where}.msg: expected {{<pkg>/msg/<Type>: <.msg text>}}")
    try:
        defs = tuple(sorted((normalize_type(k), v) for k, v in msg.items()))
        registry = TypeRegistry(dict(defs))
    except ConfigError as exc:
        raise ConfigError(f"{where}.msg: {exc.brief}", resolution=exc.resolution) from None
    raw_topics = data.get("topics")
    if not isinstance(raw_topics, list) or not raw_topics:
        raise ConfigError(f"{where}.topics: at least one topic is required")
    topics = tuple(parse_topic(t, f"{where}.topics[{i}]", registry) for i, t in enumerate(raw_topics))
    seen: set[str] = set()
    for spec in topics:
        if spec.topic in seen:
            raise ConfigError(f"{where}: topic {spec.topic} is listed twice")
        seen.add(spec.topic)
    replies: dict[str, str] = {}
    for spec in topics:
        if spec.reply_to:
            if spec.reply_to in seen:
                raise ConfigError(f"{where}: {spec.reply_to} is both a bridged topic and a reply topic (a loop)")
            if replies.setdefault(spec.reply_to, spec.reply_msg_type) != spec.reply_msg_type:
                raise ConfigError(f"{where}: reply topic {spec.reply_to} is used with two message types")
    domain = _expect(data, "domain_id", int, where, 0)
    if not 0 <= domain <= 232:
        raise ConfigError(f"{where}.domain_id: ROS_DOMAIN_ID must be 0..232, got {domain}")
    node_selector = data.get("node_selector") or {}
    if not isinstance(node_selector, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in node_selector.items()
    ):
        raise ConfigError(f"{where}.node_selector: expected a mapping of label → value")
    node = _expect(data, "node", str, where, None)
    interface = _expect(data, "interface", str, where, None)
    if interface is not None and not re.fullmatch(r"[A-Za-z0-9_.:\-]{1,64}", interface):
        raise ConfigError(f"{where}.interface: {interface!r} is not an interface name or address")
    broker = _expect(data, "broker", str, where, "default")
    if not _DNS_LABEL.match(broker):
        raise ConfigError(f"{where}.broker: {broker!r} is not a Broker name")
    port = _expect(data, "port", int, where, 8080)
    if not 1024 <= port <= 65535:
        raise ConfigError(f"{where}.port: must be 1024..65535 (the bridge runs on the host network, unprivileged)")
    ints = {}
    for key, lo in (("max_event_bytes", 1024), ("json_max_bytes", 64), ("buffer_events", 1),
                    ("buffer_bytes", 1024), ("blob_bytes", 0)):
        default = getattr(BridgeSpec, key)
        value = _expect(data, key, int, where, default)
        if value < lo:
            raise ConfigError(f"{where}.{key}: must be >= {lo}, got {value}")
        ints[key] = value
    return BridgeSpec(
        topics=topics,
        domain_id=domain,
        interface=interface,
        node=node,
        node_selector=tuple(sorted(node_selector.items())),
        image=_expect(data, "image", str, where, ""),
        broker=broker,
        port=port,
        msg_definitions=defs,
        **ints,
    )


def bridge_to_config(spec: BridgeSpec) -> dict[str, Any]:
    """The inverse of :func:`parse_bridge` (what goes into the bridge's ConfigMap)."""

    def topic(t: TopicSpec) -> dict[str, Any]:
        out: dict[str, Any] = {"topic": t.topic, "type": t.type}
        if t.reply_to:
            out["reply_to"] = t.reply_to
        if t.reply_type:
            out["reply_type"] = t.reply_type
        out["qos"] = dataclasses.asdict(t.qos)
        if t.rate is not None:
            out["rate"] = t.rate
        out.update(decimate=t.decimate, encoding=t.encoding, ordered=t.ordered, control_loop=t.control_loop)
        return out

    data: dict[str, Any] = {
        "topics": [topic(t) for t in spec.topics],
        "domain_id": spec.domain_id,
        "broker": spec.broker,
        "port": spec.port,
        "max_event_bytes": spec.max_event_bytes,
        "json_max_bytes": spec.json_max_bytes,
        "buffer_events": spec.buffer_events,
        "buffer_bytes": spec.buffer_bytes,
        "blob_bytes": spec.blob_bytes,
    }
    if spec.interface:
        data["interface"] = spec.interface
    if spec.msg_definitions:
        data["msg"] = dict(spec.msg_definitions)
    return data


_TOPIC_PATTERN = r"^(/[A-Za-z][A-Za-z0-9_]*)+$"
_TYPE_PATTERN = r"^[a-z][a-z0-9_]*/(msg/)?[A-Z][A-Za-z0-9]*$"

# JSON Schema (draft 2020-12) of one ``ros2:`` mapping, for the project file's schema (editor help and
# early errors); parse_topic() stays the authority (it also checks names against the known types).
TOPIC_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["topic", "type"],
    "properties": {
        "topic": {"type": "string", "pattern": _TOPIC_PATTERN, "description": "ROS 2 topic, e.g. /camera/info"},
        "type": {"type": "string", "pattern": _TYPE_PATTERN, "description": "e.g. std_msgs/msg/String"},
        "reply_to": {"type": "string", "pattern": _TOPIC_PATTERN},
        "reply_type": {"type": "string", "pattern": _TYPE_PATTERN},
        "qos": {
            "oneOf": [
                {"enum": ["reliable", "best_effort"]},
                {"type": "object", "additionalProperties": False, "properties": {
                    "reliability": {"enum": ["reliable", "best_effort"]},
                    "durability": {"enum": ["volatile", "transient_local"]},
                    "history": {"const": "keep_last"},
                    "depth": {"type": "integer", "minimum": 1, "maximum": 10000},
                }},
            ],
        },
        "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 100000},
        "decimate": {"type": "integer", "minimum": 1},
        "encoding": {"enum": ["auto", "json", "cdr"]},
        "ordered": {"type": "boolean"},
        "control_loop": {"type": "boolean"},
    },
}


def extension_name_ok(name: str) -> bool:
    return bool(_EXT_NAME.match(name))
