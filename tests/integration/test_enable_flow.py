"""enable / re-run / disable against the API emulator, with a fake controller setting status."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hybrid_knative import addon
from hybrid_knative.config import KubeVersion
from hybrid_knative.errors import ConfigError, DeadlineExceeded, PermanentError
from hybrid_knative.kube.objects import Manifest, ref_of
from hybrid_knative.platform.record import Record, record_path
from hybrid_knative.progress import Status
from hybrid_knative.system import marker
from tests.harness.emulator import FakeController
from tests.integration.conftest import Cluster

QUIET = Status(verbosity=-1)


def plural_of(kind: str) -> str:
    special = {"Endpoints": "endpoints", "Ingress": "ingresses"}
    if kind in special:
        return special[kind]
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith("s"):
        return lower + "es"
    return lower + "s"


def rendered_objects(cluster: Cluster, version: str = "1.34.2") -> list[Manifest]:
    _, rendered = addon.render(cluster.config(), KubeVersion.parse(version), QUIET)
    return [o for r in rendered if r.step.applies for o in r.objects]


def stored(cluster: Cluster, obj: Manifest) -> dict | None:
    ref = ref_of(obj)
    return cluster.server.get(ref.api_version, plural_of(ref.kind), ref.name, ref.namespace)


def write_paths(cluster: Cluster) -> list[str]:
    return [f"{r.method} {r.path}" for r in cluster.server.writes()]


def platform_writes(cluster: Cluster) -> list:  # type: ignore[type-arg]
    """Writes other than the install record's own (ConfigMap + namespace hybrid-knative-system)."""
    return [r for r in cluster.server.writes() if "/namespaces/hybrid-knative-system" not in r.path]


def test_fresh_install(cluster: Cluster) -> None:
    outcome = addon.enable(cluster.config(), QUIET)
    assert outcome.release is not None and outcome.release.line == "1.23"
    objs = rendered_objects(cluster)
    missing = [str(ref_of(o)) for o in objs if stored(cluster, o) is None]
    assert not missing
    assert cluster.marker.is_file()
    cm = cluster.server.get("v1", "configmaps", "config-network", "knative-serving")
    assert cm is not None and cm["data"]["ingress-class"] == "kourier.ingress.networking.knative.dev"
    assert "_example" in cm["data"]  # upstream keys kept: only our key was merged in
    dep = cluster.server.get("v1", "configmaps", "config-deployment", "knative-serving")
    assert dep is not None
    assert "localhost:32000,127.0.0.1:32000" in dep["data"]["registries-skipping-tag-resolving"]
    pdb = cluster.server.get("policy/v1", "poddisruptionbudgets", "activator-pdb", "knative-serving")
    assert pdb is not None and pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]

    applies = [r for r in platform_writes(cluster) if r.content_type == "application/apply-patch+yaml"]
    assert len(applies) == len(objs)
    record_writes = [r for r in cluster.server.writes() if r not in applies and r.method == "PATCH"
                     and "/namespaces/hybrid-knative-system" in r.path]
    steps = len(addon.render(cluster.config(), KubeVersion.parse("1.34.2"), QUIET)[1])
    assert 2 <= len(record_writes) <= steps + 3 < len(objs)  # once per step (+ namespace, undo entries), not per object
    stored_record = cluster.server.get("v1", "configmaps", "hybrid-knative-record", "hybrid-knative-system")
    assert stored_record is not None and "install_serving_core" in stored_record["data"]["record.json"]
    dep = cluster.server.get("apps/v1", "deployments", "activator", "knative-serving")
    assert dep is not None and dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "hybrid-knative"
    assert dep["metadata"]["labels"]["hybrid-knative.dev/component"] == "knative-serving"
    assert all("fieldManager=hybrid-knative" in r.query for r in applies)
    # rank order: the first writes are CRDs; within serving core, webhooks come after the Deployments
    assert all("/customresourcedefinitions/" in r.path for r in applies[:12])
    paths = [r.path for r in applies]
    last_deployment = max(i for i, p in enumerate(paths) if "/deployments/" in p and "knative-serving" in p
                          and "net-kourier" not in p)
    first_webhook = min(i for i, p in enumerate(paths) if "webhookconfigurations" in p)
    assert first_webhook > last_deployment

    record = Record.load(record_path(cluster.state_dir, outcome.kube.server, outcome.kube.context), server="")
    assert len(record.entries) == len(objs)  # plus its undo entries (the CoreDNS block)


def test_rerun_makes_no_writes(cluster: Cluster) -> None:
    addon.enable(cluster.config(), QUIET)
    cluster.server.reset_requests()
    outcome = addon.enable(cluster.config(), QUIET)
    assert cluster.server.writes() == []
    assert outcome.written == 0


def test_rerun_repairs_a_deleted_object(cluster: Cluster) -> None:
    addon.enable(cluster.config(), QUIET)
    cluster.server.delete_object("apps/v1", "deployments", "activator", "knative-serving")
    cluster.server.reset_requests()
    addon.enable(cluster.config(), QUIET)
    assert write_paths(cluster) == [
        "PATCH /apis/apps/v1/namespaces/knative-serving/deployments/activator"]


