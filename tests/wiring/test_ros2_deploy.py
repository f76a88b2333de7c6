"""`events: - to: detect / ros2: {...}` in the project file → deploy renders the ROS 2 bridge with the
function's objects on the API emulator: validated objects, pinned to the robot's node, same labels, a
re-deploy writes nothing, a dropped event prunes the bridge, delete removes it; bad input names file:line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from hybrid_knative.dev.deploy import DeployOptions, delete, deploy
from hybrid_knative.dev.project import load_project
from hybrid_knative.errors import ConfigError
from hybrid_knative.progress import Status
from hybrid_knative.ros2.spec import TOPIC_JSON_SCHEMA
from hybrid_knative.system.runner import Runner
from hybrid_knative.wiring.ros2 import Ros2Bridges
from tests.dev.conftest import DevCluster
from tests.harness.validation import ManifestValidator

QUIET = Status(verbosity=-1)
FAST = DeployOptions(timeout=10, poll_interval=0.01, verify_url=False)
FN_IMAGE = "127.0.0.1:5000/default/detect@sha256:" + "a" * 64
BRIDGE_IMAGE = "127.0.0.1:5000/default/ros2-bridge@sha256:" + "b" * 64
PROJECT = f"""\
name: shop
functions:
  detect:
    image: {FN_IMAGE}
ros2:
  node: robot-1
  domain_id: 7
  image: {BRIDGE_IMAGE}
events:
  - to: detect
    ros2: {{topic: /camera/info, type: std_msgs/msg/String, reply_to: /detections, qos: reliable, rate: 20}}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "hybrid-knative.yaml").write_text(text)
    return tmp_path


def ours(cluster: DevCluster, plural: str, api_version: str) -> list[str]:
    """Names of the project's objects of a kind that deploy made (Knative's own carry an ownerReference)."""
    return [o["metadata"]["name"] for o in cluster.objects(plural, api_version)
            if (o["metadata"].get("labels") or {}).get("hybrid-knative.dev/project") == "shop"
            and not o["metadata"].get("ownerReferences")]


def bridges(tmp_path: Path, node: str | None = None) -> Ros2Bridges:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return Ros2Bridges(work, Runner(), node=node)


def test_the_project_schema_embeds_the_bridge_topic_schema() -> None:
    schema = json.loads((Path(__file__).parents[2] / "src/hybrid_knative/dev/project.schema.json").read_text())
    assert schema["$defs"]["ros2Topic"] == TOPIC_JSON_SCHEMA


def test_ros2_events_parse_and_errors_name_file_and_line(tmp_path: Path) -> None:
    project = load_project(write(tmp_path, PROJECT))
    fn = project.function("detect")
    assert [e.kind for e in fn.events] == ["ros2"] and fn.events[0].line == 10
    assert project.ros2["node"] == "robot-1"

    with pytest.raises(ConfigError) as err:  # schema: an unknown key of the topic
        load_project(write(tmp_path, PROJECT.replace("qos: reliable", "qos: reliable, colour: red")))
    assert "hybrid-knative.yaml:11:" in str(err.value.details) and "colour" in str(err.value.details)

    with pytest.raises(ConfigError) as err:  # `to` names no function
        load_project(write(tmp_path, PROJECT.replace("to: detect", "to: classify")))
    assert "hybrid-knative.yaml:10:" in str(err.value.details) and "classify" in str(err.value.details)

    # a type the bridge does not know: found before anything is built, naming the event's line
    unknown = load_project(write(tmp_path, PROJECT.replace("std_msgs/msg/String", "my_msgs/msg/Blob")))
    with pytest.raises(ConfigError) as err:
        bridges(tmp_path).check(unknown, unknown.functions)
    assert "hybrid-knative.yaml:" in err.value.brief and "my_msgs" in str(err.value)

    # a .msg file named in the project file makes the type known
    (tmp_path / "Blob.msg").write_text("string name\nuint8[] data\n")
    known = load_project(write(tmp_path, PROJECT.replace("std_msgs/msg/String", "my_msgs/msg/Blob").replace(
        "  domain_id: 7\n", "  domain_id: 7\n  msg: {my_msgs/msg/Blob: Blob.msg}\n")))
    bridges(tmp_path).check(known, known.functions)

    nowhere = load_project(write(tmp_path, PROJECT.replace("  node: robot-1\n", "")))
    with pytest.raises(ConfigError) as err:
        bridges(tmp_path).check(nowhere, nowhere.functions)
    assert "--node" in str(err.value.resolution)
    bridges(tmp_path, node="robot-2").check(nowhere, nowhere.functions)  # --node is enough


