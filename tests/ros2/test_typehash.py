"""REP-2011 type hashes (RIHS01), as ROS 2 Iron+ advertise them in the endpoints' USER_DATA QoS.

The reference is independent: PyPI `rosbags`' ``Typestore.hash_rihs01`` (its own copy of the ROS 2 message
definitions, its own description builder). Over real DDS (cyclonedds, in a network namespace) a graph tool
reading the built-in discovery topics sees the bridge's reader and writer carry ``typehash=<that hash>;``,
and a Humble-style publisher (no USER_DATA) still reaches the bridge.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.msg import get_types_from_msg

from hybrid_knative.ros2.msgtypes import BUILTIN_MSGS, TypeRegistry
from hybrid_knative.ros2.objects import render_bridge, spec_from_events
from hybrid_knative.ros2.typehash import parse_user_data, rihs01, type_description, user_data
from tests.ros2.conftest import World, free_port, wait_until

REG = TypeRegistry()
# every field kind a .msg can have: primitives, bounded strings, fixed arrays, bounded and unbounded
# sequences, nested types (same package, other packages, Header), defaults, constants and comments
USER_MSGS = {
    "vision_msgs/msg/Box": "# a box\nfloat32 x\nfloat32 y\nuint16 w 10\nuint16 h\nint32 LIMIT=5\n",
    "vision_msgs/msg/Detection": (
        "std_msgs/Header header\nstring<=16 label\nfloat64 score\nBox[] boxes\nBox[2] corners\n"
        "int8[<=4] flags\nbool seen true\nuint8[] mask\nstring[] tags\nstring<=5[<=2] short_tags\n"
        "byte b\nint16 i16\nuint32 u32\nint64 i64\nuint64 u64\nfloat64[3] xyz\ngeometry_msgs/Point[] path\n"
    ),
    "vision_msgs/msg/Nothing": "# no fields at all\n",
}


def reference(extra: dict[str, str] | None = None, store: Stores = Stores.ROS2_JAZZY) -> Any:
    ts = get_typestore(store)
    types: dict[str, Any] = {}
    for name, text in (extra or {}).items():
        types.update(get_types_from_msg(text, name))
    ts.register(types)
    return ts


def test_rosbags_is_recent_enough() -> None:
    assert hasattr(get_typestore(Stores.ROS2_JAZZY), "hash_rihs01")


@pytest.mark.parametrize("name", sorted(BUILTIN_MSGS))
@pytest.mark.parametrize("store", [Stores.ROS2_JAZZY, Stores.ROS2_HUMBLE])
def test_builtin_types_hash_like_rosbags(name: str, store: Stores) -> None:
    ours = rihs01(REG, name)
    assert ours == reference(store=store).hash_rihs01(name)
    assert ours.startswith("RIHS01_") and len(ours) == 7 + 64


@pytest.mark.parametrize("name", sorted(USER_MSGS))
def test_msg_definitions_hash_like_rosbags(name: str) -> None:
    assert rihs01(TypeRegistry(USER_MSGS), name) == reference(USER_MSGS).hash_rihs01(name)


def test_what_the_hash_covers() -> None:
    """Comments, defaults and constants do not change it; a field's name, type, bound or order does."""
    base = {"p/msg/T": "int32 a\nstring<=4 b\n"}
    same = {"p/msg/T": "# doc\nint32 a 7\nint32 K=1\nstring<=4 b \"x\"\n"}
    assert rihs01(TypeRegistry(base), "p/msg/T") == rihs01(TypeRegistry(same), "p/msg/T")
    for changed in ("int32 c\nstring<=4 b\n", "int64 a\nstring<=4 b\n", "int32 a\nstring<=5 b\n",
                    "string<=4 b\nint32 a\n", "int32[2] a\nstring<=4 b\n"):
        assert rihs01(TypeRegistry({"p/msg/T": changed}), "p/msg/T") != rihs01(TypeRegistry(base), "p/msg/T")


def test_char_hashes_as_uint8_like_rosidl() -> None:
    """A .msg `char` is an IDL uint8 (rosidl_adapter's MSG_TYPE_TO_IDL), so ROS 2 hashes it as UINT8; rosbags
    keeps it as CHAR (13), so its hash of the uint8 spelling is the one to compare with."""
    ours = rihs01(TypeRegistry({"p/msg/C": "char c\nchar[4] cs\n"}), "p/msg/C")
    assert ours == reference({"p/msg/C": "uint8 c\nuint8[4] cs\n"}).hash_rihs01("p/msg/C")
    [field, _] = type_description(TypeRegistry({"p/msg/C": "char c\nchar[4] cs\n"}), "p/msg/C")[
        "type_description"]["fields"]
    assert field["type"]["type_id"] == 3


def test_user_data_is_what_rmw_dds_common_encodes() -> None:
    data = user_data(REG, "std_msgs/msg/String")
    assert data == f"typehash={rihs01(REG, 'std_msgs/msg/String')};".encode()
    assert parse_user_data(data) == rihs01(REG, "std_msgs/msg/String")
    assert parse_user_data(b"serviceid=abc;" + data) == rihs01(REG, "std_msgs/msg/String")
    assert parse_user_data(b"") is None and parse_user_data(b"other=1;") is None


@pytest.mark.integration
def test_the_bridge_advertises_the_hashes_over_real_dds(world: World) -> None:
    events = [
        {"topic": "/camera/info", "type": "std_msgs/msg/String", "reply_to": "/detections"},
        {"topic": "/detections/full", "type": "vision_msgs/msg/Detection"},
    ]
    objs = render_bridge("shop", "detect", spec_from_events(
        events, image="r/b@sha256:" + "c" * 64, node="robot-1", msg=USER_MSGS))
    [cm] = [o for o in objs if o["kind"] == "ConfigMap"]
    port = free_port()
    world.bridge(yaml.safe_load(cm["data"]["bridge.yaml"]), broker_url=f"http://127.0.0.1:{free_port()}/d/d",
                 port=port)

    done = world.run("-m", "tests.ros2.peers", "endpoints",
                     "sub:rt/camera/info,pub:rt/detections,sub:rt/detections/full", "20")
    assert done.returncode == 0, done.stderr
    seen = {(e["kind"], e["topic"]): e for e in map(json.loads, done.stdout.splitlines())}
    ref = reference(USER_MSGS)
    expected = {("sub", "rt/camera/info"): "std_msgs/msg/String", ("pub", "rt/detections"): "std_msgs/msg/String",
                ("sub", "rt/detections/full"): "vision_msgs/msg/Detection"}
    assert set(seen) == set(expected), done.stdout
    for key, msg_type in expected.items():
        assert seen[key]["user_data"] == f"typehash={ref.hash_rihs01(msg_type)};", key
    assert seen[("sub", "rt/detections/full")]["type"] == "vision_msgs::msg::dds_::Detection_"

    # Humble interop: a publisher without USER_DATA (as Humble's rmw_cyclonedds) still reaches the bridge
    world.publish([{"topic": "/camera/info", "type": "std_msgs/msg/String", "value": {"data": f"m{i}"}}
                   for i in range(3)])
    wait_until(lambda: world.metrics(port)["topics"][0]["received"] == 3, 20, "3 messages from a Humble publisher")
