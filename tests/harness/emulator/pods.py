"""Pods, ReplicaSets and Events as kube-controller-manager, the scheduler and the kubelet write them, so
that code reading pods and events (``doctor``) sees realistic data.

Reasons and messages are the real ones (kubelet: pkg/kubelet/events, prober; controllers:
deployment/replicaset/job controllers), e.g. a failing HTTP readiness probe reads
``Readiness probe failed: HTTP probe failed with statuscode: 503`` (reason ``Unhealthy``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from tests.harness.emulator.common import _now, _suffix
from tests.harness.emulator.store import Store

NODE_NAME = "node-1"
_T = "2025-01-01T00:00:00Z"


def template_hash(template: Any) -> str:
    """A stand-in for the pod-template-hash label (stable for a template, changes with it)."""
    return _suffix(json.dumps(template, sort_keys=True), 10)


def _owner(obj: Mapping[str, Any], *, controller: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"].get("uid", ""),
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def event(
    store: Store,
    involved: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    type_: str = "Normal",
    component: str,
) -> None:
    """Record an Event once (the same reason and message for the same object is not repeated)."""
    meta = involved["metadata"]
    namespace = meta.get("namespace") or "default"
    digest = hashlib.sha256(f"{meta.get('uid')}/{reason}/{message}".encode()).hexdigest()[:16]
    name = f"{meta['name']}.{digest}"
    if store.peek("v1", "events", name, namespace) is not None:
        return
    now = _now()
    store.put("v1", "events", {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"),
            "kind": involved.get("kind"),
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component, **({"host": NODE_NAME} if component == "kubelet" else {})},
        "reportingComponent": component,
        "reportingInstance": NODE_NAME if component == "kubelet" else "",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    })


def _readiness_failure(container: Mapping[str, Any]) -> str | None:
    """The kubelet's message for a failing readiness probe of this container (None: no probe)."""
    probe = container.get("readinessProbe") or {}
    if "httpGet" in probe:
        return "Readiness probe failed: HTTP probe failed with statuscode: 503"
    if "tcpSocket" in probe:
        port = probe["tcpSocket"].get("port")
        return f"Readiness probe failed: dial tcp 10.1.0.10:{port}: connect: connection refused"
    if "exec" in probe:
        return "Readiness probe failed: "
    return None


def pod_status(pod_spec: Mapping[str, Any], *, ready: bool, phase: str = "Running",
               terminated: Mapping[str, Any] | None = None) -> dict[str, Any]:
    statuses = []
    for container in pod_spec.get("containers") or []:
        digest = hashlib.sha256(str(container.get("image")).encode()).hexdigest()
        state: dict[str, Any]
        if terminated is not None:
            state = {"terminated": {**terminated, "startedAt": _T, "finishedAt": _T}}
        else:
            state = {"running": {"startedAt": _T}}
        statuses.append({
            "name": container.get("name"),
            "image": container.get("image"),
            "imageID": f"{container.get('image')}@sha256:{digest}",
            "ready": ready,
            "started": terminated is None,
            "restartCount": 0,
            "state": state,
        })
    flag = "True" if ready else "False"
    conditions = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": _T},
        {"type": "Initialized", "status": "True", "lastTransitionTime": _T},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": _T,
         **({} if ready else {"reason": "ContainersNotReady",
                              "message": "containers with unready status: ["
                              + " ".join(str(c.get("name")) for c in pod_spec.get("containers") or []) + "]"})},
        {"type": "Ready", "status": flag, "lastTransitionTime": _T,
         **({} if ready else {"reason": "ContainersNotReady",
                              "message": "containers with unready status: ["
                              + " ".join(str(c.get("name")) for c in pod_spec.get("containers") or []) + "]"})},
    ]
    return {"phase": phase, "hostIP": "10.0.0.5", "podIP": "10.1.0.10", "startTime": _T,
            "qosClass": "BestEffort", "conditions": conditions, "containerStatuses": statuses}


