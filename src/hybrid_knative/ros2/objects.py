"""Kubernetes objects of a ROS 2 bridge, for the function workflow (``events: - ros2: {...}``).

For function ``detect`` in project ``shop`` with one bridged topic, :func:`render_bridge` gives::

    ConfigMap   detect-ros2-config   the bridge's settings (bridge.yaml)
    Deployment  detect-ros2          hostNetwork, pinned to the robot's node, ROS_DOMAIN_ID, CYCLONEDDS_URI
    Service     detect-ros2          the reply sink (and the claim-check blobs), selects the bridge pod
    Trigger     detect-ros2-<topic>  type + source of the topic's events → KService detect
    Trigger     detect-ros2-reply    type org.ros2.reply + ros2bridge=detect-ros2 → Service /reply

They are the user's objects (labels ``hybrid-knative.dev/project`` and ``hybrid-knative.dev/function``,
never ``managed-by: hybrid-knative``). The function workflow calls :func:`spec_from_events` with the
project file's ``ros2`` mappings, then :func:`render_bridge`, and prints :func:`min_scale_guidance`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

from hybrid_knative.errors import ConfigError
from hybrid_knative.ros2.bridge import EXT_BRIDGE, REPLY_TYPE, cyclonedds_uri
from hybrid_knative.ros2.msgtypes import TypeRegistry, event_type, normalize_type
from hybrid_knative.ros2.spec import BridgeSpec, TopicSpec, bridge_to_config, parse_bridge, parse_topic

Manifest = dict[str, Any]

LABEL_PROJECT = "hybrid-knative.dev/project"
LABEL_FUNCTION = "hybrid-knative.dev/function"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
BRIDGE_APP = "ros2-bridge"
CONFIG_DIR = "/etc/hybrid-knative/ros2"
CONFIG_FILE = "bridge.yaml"
HOSTNAME_LABEL = "kubernetes.io/hostname"
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def bridge_name(function: str) -> str:
    return _dns_name(f"{function}-ros2")


def _dns_name(text: str, limit: int = 63) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if len(name) > limit:
        digest = hashlib.sha256(text.encode()).hexdigest()[:6]
        name = name[: limit - 7].rstrip("-") + "-" + digest
    return name


def broker_url(namespace: str, broker: str) -> str:
    """The in-cluster Broker ingress of the MT channel-based Broker."""
    return f"http://broker-ingress.knative-eventing.svc.cluster.local/{namespace}/{broker}"


def spec_from_events(
    events: Sequence[Mapping[str, Any]],
    *,
    image: str,
    node: str | None = None,
    node_selector: Mapping[str, str] | None = None,
    domain_id: int = 0,
    interface: str | None = None,
    broker: str = "default",
    msg: Mapping[str, str] | None = None,
    where: str = "events",
) -> BridgeSpec:
    """A bridge spec from the project file's ``ros2:`` event mappings (validated; ConfigError names
    ``events[i].ros2.<key>``). ``msg`` adds user ``.msg`` definitions ({pkg/msg/Type: text})."""
    topics = [dict(e) for e in events]
    data: dict[str, Any] = {
        "topics": topics,
        "domain_id": domain_id,
        "broker": broker,
        "image": image,
        "node_selector": dict(node_selector or {}),
    }
    if node is not None:
        data["node"] = node
    if interface is not None:
        data["interface"] = interface
    if msg:
        data["msg"] = dict(msg)
    spec = parse_bridge(data, where=where)
    return spec


def render_bridge(project: str, function: str, spec: BridgeSpec, *, namespace: str = "default") -> list[Manifest]:
    """ConfigMap, Deployment, Service and Triggers of the bridge that feeds ``function``.

    Raises ConfigError when the spec cannot run: no image, no way to reach the robot's node,
    unknown message types, names that are not DNS labels.
    """
    for label, value in (("project", project), ("function", function), ("namespace", namespace)):
        if not _DNS1123.match(value) or len(value) > 63:
            raise ConfigError(f"{label} {value!r} is not a DNS label", resolution="lower-case letters, digits and -")
    if not spec.image:
        raise ConfigError("the ROS 2 bridge needs an image", resolution="build it like a function's image "
                          "(hybrid-knative deploy does) and pass its reference, pinned by digest")
    if not spec.node and not spec.node_selector:
        raise ConfigError(
            "the ROS 2 bridge must run on the robot's node (DDS discovery is multicast and does not cross nodes)",
            resolution="pass --node <node name> (or node: in the project file), or a node_selector with the "
            "label the join agent put on the robot",
        )
    for key, value in spec.node_selector:
        if not _LABEL_VALUE.match(value) or len(value) > 63:
            raise ConfigError(f"node selector {key}={value!r}: not a label value")
    if spec.node is not None and (not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", spec.node)
                                  or len(spec.node) > 63):
        raise ConfigError(f"node {spec.node!r} is not a node name")
    registry = TypeRegistry(dict(spec.msg_definitions))
    for t in spec.topics:
        registry.check(t.type)
        registry.check(t.reply_msg_type)
    parse_bridge(bridge_to_config(spec))  # the ConfigMap must be readable by the bridge itself

    name = bridge_name(function)
    user_labels = {LABEL_PROJECT: project, LABEL_FUNCTION: function}
    selector = {LABEL_NAME: BRIDGE_APP, LABEL_INSTANCE: name}
    labels = {**user_labels, **selector}

    def meta(obj_name: str) -> dict[str, Any]:
        return {"name": obj_name, "namespace": namespace, "labels": dict(labels)}

    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(f"{name}-config"),
        "data": {CONFIG_FILE: yaml.safe_dump(bridge_to_config(spec), sort_keys=True)},
    }
    service_host = f"{name}.{namespace}.svc.cluster.local"
    env: list[dict[str, Any]] = [
        {"name": "ROS_DOMAIN_ID", "value": str(spec.domain_id)},
        {"name": "HK_ROS2_BROKER_URL", "value": broker_url(namespace, spec.broker)},
    ]
    uri = cyclonedds_uri(spec.interface)
    if uri:
        env.append({"name": "CYCLONEDDS_URI", "value": uri})
    node_selector = dict(spec.node_selector)
    if spec.node:
        node_selector[HOSTNAME_LABEL] = spec.node
    container = {
        "name": "bridge",
        "image": spec.image,
        "command": ["hybrid-knative"],
        "args": [
            "ros2", "bridge",
            "--config", f"{CONFIG_DIR}/{CONFIG_FILE}",
            "--name", name,
            "--listen", f"0.0.0.0:{spec.port}",
            "--public-url", f"http://{service_host}",
        ],
        "env": env,
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": spec.port}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": spec.port}, "periodSeconds": 10,
                          "failureThreshold": 3},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name),
        "spec": {
            "replicas": 1,
            # hostNetwork: two bridges on one node would fight for the port and double every message
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "hostNetwork": True,  # DDS discovery is multicast on the robot's LAN
                    "dnsPolicy": "ClusterFirstWithHostNet",  # still resolve the Broker's cluster name
                    "nodeSelector": node_selector,
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": f"{name}-config"}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name),
        "spec": {
            "selector": dict(selector),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    objects: list[Manifest] = [config, deployment, service]
    used: set[str] = set()
    for topic in spec.topics:
        trigger = _topic_trigger(name, function, namespace, spec, topic, labels)
        if trigger["metadata"]["name"] in used:  # /a_b and /a/b share a slug: keep both Triggers
            digest = hashlib.sha256(topic.topic.encode()).hexdigest()[:6]
            trigger["metadata"]["name"] = _dns_name(f"{trigger['metadata']['name'][:56]}-{digest}")
        used.add(trigger["metadata"]["name"])
        objects.append(trigger)
    if any(t.reply_to for t in spec.topics):
        objects.append({
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Trigger",
            "metadata": meta(_dns_name(f"{name}-reply")),
            "spec": {
                "broker": spec.broker,
                "filter": {"attributes": {"type": REPLY_TYPE, EXT_BRIDGE: name}},
                "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": name}, "uri": "/reply"},
                "delivery": {"retry": 3, "backoffPolicy": "exponential", "backoffDelay": "PT0.1S"},
            },
        })
    return objects


def _topic_trigger(name: str, function: str, namespace: str, spec: BridgeSpec, topic: TopicSpec,
                   labels: Mapping[str, str]) -> Manifest:
    slug = topic.topic.strip("/").replace("/", "-").replace("_", "-")
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": _dns_name(f"{name}-{slug}"), "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "broker": spec.broker,
            "filter": {"attributes": {"type": event_type(topic.type),
                                      "source": f"ros2://{spec.domain_id}{topic.topic}"}},
            "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": function}},
            "delivery": {"retry": 2, "backoffPolicy": "exponential", "backoffDelay": "PT0.1S"},
        },
    }


def min_scale_guidance(function: str, spec: BridgeSpec) -> list[str]:
    """Advice lines for topics used in control loops (or fast topics): cold starts take seconds."""
    lines: list[str] = []
    for t in spec.topics:
        fast = t.rate is not None and t.rate >= 5
        if t.control_loop or (t.reply_to and fast):
            lines.append(
                f"{t.topic} → {function}: a scale-from-zero start takes 1-10 s, longer than a control loop can "
                f"wait; set min-scale 1 on {function} (annotation autoscaling.knative.dev/min-scale: \"1\") "
                "and keep the bridge on the robot's node."
            )
        elif t.reply_to:
            lines.append(
                f"{t.topic} → {function} → {t.reply_to}: the first reply after idle waits for a cold start "
                "(1-10 s); fine for perception/batch work, not for control loops."
            )
    return lines


def describe(spec: BridgeSpec) -> Iterable[str]:
    for t in spec.topics:
        reply = f" → reply {t.reply_to} ({normalize_type(t.reply_msg_type)})" if t.reply_to else ""
        yield f"{t.topic} ({t.type}, {t.qos.reliability}, depth {t.qos.depth}){reply}"


__all__ = [
    "BridgeSpec",
    "Manifest",
    "TopicSpec",
    "bridge_name",
    "broker_url",
    "describe",
    "min_scale_guidance",
    "parse_topic",
    "render_bridge",
    "spec_from_events",
]
