"""`events tail` shows the ROS 2 flow: the event-display receiver (the shipped template, run here on 127.0.0.1)
prints the bridge's CloudEvents — JSON bodies as data, CDR bodies as size + base64 — with their ROS 2
extensions; `--type-prefix org.ros2.` subscribes with a valid prefix filter."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hybrid_knative.dev.events import parse_display_line, tail_objects
from hybrid_knative.dev.templates import materialize
from hybrid_knative.ros2.bridge import EXT_BRIDGE, EXT_REPLY_TO, EXT_SEQUENCE
from hybrid_knative.ros2.cloudevent import to_binary
from hybrid_knative.ros2.msgtypes import TypeRegistry, event_type
from tests.airgap.conftest import free_port
from tests.harness.validation import ManifestValidator


@pytest.fixture
def display(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    folder = materialize("event-display", tmp_path / "display")
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(folder / "display.py")], env={"HOST": "127.0.0.1",
                            "PORT": str(port)}, stdout=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(100):
        try:
            requests.get(url, timeout=0.5)
            break
        except requests.RequestException:
            time.sleep(0.05)
    yield url, proc
    proc.terminate()
    proc.wait(timeout=10)


def test_display_shows_ros2_events_json_and_cdr(display: tuple[str, subprocess.Popen[str]]) -> None:
    url, proc = display
    registry = TypeRegistry({})
    msg = registry.from_jsonable("std_msgs/msg/String", {"data": "hello robot"})
    attrs = {"id": "detect-ros2-1-camera.info-1", "source": "ros2://0/camera/info",
             "type": event_type("std_msgs/msg/String"), "specversion": "1.0", EXT_SEQUENCE: "1",
             EXT_BRIDGE: "detect-ros2", EXT_REPLY_TO: "/detections"}
    json_body = b'{"data":"hello robot"}'
    cdr = registry.encode(msg)
    for ctype, body in (("application/json", json_body), ("application/cdr", cdr)):
        headers = to_binary({**attrs, "datacontenttype": ctype}, body)
        assert requests.post(url, data=body, headers=headers, timeout=5).status_code == 202
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    events = [e for e in (parse_display_line(line) for line in out.splitlines()) if e is not None]
    assert len(events) == 2
    first, second = events
    assert first["type"] == "org.ros2.std_msgs.msg.String" and first["source"] == "ros2://0/camera/info"
    assert first["data"] == {"data": "hello robot"}
    assert first[EXT_SEQUENCE] == "1" and first[EXT_BRIDGE] == "detect-ros2" and first[EXT_REPLY_TO] == "/detections"
    assert "data" not in second and second["datasize"] == len(cdr)
    assert base64.b64decode(second["data_base64"]) == cdr  # the exact CDR bytes (small message: all shown)
    assert registry.to_jsonable("std_msgs/msg/String", registry.decode("std_msgs/msg/String", cdr)) == {
        "data": "hello robot"}


def test_tail_type_prefix_is_a_valid_trigger_filter(validator: ManifestValidator) -> None:
    objs = tail_objects("default", "r/display@sha256:" + "d" * 64, "default", None, "org.ros2.")
    assert objs[1]["spec"]["filters"] == [{"prefix": {"type": "org.ros2."}}]
    assert validator.validate_all(objs) == []