def test_disable_removes_exactly_what_enable_created(cluster: Cluster) -> None:
    cluster.server.put_object("v1", "configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "user-data", "namespace": "default"}})
    addon.enable(cluster.config(), QUIET)
    cluster.server.reset_requests()
    addon.disable(cluster.config(), QUIET)
    objs = rendered_objects(cluster)
    left = [str(ref_of(o)) for o in objs if stored(cluster, o) is not None]
    assert not left
    assert not cluster.marker.exists()
    assert cluster.server.get("v1", "configmaps", "user-data", "default") is not None
    writes = platform_writes(cluster)
    # first the DNS undo: our block cut out of CoreDNS's Corefile (a patch; the ConfigMap is not ours)
    assert f"{writes[0].method} {writes[0].path}" == "PATCH /api/v1/namespaces/kube-system/configmaps/coredns"
    deletes = [r.path for r in writes[1:]]
    assert all(r.method == "DELETE" for r in writes[1:])
    assert len(deletes) == len(objs)
    assert "webhookconfigurations" in deletes[0]  # reverse rank: webhooks first …
    assert all("/customresourcedefinitions/" in p for p in deletes[-12:])  # … CRDs last
    assert not list(cluster.state_dir.glob("record-*.json"))
    assert cluster.server.get("v1", "namespaces", "hybrid-knative-system") is None  # the record too
    # disabling again is harmless
    cluster.server.reset_requests()
    addon.disable(cluster.config(), QUIET)
    assert cluster.server.writes() == []


def test_disable_from_another_node_removes_everything(cluster: Cluster, tmp_path: Path) -> None:
    """The record is in the cluster: a second control-plane node (no local state at all) disables it all."""
    addon.enable(cluster.config(), QUIET)
    other = cluster.config(state_dir=tmp_path / "node-2" / "state", marker=tmp_path / "node-2" / "enabled")
    assert addon.health(other).release == "1.23"  # status from the other node sees the install too
    addon.disable(other, QUIET)
    assert not [str(ref_of(o)) for o in rendered_objects(cluster) if stored(cluster, o) is not None]
    core = cluster.server.get("v1", "configmaps", "coredns", "kube-system")
    assert core is not None and "hybrid-knative" not in core["data"]["Corefile"]
    assert cluster.server.get("v1", "configmaps", "hybrid-knative-record", "hybrid-knative-system") is None
    kinds = [("apps/v1", "deployments"), ("v1", "services"), ("v1", "configmaps"), ("v1", "namespaces")]
    leftover = [o["metadata"]["name"] for api, plural in kinds for o in cluster.server.list(api, plural)
                if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "hybrid-knative"]
    assert leftover == []


def test_a_half_applied_step_is_recorded(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(controller=FakeController(never_ready={"3scale-kourier-gateway"}))
    with pytest.raises(DeadlineExceeded):
        addon.enable(cluster.config(wait_timeout=1.0), QUIET)
    stored_record = cluster.server.get("v1", "configmaps", "hybrid-knative-record", "hybrid-knative-system")
    assert stored_record is not None and "3scale-kourier-gateway" in stored_record["data"]["record.json"]
    addon.disable(cluster.config(), QUIET)
    assert cluster.server.get("apps/v1", "deployments", "3scale-kourier-gateway", "kourier-system") is None


def test_deployment_never_available_stops_with_a_clear_error(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(controller=FakeController(never_ready={"3scale-kourier-gateway"}))
    with pytest.raises(DeadlineExceeded) as err:  # in install order: nothing else runs beside (test_overlap.py)
        addon.enable(cluster.config(wait_timeout=1.0, overlap=False), QUIET)
    assert "Deployment kourier-system/3scale-kourier-gateway" in err.value.brief
    assert "net-kourier-controller" not in err.value.brief
    assert "ProgressDeadlineExceeded" in (err.value.details or "")
    requests = cluster.server.requests
    first_wait = next(i for i, r in enumerate(requests)
                      if r.method == "GET" and r.path.endswith("/deployments/3scale-kourier-gateway"))
    # after the failed wait only the install record is saved (what the half-done step applied)
    assert not [r for r in requests[first_wait:] if r.method in ("POST", "PUT", "PATCH", "DELETE")
                and "/namespaces/hybrid-knative-system" not in r.path]
    cm = cluster.server.get("v1", "configmaps", "config-network", "knative-serving")
    assert cm is not None and "ingress-class" not in cm["data"]
    assert marker.read(cluster.marker) == marker.INCOMPLETE  # MicroK8s: disable runs


def test_partial_enable_then_disable_cleans_up(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(controller=FakeController(never_ready={"net-kourier-controller"}))
    with pytest.raises(DeadlineExceeded):
        addon.enable(cluster.config(wait_timeout=1.0), QUIET)
    assert cluster.server.get("apps/v1", "deployments", "activator", "knative-serving") is not None
    addon.disable(cluster.config(), QUIET)
    left = [str(ref_of(o)) for o in rendered_objects(cluster) if stored(cluster, o) is not None]
    assert not left


def test_webhook_not_ready_at_first(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(controller=FakeController(endpoints_after_lists=3))
    addon.enable(cluster.config(), QUIET)
    requests = cluster.server.requests
    lists = [i for i, r in enumerate(requests) if r.method == "GET"
             and r.path.endswith("/namespaces/knative-serving/endpointslices")]  # Serving's webhook, not Eventing's
    assert len(lists) >= 4  # three answered "no endpoints", the fourth saw the webhook ready
    patch = next(i for i, r in enumerate(requests)
                 if r.method == "PATCH" and r.path.endswith("/configmaps/config-network")
                 and r.content_type == "application/merge-patch+json")
    assert patch > lists[-1]


def test_old_server_is_refused_before_any_write(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(version="1.31.4")
    with pytest.raises(PermanentError, match="too old"):
        addon.enable(cluster.config(), QUIET)
    assert cluster.server.writes() == []
    assert not cluster.marker.exists()


def test_server_at_1_33_gets_knative_1_21(make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster(version="1.33.5")
    outcome = addon.enable(cluster.config(), QUIET)
    assert outcome.release is not None and outcome.release.line == "1.21"
    dep = cluster.server.get("apps/v1", "deployments", "controller", "knative-serving")
    assert dep is not None and dep["metadata"]["labels"]["app.kubernetes.io/version"] == "1.21.3"
    gw = cluster.server.get("apps/v1", "deployments", "3scale-kourier-gateway", "kourier-system")
    assert gw is not None
    assert gw["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/envoyproxy/envoy:v1.36.4"


def test_foreign_knative_is_not_taken_over(cluster: Cluster) -> None:
    # a Knative someone installed with `kubectl apply` (its fields owned by kubectl's field manager)
    kubectl = "kubectl-client-side-apply"
    cluster.server.put_object("v1", "namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "knative-serving"}}, manager=kubectl)
    cluster.server.put_object("v1", "serviceaccounts", {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
            "name": "controller", "namespace": "knative-serving",
            "labels": {"app.kubernetes.io/name": "knative-serving", "app.kubernetes.io/version": "1.20.0"}}},
        manager=kubectl)
    cluster.server.reset_requests()
    with pytest.raises(ConfigError, match="not by hybrid-knative"):
        addon.enable(cluster.config(), QUIET)
    assert cluster.server.writes() == []
    addon.enable(cluster.config(adopt=True), QUIET)  # server-side apply must force: kubectl owns the label
    assert cluster.marker.is_file()
    sa = cluster.server.get("v1", "serviceaccounts", "controller", "knative-serving")
    assert sa is not None and sa["metadata"]["labels"]["app.kubernetes.io/version"] == "1.23.0"
    owned = {e["manager"]: e["fieldsV1"]["f:metadata"].get("f:labels", {}) for e in sa["metadata"]["managedFields"]}
    assert "f:app.kubernetes.io/version" in owned["hybrid-knative"]
    assert "f:app.kubernetes.io/version" not in owned.get(kubectl, {})


def test_health_after_enable(cluster: Cluster) -> None:
    addon.enable(cluster.config(), QUIET)
    health = addon.health(cluster.config())
    assert health.enabled and health.healthy and health.release == "1.23"
    assert {c.name for c in health.components} >= {"knative-serving/webhook", "kourier-system/3scale-kourier-gateway"}
    cluster.server.set_status("apps/v1", "deployments", "webhook", "knative-serving", {
        "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]})
    cluster.controller.never_ready.add("webhook")
    health = addon.health(cluster.config())
    assert not health.healthy
    bad = [c for c in health.components if not c.ready]
    assert [c.name for c in bad] == ["knative-serving/webhook"]
    assert "=False" in bad[0].detail  # the controller's own words: reason and message


def test_half_way_enable_leaves_an_incomplete_marker_that_disable_and_repair_handle(
        make_cluster: Callable[..., Cluster]) -> None:
    """MicroK8s runs our disable script only while the marker exists, and our enable script only while it
    does not: a half-way enable must leave it (as "incomplete") so `microk8s disable` can take it back."""
    cluster = make_cluster(controller=FakeController(never_ready={"3scale-kourier-gateway"}))
    with pytest.raises(DeadlineExceeded):
        addon.enable(cluster.config(wait_timeout=1.0), QUIET)
    assert marker.read(cluster.marker) == marker.INCOMPLETE
    health = addon.health(cluster.config())
    assert health.state == marker.INCOMPLETE and health.enabled and not health.healthy
    assert cluster.server.get("v1", "namespaces", "knative-serving") is not None
    addon.disable(cluster.config(), QUIET)  # what `microk8s disable hybrid-knative` now runs
    assert not cluster.marker.exists()
    assert cluster.server.get("v1", "namespaces", "knative-serving") is None
    assert addon.health(cluster.config()).state is None


def test_no_verify_marks_unverified(cluster: Cluster) -> None:
    addon.enable(cluster.config(verify=False), QUIET)
    assert marker.read(cluster.marker) == marker.UNVERIFIED
    assert "state unverified" in cluster.marker.read_text()