def _schedule(store: Store, spec: Mapping[str, Any]) -> tuple[str | None, str]:
    """kube-scheduler's node choice, in the slice the tests need: ``spec.nodeName`` if set, else the first
    Node (by name) whose labels match ``spec.nodeSelector``. No Node objects at all (a bare test server):
    the single emulated node. Returns (node, "") or (None, the scheduler's FailedScheduling message)."""
    if spec.get("nodeName"):
        return str(spec["nodeName"]), ""
    nodes = sorted(store.view("v1", "nodes"), key=lambda n: str(n["metadata"]["name"]))
    if not nodes:
        return NODE_NAME, ""
    selector = spec.get("nodeSelector") or {}
    for node in nodes:
        labels = node["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in selector.items()):
            return str(node["metadata"]["name"]), ""
    return None, (f"0/{len(nodes)} nodes are available: {len(nodes)} node(s) didn't match Pod's node "
                  "affinity/selector. preemption: 0/{0} nodes are available: {0} Preemption is not helpful "
                  "for scheduling.".format(len(nodes)))


def _node_ip(store: Store, node: str) -> str:
    """The node's InternalIP (the kubelet's hostIP); the single emulated node's when it has none."""
    obj = store.peek("v1", "nodes", node)
    for address in ((obj or {}).get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP" and address.get("address"):
            return str(address["address"])
    return "10.0.0.5"


def _placed(store: Store, spec: Mapping[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The kubelet's IPs of a pod bound to ``spec.nodeName``: hostIP is the node's InternalIP, and a
    ``hostNetwork`` pod's IP is the node's (its Endpoints then point at the node, like a real cluster)."""
    host_ip = _node_ip(store, str(spec["nodeName"]))
    pod_ip = host_ip if spec.get("hostNetwork") else str(status.get("podIP", "10.1.0.10"))
    return {**status, "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}]}


def ensure_pod(store: Store, owner: Mapping[str, Any], name: str, template: Mapping[str, Any],
               extra_labels: Mapping[str, str], status: dict[str, Any]) -> dict[str, Any]:
    """Create the pod (with the scheduler's and kubelet's events) or bring its status up to date."""
    namespace = owner["metadata"]["namespace"]
    existing = store.peek("v1", "pods", name, namespace)
    if existing is not None:
        if not (existing.get("spec") or {}).get("nodeName"):  # unschedulable: stays Pending (no binding)
            return existing
        status = _placed(store, existing["spec"], status)
        if existing.get("status") != status:
            return store.set_status("v1", "pods", name, namespace, status)
        return existing
    spec = dict(template.get("spec") or {})
    node, unschedulable = _schedule(store, spec)
    if node is not None:
        spec["nodeName"] = node
        status = _placed(store, spec, status)
    else:
        status = {"phase": "Pending", "qosClass": "BestEffort",
                  "conditions": [{"type": "PodScheduled", "status": "False", "lastTransitionTime": _T,
                                  "reason": "Unschedulable", "message": unschedulable}]}
    labels = {**((template.get("metadata") or {}).get("labels") or {}), **extra_labels}
    pod = store.put("v1", "pods", {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                     "ownerReferences": [_owner(owner)]},
        "spec": spec,
        "status": status,
    })
    if node is None:
        event(store, pod, "FailedScheduling", unschedulable, type_="Warning", component="default-scheduler")
        return pod
    event(store, pod, "Scheduled", f"Successfully assigned {namespace}/{name} to {node}",
          component="default-scheduler")
    for container in spec.get("containers") or []:
        event(store, pod, "Pulled", f'Container image "{container.get("image")}" already present on machine',
              component="kubelet")
        event(store, pod, "Created", f"Created container: {container.get('name')}", component="kubelet")
        event(store, pod, "Started", f"Started container {container.get('name')}", component="kubelet")
    return pod


def reconcile_deployment_pods(store: Store, deployment: Mapping[str, Any], *, ready: bool, failing: bool) -> None:
    """The Deployment's ReplicaSet and pods (ready or not); unready pods with a readiness probe get
    the kubelet's ``Unhealthy`` event when ``failing``."""
    meta, spec = deployment["metadata"], deployment.get("spec") or {}
    namespace, name = meta["namespace"], meta["name"]
    template = spec.get("template") or {}
    pod_hash = template_hash(template)
    rs_name = f"{name}-{pod_hash}"
    replicas = int(spec.get("replicas", 1))
    for rs in store.view("apps/v1", "replicasets", namespace):  # the old ReplicaSets go (their pods by GC)
        owners = rs["metadata"].get("ownerReferences") or []
        if rs["metadata"]["name"] != rs_name and any(o.get("uid") == meta.get("uid") for o in owners):
            store.delete("apps/v1", "replicasets", rs["metadata"]["name"], namespace)
    rs = store.peek("apps/v1", "replicasets", rs_name, namespace)
    labels = {**((template.get("metadata") or {}).get("labels") or {}), "pod-template-hash": pod_hash}
    rs_status = {"replicas": replicas, "fullyLabeledReplicas": replicas, "observedGeneration": 1,
                 **({"readyReplicas": replicas, "availableReplicas": replicas} if ready and replicas else {})}
    if rs is None:
        selector = dict(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), "pod-template-hash": pod_hash}
        rs = store.put("apps/v1", "replicasets", {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": namespace, "labels": labels,
                         "ownerReferences": [_owner(deployment)]},
            "spec": {"replicas": replicas, "selector": selector,
                     "template": {**template, "metadata": {**(template.get("metadata") or {}), "labels": labels}}},
            "status": rs_status,
        })
        event(store, deployment, "ScalingReplicaSet", f"Scaled up replica set {rs_name} from 0 to {replicas}",
              component="deployment-controller")
    elif rs.get("status") != rs_status:
        rs = store.set_status("apps/v1", "replicasets", rs_name, namespace, rs_status)
    status = pod_status(template.get("spec") or {}, ready=ready)
    for i in range(replicas):
        pod_name = f"{rs_name}-{_suffix(f'{rs_name}/{i}')}"
        if store.peek("v1", "pods", pod_name, namespace) is None:
            event(store, rs, "SuccessfulCreate", f"Created pod: {pod_name}", component="replicaset-controller")
        pod = ensure_pod(store, rs, pod_name, template, {"pod-template-hash": pod_hash}, status)
        if failing:
            for container in (template.get("spec") or {}).get("containers") or []:
                message = _readiness_failure(container)
                if message:
                    event(store, pod, "Unhealthy", message, type_="Warning", component="kubelet")


def reconcile_job_pods(store: Store, job: Mapping[str, Any], *, failed: bool, backoff_limit: int) -> None:
    """The Job's pods: one that succeeded, or ``backoffLimit + 1`` that failed (exit code 1)."""
    meta = job["metadata"]
    template = (job.get("spec") or {}).get("template") or {}
    uid = meta.get("uid", "")
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": meta["name"],
              "controller-uid": uid, "job-name": meta["name"]}
    count = backoff_limit + 1 if failed else 1
    terminated = ({"exitCode": 1, "reason": "Error"} if failed else {"exitCode": 0, "reason": "Completed"})
    status = pod_status(template.get("spec") or {}, ready=False, phase="Failed" if failed else "Succeeded",
                        terminated=terminated)
    for i in range(count):
        pod_name = f"{meta['name']}-{_suffix(f'{uid}/{i}')}"
        if store.peek("v1", "pods", pod_name, meta["namespace"]) is None:
            event(store, job, "SuccessfulCreate", f"Created pod: {pod_name}", component="job-controller")
        ensure_pod(store, job, pod_name, template, labels, status)
    if failed:
        event(store, job, "BackoffLimitExceeded", "Job has reached the specified backoff limit", type_="Warning",
              component="job-controller")
    else:
        event(store, job, "Completed", "Job completed", component="job-controller")
