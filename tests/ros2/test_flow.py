"""End to end in a network namespace: ROS 2 publisher → bridge → Broker (ingress contract) → Trigger →
function → reply → Trigger → bridge → ROS 2 subscriber. Every part is a separate process."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import cloudevents.http as ce
import yaml
from cloudevents.sdk.converters import is_binary

from hybrid_knative.ros2.msgtypes import TypeRegistry
from hybrid_knative.ros2.objects import render_bridge, spec_from_events
from tests.ros2 import rosref
from tests.ros2.conftest import World, free_port, read_jsonl, wait_until

IMAGE = "registry.example/ros2-bridge@sha256:" + "a" * 64
REG = TypeRegistry()


def full(msg_type: str, value: dict[str, Any]) -> dict[str, Any]:
    return REG.to_jsonable(msg_type, REG.from_jsonable(msg_type, value))


def rendered(events: list[dict[str, Any]], **config: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The bridge config exactly as render_bridge writes it into the ConfigMap, and the Triggers."""
    objs = render_bridge("shop", "detect", spec_from_events(events, image=IMAGE, node="robot-1"))
    [cm] = [o for o in objs if o["kind"] == "ConfigMap"]
    return {**yaml.safe_load(cm["data"]["bridge.yaml"]), **config}, [o for o in objs if o["kind"] == "Trigger"]


def accepted(log: Path, source: str) -> list[dict[str, Any]]:
    return [r for r in read_jsonl(log) if r["kind"] == "accepted" and r["headers"].get("ce-source") == source]


def test_topics_become_events_and_replies_come_back_in_order(world: World) -> None:
    broker_port, function_port, sink_port = free_port(), free_port(), free_port()
    config, triggers = rendered(
        [
            {"topic": "/camera/info", "type": "std_msgs/msg/String", "reply_to": "/detections", "qos": "reliable",
             "ordered": True},
            {"topic": "/imu", "type": "sensor_msgs/msg/Imu", "encoding": "cdr"},
            {"topic": "/image", "type": "sensor_msgs/msg/CompressedImage"},
        ],
        max_event_bytes=4096,
    )
    refs = {"Service/detect": f"http://127.0.0.1:{function_port}",
            "Service/detect-ros2": f"http://127.0.0.1:{sink_port}"}
    # replies of sequence 1, 2, 3 (mod 4) are delayed 60/40/20 ms: a burst of four comes back reversed
    log = world.broker(triggers, refs, port=broker_port, function_port=function_port, workers=4,
                       reply_delay_ms={"1": 60, "2": 40, "3": 20})
    out = world.subscriber("/detections", "std_msgs/msg/String", 12)
    world.bridge(config, broker_url=f"http://127.0.0.1:{broker_port}/default/default", port=sink_port)

    imu = [full("sensor_msgs/msg/Imu", {"header": {"stamp": {"sec": i, "nanosec": 7}, "frame_id": "imu"},
                                        "orientation": {"w": 1.0, "z": 0.5 * i},
                                        "orientation_covariance": [0.1 * k for k in range(9)],
                                        "linear_acceleration": {"z": 9.81}}) for i in range(3)]
    small = full("sensor_msgs/msg/CompressedImage", {"format": "jpeg",
                                                    "data": base64.b64encode(bytes(range(100))).decode()})
    big = full("sensor_msgs/msg/CompressedImage", {"format": "png", "header": {"frame_id": "cam"},
                                                  "data": base64.b64encode(bytes(range(256)) * 40).decode()})
    messages = []
    for i in range(12):
        messages.append({"topic": "/camera/info", "type": "std_msgs/msg/String", "value": {"data": f"m{i}"},
                         "sleep": 0.25 if i % 4 == 3 else 0})
    messages += [{"topic": "/imu", "type": "sensor_msgs/msg/Imu", "value": v} for v in imu]
    messages += [{"topic": "/image", "type": "sensor_msgs/msg/CompressedImage", "value": v} for v in (small, big)]
    published = world.publish(messages)

    wait_until(lambda: len(read_jsonl(out)) >= 12, 30, "12 replies on /detections")
    store = rosref.typestore()

    # the publisher's own bytes are ROS 2 CDR
    for sent, m in zip(published, messages, strict=True):
        assert base64.b64decode(sent["cdr"]) == rosref.cdr(store, m["type"], full(m["type"], m["value"]))

    # /camera/info: binary-mode CloudEvents with JSON bodies and sequence numbers
    wait_until(lambda: len(accepted(log, "ros2://0/camera/info")) == 12, 10, "12 /camera/info events")
    events = accepted(log, "ros2://0/camera/info")
    for i, record in enumerate(events):
        event = ce.from_http(record["headers"], base64.b64decode(record["data"]), data_unmarshaller=lambda d: d)
        assert is_binary(record["headers"])
        assert event["type"] == "org.ros2.std_msgs.msg.String"
        assert event["specversion"] == "1.0"
        assert event["sequence"] == str(i + 1)
        assert event["ros2replyto"] == "/detections"
        assert event["ros2bridge"] == "detect-ros2"
        assert record["headers"]["content-type"] == "application/json"
        assert json.loads(event.data) == {"data": f"m{i}"}
    assert len({e["headers"]["ce-id"] for e in events}) == 12

    # /imu: application/cdr bodies equal to rosbags' independent serialization
    wait_until(lambda: len(accepted(log, "ros2://0/imu")) == 3, 10, "3 /imu events")
    for record, value in zip(accepted(log, "ros2://0/imu"), imu, strict=True):
        assert record["headers"]["content-type"] == "application/cdr"
        assert record["headers"]["ce-type"] == "org.ros2.sensor_msgs.msg.Imu"
        assert base64.b64decode(record["data"]) == rosref.cdr(store, "sensor_msgs/msg/Imu", value)

    # /image: a small image inline as CDR, a big one (> max_event_bytes) through the claim check
    wait_until(lambda: len(accepted(log, "ros2://0/image")) == 2, 10, "2 /image events")
    first, second = accepted(log, "ros2://0/image")
    assert first["headers"]["content-type"] == "application/cdr"
    assert base64.b64decode(first["data"]) == rosref.cdr(store, "sensor_msgs/msg/CompressedImage", small)
    assert second["headers"]["content-type"] == "application/json"
    assert second["headers"]["ce-ros2claimcheck"] == "true"
    claim = json.loads(base64.b64decode(second["data"]))["claimcheck"]
    expected = rosref.cdr(store, "sensor_msgs/msg/CompressedImage", big)
    assert claim["size"] == len(expected) > 4096
    assert claim["sha256"] == hashlib.sha256(expected).hexdigest()
    [(status, blob)] = world.http({"method": "GET", "url": claim["url"]})
    assert status == 200 and blob == expected

    # replies reached the bridge out of order, and were published in order
    to_bridge = [int(r["attrs"]["sequence"]) for r in read_jsonl(log)
                 if r["kind"] == "delivered" and r["trigger"] == "detect-ros2-reply"]
    assert sorted(to_bridge) == list(range(1, 13))
    assert to_bridge != sorted(to_bridge), "the function stand-in should have reordered the replies"
    got = [r["value"]["data"] for r in read_jsonl(out)]
    assert got == [f"DETECTED:m{i}" for i in range(12)]

    metrics = world.metrics(sink_port)
    by_topic = {t["topic"]: t for t in metrics["topics"]}
    assert by_topic["/camera/info"]["delivered"] == 12
    assert by_topic["/image"]["claim_checked"] == 1
    assert metrics["replies"][0]["published"] == 12
    assert metrics["errors"] == [] and metrics["status"] == "ok"
