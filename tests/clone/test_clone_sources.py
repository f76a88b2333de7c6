"""clone of event plumbing that is tied to the source: KafkaSources (consumer groups per cluster) and ROS 2
bridges (a robot's node). Two API emulators, two real registries, real skopeo; every object sent to the target
validated strictly (Kubernetes 1.34, Knative 1.23, and the project's KafkaSource CRD)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hybrid_knative.cli.clone import print_report
from hybrid_knative.ros2.objects import render_bridge, spec_from_events
from tests.clone.conftest import World, ksvc
from tests.clone.parts import EVENTING, SERVING, manifest_digest, push
from tests.clone.test_clone_flow import run

pytestmark = pytest.mark.integration
KAFKA = "sources.knative.dev/v1beta1"


def kafka_source(name: str, group: str | None, servers: list[str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"bootstrapServers": servers, "topics": ["orders"], "sink": {"ref": {
        "apiVersion": SERVING, "kind": "Service", "name": "orders"}}}
    if group:
        spec["consumerGroup"] = group
    return {"apiVersion": KAFKA, "kind": "KafkaSource",
            "metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}", "resourceVersion": "7",
                         "labels": {"hybrid-knative.dev/project": "shop"}},
            "spec": spec, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def test_kafka_sources_get_a_consumer_group_of_their_own(make_world: Callable[..., World]) -> None:
    world = make_world(kafka=True)
    s = world.source.server
    s.put_object(KAFKA, "kafkasources", kafka_source("orders-feed", "orders-consumers",
                                                     ["kafka.acme.com:9092"]))
    s.put_object(KAFKA, "kafkasources", kafka_source("audit-feed", None, ["my-kafka-bootstrap.kafka.svc:9092"]))
    s.reset_requests()
    applied: list[dict[str, Any]] = []
    report, _ = run(world, applied)
    t = world.target.server
    feed = t.get(KAFKA, "kafkasources", "orders-feed", "shop")
    assert feed["spec"]["consumerGroup"] == "orders-consumers-cloud"  # the target's context: "cloud"
    assert feed["spec"]["bootstrapServers"] == ["kafka.acme.com:9092"]
    assert "uid" not in feed["spec"] and feed["metadata"]["uid"] != "uid-orders-feed"
    audit = t.get(KAFKA, "kafkasources", "audit-feed", "shop")
    assert "consumerGroup" not in audit["spec"]  # Knative derives it from the object's UID: differs per cluster
    assert any("audit-feed" in w and "my-kafka-bootstrap.kafka.svc:9092" in w for w in report.warnings)
    assert not any("orders-feed" in w for w in report.warnings)
    # Sources after the Services they deliver to; both validated against the KafkaSource CRD on the way
    kinds = [o["kind"] for o in applied]
    assert max(i for i, k in enumerate(kinds) if k == "Service") < kinds.index("KafkaSource")
    assert sum(1 for k in kinds if k == "KafkaSource") == 2
    # the source keeps its group; a re-run does not suffix twice (nothing written)
    assert s.get(KAFKA, "kafkasources", "orders-feed", "shop")["spec"]["consumerGroup"] == "orders-consumers"
    t.reset_requests()
    run(world)
    assert t.writes() == [] and s.writes() == []


def test_a_target_without_eventing_kafka_refuses_kafka_sources(make_world: Callable[..., World]) -> None:
    world = make_world()
    from tests.clone.parts import seed_kafka

    seed_kafka(world.source.server)
    world.source.server.put_object(KAFKA, "kafkasources", kafka_source("orders-feed", "g", ["kafka.acme.com:9092"]))
    world.target.server.reset_requests()
    from hybrid_knative.errors import PermanentError

    with pytest.raises(PermanentError, match="cannot run what is being cloned") as err:
        run(world)
    assert "KafkaSource" in (err.value.details or "")
    assert world.target.server.writes() == []


# --- ROS 2 bridges ---------------------------------------------------------------------------------

def seed_bridge(world: World) -> str:
    """`deploy` of function detect with `events: ros2` (a reply topic): its KService and the bridge's objects."""
    s = world.source.server
    reg = world.src_registry.host
    digest = push(world.layout, world.src_registry, "shop/detect-ros2-bridge", "1", "bridge")
    s.put_object(SERVING, "services", ksvc("detect", "shop", f"{reg}/shop/hello:1",
                                           labels={"hybrid-knative.dev/project": "shop",
                                                   "hybrid-knative.dev/function": "detect"}))
    spec = spec_from_events([{"topic": "/chatter", "type": "std_msgs/msg/String", "reply_to": "/detections",
                              "reply_type": "std_msgs/msg/String"}],
                            image=f"{reg}/shop/detect-ros2-bridge:1", node="robot-1")
    plural = {"ConfigMap": "configmaps", "Deployment": "deployments", "Service": "services", "Trigger": "triggers"}
    for obj in render_bridge("shop", "detect", spec, namespace="shop"):
        if obj["kind"] == "Service":
            obj["spec"]["clusterIP"] = "10.152.183.77"  # what the source's API server assigned
            obj["spec"]["clusterIPs"] = ["10.152.183.77"]
        s.put_object(obj["apiVersion"], plural[obj["kind"]], obj)
    s.reconcile()
    live = s.get(SERVING, "revisions", "detect-00001", "shop")
    if live is not None:
        s.set_status(SERVING, "revisions", "detect-00001", "shop", {**live["status"], "containerStatuses": [
            {"name": "user-container", "imageDigest": f"{reg}/shop/hello@{world.digests['hello']}"}]})
    s.reset_requests()
    return digest


