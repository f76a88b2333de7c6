"""Pure parts of the bridge, each against an independent implementation where one exists:
CDR vs `rosbags`, CloudEvents vs the `cloudevents` SDK."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cloudevents.conversion import to_binary as sdk_to_binary
from cloudevents.conversion import to_structured as sdk_to_structured
from cloudevents.http import CloudEvent as SdkEvent
from cloudevents.http import from_http as sdk_from_http
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_knative.errors import ConfigError
from hybrid_knative.ros2.bridge import BlobStore, OutBuffer, Outgoing, Reorderer, cyclonedds_uri
from hybrid_knative.ros2.cloudevent import EventError, from_http, to_binary
from hybrid_knative.ros2.health import bridge_urls, parse_metrics
from hybrid_knative.ros2.msgtypes import (
    BUILTIN_MSGS,
    MessageError,
    TypeRegistry,
    dds_topic_name,
    dds_type_name,
    event_type,
    parse_msg,
)
from tests.ros2 import rosref

REG = TypeRegistry()
STORE = rosref.typestore()


def test_names_follow_ros2_conventions() -> None:
    assert dds_type_name("std_msgs/msg/String") == "std_msgs::msg::dds_::String_"
    assert dds_type_name("geometry_msgs/Twist") == "geometry_msgs::msg::dds_::Twist_"
    assert dds_topic_name("/camera/info") == "rt/camera/info"
    assert event_type("sensor_msgs/msg/Imu") == "org.ros2.sensor_msgs.msg.Imu"
    assert REG.struct("std_msgs/msg/Header").__idl_typename__ == "std_msgs::msg::dds_::Header_"  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(BUILTIN_MSGS))
def test_builtin_definitions_match_rosbags(name: str) -> None:
    """Same fields in the same order as rosbags' own ROS 2 Humble definitions; same CDR bytes."""
    mine = [f.name for f in REG.definition(name).fields]
    theirs = [f[0] for f in STORE.fielddefs[name][1]]
    assert mine == theirs
    value = REG.to_jsonable(name, REG.from_jsonable(name, {}))
    assert REG.encode(REG.from_jsonable(name, value)) == rosref.cdr(STORE, name, value)


_IMU = st.fixed_dictionaries({
    "header": st.fixed_dictionaries({
        "stamp": st.fixed_dictionaries({"sec": st.integers(-(2**31), 2**31 - 1), "nanosec": st.integers(0, 2**32 - 1)}),
        "frame_id": st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20),
    }),
    "orientation_covariance": st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=9, max_size=9),
    "linear_acceleration": st.fixed_dictionaries({k: st.floats(allow_nan=False, allow_infinity=False)
                                                  for k in ("x", "y", "z")}),
})


@settings(max_examples=30, deadline=None, database=None)
@given(_IMU)
def test_imu_bytes_equal_rosbags(value: dict[str, Any]) -> None:
    full = REG.to_jsonable("sensor_msgs/msg/Imu", REG.from_jsonable("sensor_msgs/msg/Imu", value))
    msg = REG.from_jsonable("sensor_msgs/msg/Imu", full)
    data = REG.encode(msg)
    assert data == rosref.cdr(STORE, "sensor_msgs/msg/Imu", full)
    assert REG.to_jsonable("sensor_msgs/msg/Imu", REG.decode("sensor_msgs/msg/Imu", data)) == full


@settings(max_examples=20, deadline=None, database=None)
@given(st.binary(max_size=300), st.text(max_size=10).filter(lambda s: "\x00" not in s))
def test_compressed_image_bytes_equal_rosbags(data: bytes, fmt: str) -> None:
    value = REG.to_jsonable("sensor_msgs/msg/CompressedImage", REG.from_jsonable(
        "sensor_msgs/msg/CompressedImage", {"format": fmt, "data": base64.b64encode(data).decode()}))
    assert REG.encode(REG.from_jsonable("sensor_msgs/msg/CompressedImage", value)) == rosref.cdr(
        STORE, "sensor_msgs/msg/CompressedImage", value)


USER_MSGS = {
    "vision_msgs/msg/Box": "# a detection box\nfloat32 x\nfloat32 y\nuint16 w 10\nuint16 h\nint32 LIMIT=5\n",
    "vision_msgs/msg/Detection": (
        "std_msgs/Header header\nstring<=16 label\nfloat64 score\nBox[] boxes\nBox[2] corners\n"
        "int8[<=4] flags\nbool seen true\nuint8[] mask\nstring[] tags\n"
    ),
}


