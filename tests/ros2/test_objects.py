"""The bridge's Kubernetes objects: strictly valid (built-in schemas + the Eventing CRD for Triggers),
labelled as the user's, and — applied through the real client to the API emulator with a
nodeSelector scheduler — the bridge pod lands on the robot's node with the host network."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from hybrid_knative.catalog import load_catalog
from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.ros2.objects import min_scale_guidance, render_bridge, spec_from_events
from hybrid_knative.ros2.spec import parse_bridge
from hybrid_knative.upstream import UpstreamStore
from tests.harness.emulator import ApiServer, FakeController, Store
from tests.harness.validation import ManifestValidator, image_errors

IMAGE = "registry.example/ros2-bridge@sha256:" + "b" * 64
EVENTS = [
    {"topic": "/camera/info", "type": "std_msgs/msg/String", "reply_to": "/detections", "qos": "reliable"},
    {"topic": "/cmd_vel_in", "type": "geometry_msgs/msg/Twist", "rate": 50, "control_loop": True,
     "qos": {"reliability": "best_effort", "depth": 1}},
]


def eventing_crds() -> list[dict[str, Any]]:
    release = load_catalog().releases[-1]
    text = UpstreamStore().read_text(release.component("knative-eventing").file("eventing-crds.yaml"))
    return [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "CustomResourceDefinition"]


def objects(**kw: Any) -> list[dict[str, Any]]:
    spec = spec_from_events(EVENTS, image=IMAGE, node="robot-1", domain_id=7, interface="wlan0", **kw)
    return render_bridge("shop", "detect", spec, namespace="robots")


@pytest.mark.parametrize("kube", ["1.32", "1.34"])
def test_objects_validate_strictly(kube: str) -> None:
    objs = objects()
    assert sorted(o["kind"] for o in objs) == ["ConfigMap", "Deployment", "Service", "Trigger", "Trigger", "Trigger"]
    validator = ManifestValidator(kube, eventing_crds())
    assert validator.validate_all(objs) == []
    assert [e for o in objs for e in image_errors(o)] == []
    # the check can fail: a misspelt Trigger field is caught by the CRD schema
    trigger = next(o for o in objs if o["kind"] == "Trigger")
    assert validator.errors({**trigger, "spec": {**trigger["spec"], "filters": "oops"}})


def test_labels_names_and_wiring() -> None:
    objs = objects()
    for o in objs:
        labels = o["metadata"]["labels"]
        assert labels["hybrid-knative.dev/project"] == "shop"
        assert labels["hybrid-knative.dev/function"] == "detect"
        assert "app.kubernetes.io/managed-by" not in labels  # the user's objects, not the platform's
        assert o["metadata"]["namespace"] == "robots"
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    pod = by[("Deployment", "detect-ros2")]["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "robot-1"}
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["ROS_DOMAIN_ID"] == "7"
    assert 'name="wlan0"' in env["CYCLONEDDS_URI"]
    assert env["HK_ROS2_BROKER_URL"] == "http://broker-ingress.knative-eventing.svc.cluster.local/robots/default"
    topic = by[("Trigger", "detect-ros2-camera-info")]["spec"]
    assert topic["filter"]["attributes"] == {"type": "org.ros2.std_msgs.msg.String", "source": "ros2://7/camera/info"}
    assert topic["subscriber"]["ref"] == {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "detect"}
    reply = by[("Trigger", "detect-ros2-reply")]["spec"]
    assert reply["filter"]["attributes"] == {"type": "org.ros2.reply", "ros2bridge": "detect-ros2"}
    assert reply["subscriber"] == {"ref": {"apiVersion": "v1", "kind": "Service", "name": "detect-ros2"},
                                   "uri": "/reply"}
    # the ConfigMap is exactly what the bridge reads, and it parses back to the same spec
    config = yaml.safe_load(by[("ConfigMap", "detect-ros2-config")]["data"]["bridge.yaml"])
    again = parse_bridge(config)
    assert [t.topic for t in again.topics] == ["/camera/info", "/cmd_vel_in"]
    assert again.domain_id == 7 and again.interface == "wlan0"


def test_min_scale_guidance_for_control_loops() -> None:
    spec = spec_from_events(EVENTS, image=IMAGE, node="robot-1")
    lines = min_scale_guidance("detect", spec)
    assert any("/cmd_vel_in" in line and "min-scale" in line for line in lines)
    assert any("/camera/info" in line and "cold start" in line for line in lines)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"image": ""}, "needs an image"),
    ({"node": None}, "must run on the robot's node"),
    ({"node": "Robot_1"}, "not a node name"),
    ({"node_selector": {"robot": "yes please"}}, "not a label value"),
])
def test_render_refuses_what_cannot_run(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"image": IMAGE, "node": "robot-1", **kwargs}
    with pytest.raises(ConfigError, match=message):
        render_bridge("shop", "detect", spec_from_events(EVENTS, **args))


def test_project_file_errors_name_the_field() -> None:
    bad = [{**EVENTS[0], "qos": "sometimes"}]
    with pytest.raises(ConfigError, match=r"events.topics\[0\].qos"):
        spec_from_events(bad, image=IMAGE, node="robot-1")
    with pytest.raises(ConfigError, match="unknown key"):
        spec_from_events([{**EVENTS[0], "topci": "/x"}], image=IMAGE, node="robot-1")


# --- the emulator: a nodeSelector scheduler --------------------------------------------------------


def schedule_pods(store: Store) -> None:
    """A faithful slice of kube-scheduler + ReplicaSet controller: one Pod per Deployment replica,
    bound to the first Node whose labels match the pod's nodeSelector; Pending/Unschedulable if none."""
    nodes = store.list("v1", "nodes")
    for dep in store.list("apps/v1", "deployments"):
        meta, template = dep["metadata"], dep["spec"]["template"]
        name = f"{meta['name']}-{hashlib.sha256(meta['name'].encode()).hexdigest()[:5]}"
        if store.get("v1", "pods", name, meta["namespace"]) is not None:
            continue
        selector = template["spec"].get("nodeSelector") or {}
        fits = [n for n in nodes if all((n["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())]
        spec = dict(template["spec"])
        if fits:
            spec["nodeName"] = fits[0]["metadata"]["name"]
        store.put("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "spec": spec,
                                 "metadata": {"name": name, "namespace": meta["namespace"],
                                              "labels": template["metadata"]["labels"]}})
        status = ({"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}]} if fits else
                  {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                       "reason": "Unschedulable", "message":
                                                       f"0/{len(nodes)} nodes are available: {len(nodes)} node(s) "
                                                       "didn't match Pod's node affinity/selector."}]})
        store.set_status("v1", "pods", name, meta["namespace"], status)


def _node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}}}