@pytest.mark.integration
def test_deploy_renders_applies_prunes_and_deletes_the_bridge(
        make_dev_cluster: Callable[..., DevCluster], tmp_path: Path, validator: ManifestValidator) -> None:
    cluster = make_dev_cluster()
    kube = cluster.kube()
    project = load_project(write(tmp_path, PROJECT))
    companion = bridges(tmp_path, node="robot-arm")  # --node wins over ros2.node
    outcome = deploy(project, kube, None, None, QUIET, FAST, companions=[companion])  # type: ignore[arg-type]

    deployments = cluster.objects("deployments", "apps/v1")
    deployments = [d for d in deployments if not d["metadata"].get("ownerReferences")]  # not Knative's
    assert [d["metadata"]["name"] for d in deployments] == ["detect-ros2"]
    pod = deployments[0]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["nodeSelector"] == {"kubernetes.io/hostname": "robot-arm"}
    assert pod["containers"][0]["image"] == BRIDGE_IMAGE
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["ROS_DOMAIN_ID"] == "7"
    triggers = {t["metadata"]["name"]: t for t in cluster.objects("triggers", "eventing.knative.dev/v1")}
    assert triggers["detect-ros2-camera-info"]["spec"]["filter"]["attributes"] == {
        "type": "org.ros2.std_msgs.msg.String", "source": "ros2://7/camera/info"}
    assert triggers["detect-ros2-camera-info"]["spec"]["subscriber"]["ref"]["name"] == "detect"
    assert "detect-ros2-reply" in triggers
    services = [s["metadata"]["name"] for s in cluster.objects("services", "v1")]
    assert "detect-ros2" in services
    bridge_objs = [*deployments, *triggers.values(), *cluster.objects("configmaps", "v1"),
                   *[s for s in cluster.objects("services", "v1") if s["metadata"]["name"] == "detect-ros2"]]
    for obj in bridge_objs:
        assert obj["metadata"]["labels"]["hybrid-knative.dev/project"] == "shop"
        assert obj["metadata"]["labels"]["hybrid-knative.dev/function"] == "detect"
        assert "app.kubernetes.io/managed-by" not in obj["metadata"]["labels"]
    assert validator.validate_all([{k: v for k, v in o.items() if k != "status"} for o in bridge_objs]) == []
    assert any("min-scale" in line for line in outcome.advice)  # 20/s with replies: control-loop advice

    again = deploy(project, kube, None, None, QUIET, FAST, companions=[companion])  # type: ignore[arg-type]
    assert again.written == [] and again.pruned == [] and len(again.unchanged) == 6

    # the event dropped from the project file: the bridge goes, the function stays
    plain = load_project(write(tmp_path, PROJECT.split("events:")[0]))
    pruned = deploy(plain, kube, None, None, QUIET, FAST, companions=[companion])  # type: ignore[arg-type]
    assert {r.kind for r in pruned.pruned} == {"ConfigMap", "Deployment", "Service", "Trigger"}
    assert ours(cluster, "deployments", "apps/v1") == []
    assert [s["metadata"]["name"] for s in cluster.objects("services", "serving.knative.dev/v1")] == ["detect"]

    deploy(project, kube, None, None, QUIET, FAST, companions=[companion])  # type: ignore[arg-type]
    removed = delete(project, kube, QUIET)
    assert {r.kind for r in removed} == {"ConfigMap", "Deployment", "Service", "Trigger"}
    assert ours(cluster, "deployments", "apps/v1") == [] and ours(cluster, "services", "v1") == []
    assert cluster.objects("triggers", "eventing.knative.dev/v1") == []
    assert cluster.objects("configmaps", "v1") == [] or all(
        "hybrid-knative.dev/project" not in (c["metadata"].get("labels") or {}) for c in cluster.objects(
            "configmaps", "v1"))


@pytest.mark.integration
def test_cli_deploy_with_node_prints_the_bridge_and_guidance(make_dev_cluster: Callable[..., DevCluster],
                                                             tmp_path: Path) -> None:
    from click.testing import CliRunner

    from hybrid_knative.cli.main import cli

    cluster = make_dev_cluster()
    write(tmp_path, PROJECT)
    args = ["deploy", "--path", str(tmp_path), "--node", "robot-arm", "--no-verify-url", "--timeout", "10",
            "--poll-interval", "0.01", "--kubeconfig", str(cluster.kubeconfig)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "ROS 2 bridge detect-ros2 on robot-arm (domain 7) → detect:" in result.output
    assert "/camera/info (std_msgs/msg/String, reliable, depth 10) → reply /detections" in result.output
    assert "min-scale" in result.output
    [dep] = [d for d in cluster.objects("deployments", "apps/v1") if d["metadata"]["name"] == "detect-ros2"]
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "robot-arm"}
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "✓ unchanged" in again.output, again.output
