"""status/doctor show each ROS 2 bridge, its topics, rates and last errors: a real bridge (cyclonedds, in a
network namespace, its Broker down) answers /metrics; the API emulator serves that answer on the service-proxy
path of the bridge's Service (as the API server does in a cluster); `status` and `doctor` print it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from hybrid_knative.cli.main import cli
from hybrid_knative.dev.deploy import selected
from hybrid_knative.dev.project import load_project
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.ros2.objects import render_bridge, spec_from_events
from hybrid_knative.system.runner import Runner
from hybrid_knative.wiring.ros2 import Ros2Bridges, bridges_health, doctor_lines, health_rows
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


PROJECT = """\
name: shop
functions:
  detect:
    image: 127.0.0.1:5000/default/detect@sha256:{a}
ros2:
  node: robot-1
  domain_id: 0
  image: 127.0.0.1:5000/default/ros2-bridge@sha256:{b}
events:
  - to: detect
    ros2: {{topic: /camera/info, type: std_msgs/msg/String, reply_to: /detections}}
""".format(a="a" * 64, b="b" * 64)


@pytest.mark.integration
def test_status_and_doctor_reach_a_deployed_bridge_through_the_api_servers_service_proxy(
        world: World, tmp_path: Path) -> None:
    """Everything in one network namespace: the bridge (real DDS, its Broker down, 5 messages received), the
    API emulator holding what `deploy` made of the project (Deployment on the robot's Node, whose InternalIP is
    the namespace's 127.0.0.1), and `hybrid-knative status` / `doctor` run through click. status reaches the
    bridge the way it does in a cluster: Service → Endpoints (hostNetwork pod = node IP, targetRef) → HTTP."""
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    (project_dir / "hybrid-knative.yaml").write_text(PROJECT)
    project = load_project(project_dir)
    work = tmp_path / "work"
    work.mkdir()
    objs = Ros2Bridges(work, Runner()).render(project, selected(project, None), {})
    [cm] = [o for o in objs if o["kind"] == "ConfigMap"]
    [deployment] = [o for o in objs if o["kind"] == "Deployment"]
    [service] = [o for o in objs if o["kind"] == "Service"]
    port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]

    world.bridge(yaml.safe_load(cm["data"]["bridge.yaml"]), broker_url=f"http://127.0.0.1:{free_port()}/d/d",
                 port=port)
    world.publish([{"topic": "/camera/info", "type": "std_msgs/msg/String", "value": {"data": f"m{i}"}}
                   for i in range(5)])
    wait_until(lambda: world.metrics(port)["topics"][0]["received"] == 5 and world.metrics(port)["errors"], 20,
               "5 messages and a Broker error")

    plan = tmp_path / "plan.json"
    out = tmp_path / "out.json"
    plan.write_text(json.dumps({"work": str(work), "project_dir": str(project_dir), "node": "robot-1",
                                "port": port, "service": service["metadata"]["name"], "out": str(out)}))
    done = world.run("-m", "tests.wiring.status_netns", str(plan), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())

    # the emulator placed the bridge like a cluster would: on the robot's node, reached at the node's address
    [pod] = result["pods"]
    assert pod["spec"]["nodeName"] == "robot-1" and pod["status"]["podIPs"] == [{"ip": "127.0.0.1"}]
    [subset] = result["endpoints"]["subsets"]
    assert subset["addresses"][0]["ip"] == "127.0.0.1"
    assert subset["addresses"][0]["targetRef"]["name"] == pod["metadata"]["name"]
    assert subset["ports"] == [{"port": port, "protocol": "TCP", "name": "http"}]

    metrics = result["metrics"]
    errors = {f"{e.get('time', '')} {e.get('where', '')}: {e.get('error', '')}" for e in metrics["errors"]}
    status = result["status"]["output"]
    lines = status.splitlines()
    head = lines.index(next(line for line in lines if line.startswith("ROS 2 BRIDGE")))
    bridge = lines[head + 1].split()
    assert bridge[:2] == ["default/detect-ros2", "no"], status  # the Broker is down: not ready
    assert "Broker unreachable" in lines[head + 1]
    topic = next(line for line in lines[head:] if line.split()[:1] == ["/camera/info"])
    m = re.search(r"→ events std_msgs/msg/String ([0-9.e+-]+)/s, (\d+) sent, (\d+) dropped", topic)
    assert m, status
    assert int(m.group(2)) == metrics["topics"][0]["delivered"] == 0  # nothing reached the Broker
    reply = next(line for line in lines[head:] if line.split()[:1] == ["/detections"])
    assert "← replies std_msgs/msg/String" in reply
    last = [line.split("last error", 1)[1].strip() for line in lines[head:] if line.strip().startswith("last error")]
    assert last and set(last) <= errors, (last, errors)
    assert result["status"]["code"] == 0  # a bridge is a user's object: shown, not the platform's health

    doctor = result["doctor"]["output"]
    assert "✗ ROS 2 bridge default/detect-ros2" in doctor, doctor
    dl = doctor.splitlines()
    at = dl.index("✗ ROS 2 bridge default/detect-ros2")
    cause, evidence, fix = (line.split(":", 1)[1].strip() for line in dl[at + 1:at + 4])
    assert "Broker unreachable" in cause and evidence in errors, doctor
    assert "kubectl -n default get broker" in fix
    assert result["doctor"]["code"] == 3, doctor  # doctor's platform view counts the bridges