def test_bridge_pod_is_bound_to_the_robots_node(tmp_path: Path) -> None:
    crds = eventing_crds()
    with ApiServer(controller=FakeController(hooks=[schedule_pods])) as server:
        server.put_object("v1", "nodes", _node("server-1"))
        server.put_object("v1", "nodes", _node("robot-1", **{"hybrid-knative.dev/arch": "arm64"}))
        server.put_object("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "robots"}})
        for crd in crds:
            server.put_object("apiextensions.k8s.io/v1", "customresourcedefinitions", crd)
        server.reconcile()
        api = KubeApi.connect(server.write_kubeconfig(tmp_path / "kubeconfig"))
        api.register_crds(crds)
        for obj in objects():
            api.apply(obj)
        lost = render_bridge("shop", "lost", spec_from_events(EVENTS, image=IMAGE, node="robot-9"),
                             namespace="robots")
        for obj in lost:
            api.apply(obj)
        server.reconcile()
        pods = {p["metadata"]["labels"]["app.kubernetes.io/instance"]: p for p in server.list("v1", "pods", "robots")}
        assert pods["detect-ros2"]["spec"]["nodeName"] == "robot-1"
        assert pods["detect-ros2"]["spec"]["hostNetwork"] is True
        assert pods["detect-ros2"]["status"]["phase"] == "Running"
        # a bridge for a robot that is not in the cluster stays Pending instead of joining the wrong LAN
        assert "nodeName" not in pods["lost-ros2"]["spec"]
        assert pods["lost-ros2"]["status"]["conditions"][0]["reason"] == "Unschedulable"
        triggers = server.list("eventing.knative.dev/v1", "triggers", "robots")
        assert {t["metadata"]["name"] for t in triggers} >= {"detect-ros2-camera-info", "detect-ros2-reply"}


def test_topics_with_the_same_slug_get_distinct_triggers() -> None:
    events = [{"topic": "/a_b", "type": "std_msgs/msg/String"}, {"topic": "/a/b", "type": "std_msgs/msg/String"}]
    objs = render_bridge("shop", "detect", spec_from_events(events, image=IMAGE, node="robot-1"))
    names = [o["metadata"]["name"] for o in objs if o["kind"] == "Trigger"]
    assert len(names) == len(set(names)) == 2
    sources = {o["spec"]["filter"]["attributes"]["source"] for o in objs if o["kind"] == "Trigger"}
    assert sources == {"ros2://0/a_b", "ros2://0/a/b"}