def test_user_msg_definitions_encode_like_rosbags() -> None:
    reg = TypeRegistry(USER_MSGS)
    store = rosref.typestore(USER_MSGS)
    value = {"header": {"stamp": {"sec": 1, "nanosec": 2}, "frame_id": "cam"}, "label": "cup", "score": 0.5,
             "boxes": [{"x": 1.5, "y": 2.5, "h": 3}], "flags": [-1, 2], "mask": base64.b64encode(b"\x01\x02").decode(),
             "tags": ["a", "bc"]}
    full = reg.to_jsonable("vision_msgs/msg/Detection", reg.from_jsonable("vision_msgs/msg/Detection", value))
    assert full["seen"] is True and full["boxes"][0]["w"] == 10 and len(full["corners"]) == 2  # .msg defaults
    assert reg.encode(reg.from_jsonable("vision_msgs/msg/Detection", full)) == rosref.cdr(
        store, "vision_msgs/msg/Detection", full)
    assert reg.has_binary("vision_msgs/msg/Detection") and not reg.has_binary("vision_msgs/msg/Box")


@pytest.mark.parametrize(("value", "message"), [
    ({"label": "x" * 17}, "longer than 16"),
    ({"flags": [1, 2, 3, 4, 5]}, "at most 4"),
    ({"corners": [{}]}, "exactly 2"),
    ({"flags": [200]}, "out of range for int8"),
    ({"score": "high"}, "expected a number"),
    ({"seen": 1}, "expected true/false"),
    ({"mask": "%%%"}, "not valid base64"),
    ({"boxes": [{"z": 1}]}, r"\$.boxes\[0\]: unknown field"),
    ([], "expected an object"),
])
def test_json_values_are_checked(value: Any, message: str) -> None:
    reg = TypeRegistry(USER_MSGS)
    with pytest.raises(MessageError, match=message):
        reg.from_jsonable("vision_msgs/msg/Detection", value)