BRIDGE_PARTS = [("ConfigMap", "detect-ros2-config"), ("Deployment", "detect-ros2"), ("Service", "detect-ros2"),
                ("Trigger", "detect-ros2-reply")]


def test_bridges_stay_home_by_default_and_are_named(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    seed_bridge(world)
    applied: list[dict[str, Any]] = []
    report, _ = run(world, applied)
    t = world.target.server
    assert t.get("apps/v1", "deployments", "detect-ros2", "shop") is None
    assert t.get("v1", "services", "detect-ros2", "shop") is None
    assert t.get("v1", "configmaps", "detect-ros2-config", "shop") is None
    assert t.get(EVENTING, "triggers", "detect-ros2-reply", "shop") is None
    # the topic's Trigger delivers to the function, which is cloned: kept (a bridge elsewhere can feed it)
    topic = t.get(EVENTING, "triggers", "detect-ros2-chatter", "shop")
    assert topic["spec"]["subscriber"]["ref"] == {"apiVersion": SERVING, "kind": "Service", "name": "detect"}
    assert t.get(SERVING, "services", "detect", "shop") is not None
    assert sorted(report.bridges["shop/detect-ros2"]) == [f"{k} {n}" for k, n in BRIDGE_PARTS]
    assert any(s.startswith("ROS 2 bridge shop/detect-ros2") and "--include-bridges" in s for s in report.skipped)
    assert not any(o["kind"] == "Deployment" for o in applied)
    # the bridge's image was not copied
    assert not any("detect-ros2-bridge" in c.source for c in report.images.copied)
    # the command's output names them without -v
    print_report(report, "cloud", dry_run=False)
    out = capsys.readouterr().out
    assert "ROS 2 bridge shop/detect-ros2 not copied (" in out and "Deployment detect-ros2" in out
    assert world.source.server.writes() == []


def test_include_bridges_copies_them_for_a_target_with_robots(world: World) -> None:
    digest = seed_bridge(world)
    applied: list[dict[str, Any]] = []
    report, _ = run(world, applied, include_bridges=True)
    t = world.target.server
    dep = t.get("apps/v1", "deployments", "detect-ros2", "shop")
    pod = dep["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["nodeSelector"] == {"kubernetes.io/hostname": "robot-1"}
    image = pod["containers"][0]["image"]
    assert image == f"{world.registry}/shop/detect-ros2-bridge@{digest}"
    assert manifest_digest(image, world.dst_registry.authfile) == digest
    svc = t.get("v1", "services", "detect-ros2", "shop")
    assert svc["spec"].get("clusterIP") != "10.152.183.77"  # the target's API server assigns its own
    assert t.get("v1", "configmaps", "detect-ros2-config", "shop") is not None
    assert t.get(EVENTING, "triggers", "detect-ros2-reply", "shop") is not None
    assert report.bridges == {}
    # the target has no node robot-1: said, not refused (the robot may join later)
    assert any("detect-ros2" in w and "kubernetes.io/hostname=robot-1" in w for w in report.warnings)
    kinds = [o["kind"] for o in applied]
    assert kinds.index("Deployment") < kinds.index("Broker")
    sent = next(o for o in applied if o["kind"] == "Service" and o["apiVersion"] == "v1")
    assert "clusterIP" not in sent["spec"] and "clusterIPs" not in sent["spec"]
    # once the robot has joined the target, no warning
    t.put_object("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": "robot-1", "labels": {"kubernetes.io/hostname": "robot-1"}}})
    again, _ = run(world, include_bridges=True)
    assert not any("robot-1" in w for w in again.warnings)
