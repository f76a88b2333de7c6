"""Faults never crash the bridge: Broker down (bounded buffer, then delivered), malformed replies,
oversized messages, unknown types."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.ros2.conftest import REPO, World, free_port, read_jsonl, wait_until

STRING = "std_msgs/msg/String"


def _ce(**attrs: str) -> dict[str, str]:
    base = {"ce-specversion": "1.0", "ce-id": "r1", "ce-source": "function://detect", "ce-type": "org.ros2.reply",
            "ce-ros2bridge": "detect-ros2", "ce-ros2replyto": "/detections", "Content-Type": "application/json"}
    for k, v in attrs.items():
        key = k if k == "Content-Type" else f"ce-{k}"
        if v == "":
            base.pop(key, None)
        else:
            base[key] = v
    return base


def test_broker_down_buffers_bounded_then_delivers(world: World) -> None:
    broker_port, function_port, sink_port = free_port(), free_port(), free_port()
    # depth 100: the DDS keep-last history must not be what drops messages here (a busy machine can
    # deliver the burst faster than the bridge takes it); the bounded event buffer is under test
    config = {"topics": [{"topic": "/chatter", "type": STRING, "qos": {"depth": 100}}], "buffer_events": 5}
    world.bridge(config, broker_url=f"http://127.0.0.1:{broker_port}/default/default", port=sink_port)
    world.publish([{"topic": "/chatter", "type": STRING, "value": {"data": f"m{i}"}} for i in range(12)])

    try:
        wait_until(lambda: world.metrics(sink_port)["topics"][0]["received"] == 12, 20, "12 messages received")
    except AssertionError as exc:
        details = f"metrics: {world.metrics(sink_port)}\nbridge: {world.log('detect-ros2')}"
        raise AssertionError(f"{exc}\n{details}") from None
    down = world.metrics(sink_port)
    assert down["broker_up"] is False and down["status"] == "degraded"
    assert down["buffer"]["events"] == 5  # bounded: the oldest were dropped and counted
    assert down["topics"][0]["dropped_buffer"] == 7
    assert any("broker unreachable" in e["error"] for e in down["errors"])

    log = world.broker([], {}, port=broker_port, function_port=function_port)
    wait_until(lambda: len([r for r in read_jsonl(log) if r["kind"] == "accepted"]) == 5, 15, "the buffer to drain")
    seqs = [int(r["headers"]["ce-sequence"]) for r in read_jsonl(log) if r["kind"] == "accepted"]
    assert seqs == [8, 9, 10, 11, 12]  # keep-last: the newest five, in order
    up = world.metrics(sink_port)
    assert up["broker_up"] is True and up["buffer"]["events"] == 0 and up["status"] == "ok"
    assert up["topics"][0]["delivered"] == 5


def test_malformed_replies_and_oversized_messages_never_crash(world: World) -> None:
    broker_port, function_port, sink_port = free_port(), free_port(), free_port()
    log = world.broker([], {}, port=broker_port, function_port=function_port)
    config = {
        "topics": [
            {"topic": "/camera/info", "type": STRING, "reply_to": "/detections"},
            {"topic": "/image", "type": "sensor_msgs/msg/CompressedImage"},
        ],
        "max_event_bytes": 2048,
        "blob_bytes": 0,  # no claim check: oversized messages are dropped (and counted)
    }
    out = world.subscriber("/detections", STRING, 2)
    world.bridge(config, broker_url=f"http://127.0.0.1:{broker_port}/default/default", port=sink_port)
    url = f"http://127.0.0.1:{sink_port}/reply"
    good = json.dumps({"data": "ok"}).encode()
    cases = [
        ({"Content-Type": "application/json"}, good, 400),  # not a CloudEvent
        (_ce(id=""), good, 400),  # required attribute missing
        (_ce(specversion="0.3"), good, 400),
        (_ce(type="org.ros2.std_msgs.msg.String"), good, 400),  # a request type, not a reply
        (_ce(ros2bridge="someone-else"), good, 400),
        (_ce(), b"{not json", 400),
        (_ce(), json.dumps({"data": 5}).encode(), 400),  # does not fit std_msgs/String
        (_ce(), json.dumps({"data": "x", "extra": 1}).encode(), 400),
        (_ce(**{"Content-Type": "application/cdr"}), b"\x00\x01\x00\x00\xff\xff\xff\x7f", 400),  # bad CDR
        (_ce(**{"Content-Type": "text/plain"}), b"hello", 415),
        (_ce(ros2replyto="/not/a/reply/topic"), good, 404),
        (_ce(ros2replyto="no-slash"), good, 400),
        (_ce(**{"bad_name": "x"}), good, 400),
        (_ce(), b"x" * 5000, 413),
    ]
    answers = world.http(*[{"method": "POST", "url": url, "headers": h, "body": b} for h, b, _ in cases])
    assert [a[0] for a in answers] == [c[2] for c in cases], [a[1][:100] for a in answers]
    # a good reply (binary) and a good structured-mode reply still go through afterwards
    structured = json.dumps({"specversion": "1.0", "id": "s1", "source": "f", "type": "org.ros2.reply",
                             "ros2bridge": "detect-ros2", "ros2replyto": "/detections", "datacontenttype":
                             "application/json", "data": {"data": "structured"}}).encode()
    answers = world.http(
        {"method": "POST", "url": url, "headers": _ce(), "body": json.dumps({"data": "binary"}).encode()},
        {"method": "POST", "url": url, "headers": {"Content-Type": "application/cloudevents+json"},
         "body": structured},
    )
    assert [a[0] for a in answers] == [202, 202]
    wait_until(lambda: len(read_jsonl(out)) == 2, 10, "two good replies on /detections")
    assert [r["value"]["data"] for r in read_jsonl(out)] == ["binary", "structured"]

    big = base64.b64encode(bytes(4000)).decode()
    world.publish([
        {"topic": "/image", "type": "sensor_msgs/msg/CompressedImage", "value": {"format": "raw", "data": big}},
        {"topic": "/image", "type": "sensor_msgs/msg/CompressedImage", "value": {"format": "raw", "data": "AAEC"}},
    ])
    wait_until(lambda: any(r["kind"] == "accepted" for r in read_jsonl(log)), 10, "the small image event")
    metrics = world.metrics(sink_port)
    image = next(t for t in metrics["topics"] if t["topic"] == "/image")
    assert image["dropped_oversize"] == 1 and image["delivered"] == 1
    assert metrics["rejected_replies"] == len(cases)
    assert any("larger than the event limit" in e["error"] for e in metrics["errors"])
    [(status, body)] = world.http({"method": "GET", "url": f"http://127.0.0.1:{sink_port}/healthz"})
    assert status == 200 and json.loads(body)["status"] == "ok"


def _bridge_cli(tmp_path: Path, config: object) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "hybrid_knative", "ros2", "bridge", "--config", str(path),
                           "--broker-url", "http://127.0.0.1:9/default/default"], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})


def test_unknown_types_and_bad_definitions_are_clear_errors(tmp_path: Path) -> None:
    """Checked before joining DDS: exit code 2, one clear message, no traceback."""
    cases = [
        ({"topics": [{"topic": "/x", "type": "my_pkg/msg/Missing"}]}, "unknown ROS 2 message type my_pkg/msg/Missing"),
        ({"topics": [{"topic": "/x", "type": "my_pkg/msg/A"}], "msg": {"my_pkg/msg/A": "B b\n"}},
         "unknown ROS 2 message type my_pkg/msg/B"),
        ({"topics": [{"topic": "/x", "type": "my_pkg/msg/A"}], "msg": {"my_pkg/msg/A": "int32[ bad\n"}},
         "bad field type"),
        ({"topics": [{"topic": "x", "type": STRING}]}, "not a fully qualified ROS 2 topic name"),
        ({"topics": [{"topic": "/x", "type": "String"}]}, "not a ROS 2 message type name"),
        ({"topics": [{"topic": "/x", "type": STRING, "qos": {"depth": 0}}]}, "depth"),
        ({"topics": [{"topic": "/x", "type": STRING, "reply_to": "/x"}]}, "reply_to must differ"),
        ({"topics": []}, "at least one topic"),
    ]
    for config, message in cases:
        done = _bridge_cli(tmp_path, config)
        assert done.returncode == 2, (config, done.stdout, done.stderr)
        assert message in done.stderr, (message, done.stderr)
        assert "Traceback" not in done.stderr