@pytest.mark.parametrize(("text", "message"), [
    ("int32[ x\n", "bad field type"),
    ("wstring w\n", "wstring is not supported"),
    ("int32 Bad\n", "bad field name"),
    ("int32 a\nint32 a\n", "duplicate field"),
    ("float32<=3 a\n", "only strings take"),
    ("int32[0] a\n", "must be positive"),
])
def test_bad_msg_definitions(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_msg("p/msg/T", text)


def test_recursive_and_missing_types() -> None:
    with pytest.raises(ConfigError, match="recursive"):
        TypeRegistry({"p/msg/A": "B b\n", "p/msg/B": "A a\n"}).check("p/msg/A")
    with pytest.raises(ConfigError, match="unknown ROS 2 message type p/msg/C"):
        TypeRegistry({"p/msg/A": "C c\n"}).check("p/msg/A")


def test_bad_cdr_is_a_message_error() -> None:
    for data in (b"", b"\x00\x01\x00\x00", b"\x00\x01\x00\x00\xff\xff\xff\x7f", b"\x12\x34\x00\x00abcd"):
        with pytest.raises(MessageError):
            REG.decode("std_msgs/msg/String", data)


# --- CloudEvents, against the SDK ---------------------------------------------------------------


def test_our_binary_events_parse_with_the_sdk() -> None:
    attrs = {"id": "1", "source": "ros2://0/camera/info", "type": "org.ros2.std_msgs.msg.String",
             "datacontenttype": "application/cdr", "sequence": "7", "ros2replyto": "/detections"}
    headers = to_binary(attrs, b"\x00\x01\x00\x00")
    event = sdk_from_http(headers, b"\x00\x01\x00\x00", data_unmarshaller=lambda d: d)
    assert event["ros2replyto"] == "/detections" and event["sequence"] == "7"
    assert event["datacontenttype"] == "application/cdr" and event.data == b"\x00\x01\x00\x00"


def test_header_values_are_percent_encoded() -> None:
    """HTTP binding 3.1.3.2 (the Python SDK 1.x does not decode these; Knative's Go SDK does)."""
    headers = to_binary({"id": "1", "source": "s", "type": "t", "subject": "a b%ü\""}, b"")
    assert headers["ce-subject"] == "a%20b%25%C3%BC%22"
    assert from_http(headers, b"").get("subject") == "a b%ü\""


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_sdk_events_parse_with_ours(mode: str) -> None:
    sdk = SdkEvent({"type": "org.ros2.reply", "source": "f", "ros2bridge": "b", "datacontenttype": "application/json",
                    "subject": "héllo wörld"}, {"data": "x"})
    headers, body = (sdk_to_binary if mode == "binary" else sdk_to_structured)(sdk)
    event = from_http(dict(headers), body)
    assert event.type == "org.ros2.reply" and event.get("ros2bridge") == "b"
    assert event.get("subject") == "héllo wörld"
    assert json.loads(event.data) == {"data": "x"}


@pytest.mark.parametrize(("headers", "body"), [
    ({"content-type": "application/json"}, b"{}"),
    ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s"}, b""),
    ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t", "ce-Bad-Name": "x"}, b""),
    ({"content-type": "application/cloudevents+json"}, b"[1]"),
    ({"content-type": "application/cloudevents+json"}, b"\xff"),
    ({"content-type": "application/cloudevents+json"},
     b'{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"%%"}'),
    ({"ce-specversion": "1.0", "ce-id": "%FF%FE", "ce-source": "s", "ce-type": "t"}, b""),
])
def test_malformed_events_are_event_errors(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(EventError):
        from_http(headers, body)


# --- buffers and ordering -------------------------------------------------------------------------


def test_out_buffer_is_bounded_in_events_and_bytes() -> None:
    buf = OutBuffer(max_events=3, max_bytes=250)
    dropped = []
    for i in range(5):
        dropped += buf.put(Outgoing("/t", {}, bytes([i]) * 100))
    assert len(buf) == 2 and buf.bytes == 200 and buf.high_water_bytes <= 250
    assert [d.body[0] for d in dropped] == [0, 1, 2]  # the oldest go first
    head = buf.peek(0)
    assert head is not None and head.body[0] == 3


def test_reorderer_restores_order_and_skips_lost_gaps() -> None:
    out: list[int] = []
    r = Reorderer(out.append, max_wait=0.5, window=8)
    for seq in (3, 1, 2):
        r.offer(seq, seq, now=0.0)
    assert out == [1, 2, 3]
    r.offer(5, 5, now=1.0)  # 4 was lost (no reply): held until max_wait, then skipped
    r.tick(1.2)
    assert out == [1, 2, 3]
    r.tick(1.6)
    assert out == [1, 2, 3, 5] and r.skipped == 1
    r.offer(4, 4, now=1.7)  # too late: publishing it now would break the order
    assert out == [1, 2, 3, 5] and r.late == 1


def test_blob_store_evicts_oldest_and_refuses_too_large() -> None:
    store = BlobStore(max_bytes=250)
    a, b, c = (store.put(bytes([i]) * 100) for i in range(3))
    assert a is not None and store.get(a) is None and b and store.get(b) and c and store.get(c)
    assert store.put(b"x" * 251) is None


def test_interface_selection() -> None:
    assert cyclonedds_uri(None) is None
    assert 'name="eth0"' in (cyclonedds_uri("eth0") or "")
    assert 'address="10.0.0.5"' in (cyclonedds_uri("10.0.0.5") or "")


def test_health_rows_from_metrics() -> None:
    h = parse_metrics("http://b", {"bridge": "detect-ros2", "status": "degraded", "broker_up": False,
                                   "buffer": {"events": 4}, "error_count": 2,
                                   "topics": [{"topic": "/a", "type": "std_msgs/msg/String", "rate": 2.5,
                                               "delivered": 10, "dropped_buffer": 3}],
                                   "replies": [{"topic": "/r", "type": "std_msgs/msg/String", "published": 9}],
                                   "errors": [{"time": "t", "where": "send /a", "error": "broker unreachable"}]})
    assert not h.healthy and h.buffered == 4 and h.broker_up is False
    rows = h.rows()
    assert rows[0] == ("detect-ros2", "no", "2 topics, 4 buffered, Broker unreachable, 2 errors")
    assert any("2.5/s, 10 sent, 3 dropped" in r[2] for r in rows)
    assert any("broker unreachable" in r[2] for r in rows)
    assert not parse_metrics("http://b", ["nope"]).healthy


def test_bridge_urls_from_rendered_services() -> None:
    from hybrid_knative.ros2.objects import render_bridge, spec_from_events

    objs = render_bridge("shop", "detect", spec_from_events([{"topic": "/a", "type": "std_msgs/msg/String"}],
                                                            image="x@sha256:" + "a" * 64, node="robot-1"),
                         namespace="robots")
    other = {"kind": "Service", "metadata": {"name": "web", "namespace": "robots", "labels": {}}}
    assert bridge_urls([*objs, other]) == [("robots", "detect-ros2", "http://detect-ros2.robots.svc.cluster.local")]


def test_topic_json_schema_agrees_with_the_parser() -> None:
    import jsonschema

    from hybrid_knative.ros2.spec import TOPIC_JSON_SCHEMA, parse_topic

    validator = jsonschema.Draft202012Validator(TOPIC_JSON_SCHEMA)
    good = [
        {"topic": "/camera/info", "type": "std_msgs/msg/String", "reply_to": "/detections", "qos": "reliable"},
        {"topic": "/imu", "type": "sensor_msgs/Imu", "qos": {"reliability": "best_effort", "depth": 1}, "rate": 20,
         "decimate": 2, "encoding": "cdr", "ordered": False, "control_loop": True},
    ]
    bad = [
        {"topic": "/x"},
        {"topic": "x", "type": "std_msgs/msg/String"},
        {"topic": "/x", "type": "String"},
        {"topic": "/x", "type": "std_msgs/msg/String", "qos": "sometimes"},
        {"topic": "/x", "type": "std_msgs/msg/String", "qos": {"depth": 0}},
        {"topic": "/x", "type": "std_msgs/msg/String", "rate": 0},
        {"topic": "/x", "type": "std_msgs/msg/String", "topci": "/y"},
    ]
    for value in good:
        assert list(validator.iter_errors(value)) == []
        parse_topic(value)
    for value in bad:
        assert list(validator.iter_errors(value)), value
        with pytest.raises(ConfigError):
            parse_topic(value)
