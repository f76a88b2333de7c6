"""status/doctor show each ROS 2 bridge, its topics, rates and last errors: a real bridge (cyclonedds, in a
network namespace, its Broker down) answers /metrics; the API emulator serves that answer on the service-proxy
path of the bridge's Service (as the API server does in a cluster); `status` and `doctor` print it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hybrid_knative.cli.main import cli
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.ros2.objects import render_bridge, spec_from_events
from hybrid_knative.wiring.ros2 import bridges_health, doctor_lines, health_rows
from tests.dev.conftest import DevCluster
from tests.ros2.conftest import World, free_port, wait_until

PROXY = "get /api/v1/namespaces/default/services/detect-ros2:http/proxy/metrics"


def bridge_objects() -> list[dict[str, Any]]:
    spec = spec_from_events([{"topic": "/camera/info", "type": "std_msgs/msg/String", "reply_to": "/detections"}],
                            image="r/b@sha256:" + "c" * 64, node="robot-1")
    return render_bridge("shop", "detect", spec)


def real_metrics(world: World) -> dict[str, Any]:
    """/metrics of a real bridge whose Broker is down, after 5 messages on /camera/info."""
    [cm] = [o for o in bridge_objects() if o["kind"] == "ConfigMap"]
    port = free_port()
    world.bridge(yaml.safe_load(cm["data"]["bridge.yaml"]), broker_url=f"http://127.0.0.1:{free_port()}/d/d",
                 port=port)
    world.publish([{"topic": "/camera/info", "type": "std_msgs/msg/String", "value": {"data": f"m{i}"}}
                   for i in range(5)])
    wait_until(lambda: world.metrics(port)["topics"][0]["received"] == 5 and world.metrics(port)["errors"], 20,
               "5 messages and a Broker error")
    return world.metrics(port)


@pytest.mark.integration
def test_bridge_health_through_the_service_proxy(world: World, make_dev_cluster: Callable[..., DevCluster]) -> None:
    metrics = real_metrics(world)
    cluster = make_dev_cluster()
    [svc] = [o for o in bridge_objects() if o["kind"] == "Service"]
    cluster.server.put_object("v1", "services", svc)
    asked: list[str] = []
    cluster.server.emulator[PROXY] << (lambda req: asked.append("metrics") or json.dumps(metrics).encode())  # type: ignore[func-returns-value]
    kube = KubeApi.connect(cluster.kubeconfig)

    [health] = bridges_health(kube)
    assert asked == ["metrics"]
    assert health.name == "default/detect-ros2" and health.reachable and not health.healthy  # degraded: no Broker
    assert health.broker_up is False and health.last_errors
    [topic] = [t for t in health.topics if t.direction == "in"]
    assert (topic.topic, topic.type) == ("/camera/info", "std_msgs/msg/String")
    rows = health_rows([health])
    assert rows[0][:2] == ("default/detect-ros2", "no") and "Broker unreachable" in rows[0][2]
    assert any(r[0].strip() == "/camera/info" and "/s" in r[2] for r in rows)
    assert any(r[0].strip() == "last error" for r in rows)
    lines = doctor_lines([health])
    assert lines[0] == "✗ ROS 2 bridge default/detect-ros2" and any("get broker" in line for line in lines)


def test_unreachable_bridge_is_a_row_not_a_crash(make_dev_cluster: Callable[..., DevCluster]) -> None:
    cluster = make_dev_cluster()
    [svc] = [o for o in bridge_objects() if o["kind"] == "Service"]
    cluster.server.put_object("v1", "services", svc)
    cluster.server.emulator[PROXY] << (lambda req: b"not json")
    kube = KubeApi.connect(cluster.kubeconfig)
    [health] = bridges_health(kube)
    assert not health.healthy and "not JSON" in health.detail
    assert doctor_lines([health])[0].startswith("✗")
    cluster.server.put_object("v1", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "other", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}})
    assert len(bridges_health(kube)) == 1  # only Services labelled as bridges


def test_doctor_without_a_service_lists_the_bridges(make_dev_cluster: Callable[..., DevCluster]) -> None:
    cluster = make_dev_cluster()
    [svc] = [o for o in bridge_objects() if o["kind"] == "Service"]
    cluster.server.put_object("v1", "services", svc)
    cluster.server.emulator[PROXY] << (lambda req: json.dumps({
        "bridge": "detect-ros2", "status": "ok", "broker_up": True, "buffer": {"events": 0},
        "topics": [{"topic": "/camera/info", "type": "std_msgs/msg/String", "rate": 2.5, "delivered": 9}],
        "replies": [], "errors": []}).encode())
    result = CliRunner().invoke(cli, ["doctor", "--no-pod-check", "--kubeconfig", str(cluster.kubeconfig)])
    assert "✓ ROS 2 bridge default/detect-ros2: 1 topics, 0 buffered" in result.output, result.output
