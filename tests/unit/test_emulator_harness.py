"""Tests of the Kubernetes API emulator harness, driven by the real (sync) lightkube client."""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightkube
import pytest
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec, ServicePort, ServiceSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Namespace, Service
from lightkube.resources.discovery_v1 import EndpointSlice
from lightkube.types import PatchType
from tests.harness.emulator import DEFAULT_NAMESPACES, ApiServer, FakeController, RecordedRequest, Store

NS = "knative-serving"
CRD_NAME = "services.serving.knative.dev"
Connect = Callable[[ApiServer], lightkube.Client]


# --------------------------------------------------------------------------------------------
# helpers & fixtures
# --------------------------------------------------------------------------------------------


def call(api: ApiServer, method: str, path: str, body: Any = None, content_type: str | None = None):
    """A raw HTTP request (stdlib only): returns (status, content-type, decoded JSON)."""
    url = urllib.parse.urlsplit(api.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), json.loads(resp.read() or b"null")
    finally:
        conn.close()


def make_client(api: ApiServer, tmp_path: Path) -> lightkube.Client:
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    return lightkube.Client(config=lightkube.KubeConfig.from_file(kubeconfig), field_manager="hybrid-knative")


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer(namespaces=[NS]) as server:
        yield server


@pytest.fixture
def connect(tmp_path: Path) -> Iterator[Connect]:
    """A factory of lightkube clients for a server; the clients are closed at teardown."""
    clients: list[lightkube.Client] = []

    def connect(api: ApiServer) -> lightkube.Client:
        clients.append(make_client(api, tmp_path / f"client-{len(clients)}"))
        return clients[-1]

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def client(api: ApiServer, connect: Connect) -> lightkube.Client:
    return connect(api)


def configmap(name: str, namespace: str = NS, labels: dict[str, str] | None = None, **data: str) -> ConfigMap:
    return ConfigMap(metadata=ObjectMeta(name=name, namespace=namespace, labels=labels), data=data)


def crd(name: str = CRD_NAME) -> dict[str, Any]:
    plural, group = name.split(".", 1)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Service", "plural": plural, "singular": "service", "shortNames": ["ksvc"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def deployment(name: str, labels: dict[str, str], namespace: str = NS, replicas: int = 1) -> Deployment:
    return Deployment(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=DeploymentSpec(
            replicas=replicas,
            selector=LabelSelector(matchLabels=labels),
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=labels),
                spec=PodSpec(containers=[Container(name=name, image="example.com/img:1.0")]),
            ),
        ),
    )


def service(name: str, selector: dict[str, str], namespace: str = NS) -> Service:
    return Service(
        metadata=ObjectMeta(name=name, namespace=namespace),
        spec=ServiceSpec(
            selector=selector,
            ports=[ServicePort(name="https-webhook", port=443, targetPort=8443)],
        ),
    )


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """{type: (status, reason)} of an object's (or of a bare status dict's) conditions."""
    status = obj.get("status", obj)
    return {c["type"]: (c["status"], c.get("reason")) for c in status["conditions"]}


# --------------------------------------------------------------------------------------------
# server basics
# --------------------------------------------------------------------------------------------


def test_kubeconfig_is_loadable_by_lightkube(api: ApiServer, tmp_path: Path) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", api.url)
    path = api.write_kubeconfig(tmp_path / "sub" / "config", context="ctx")
    config = lightkube.KubeConfig.from_file(path)
    single = config.get()
    assert config.current_context == "ctx"
    assert single.cluster.server == api.url
    assert single.context.namespace == "default"


def test_version_endpoints() -> None:
    with ApiServer(namespaces=[NS]) as api:
        for path in ("/version", "/version/"):
            status, content_type, body = call(api, "GET", path)
            assert (status, content_type) == (200, "application/json")
            assert body["major"] == "1"
            assert body["minor"] == "34"
            assert body["gitVersion"] == "v1.34.2"
            assert body["platform"] == "linux/amd64"
    with ApiServer(version="1.31.7") as api:
        _, _, body = call(api, "GET", "/version")
        assert (body["major"], body["minor"], body["gitVersion"]) == ("1", "31", "v1.31.7")


def test_discovery_group_versions(api: ApiServer) -> None:
    _, _, core = call(api, "GET", "/api/v1")
    assert core["groupVersion"] == "v1"
    kinds = {r["name"]: r["kind"] for r in core["resources"]}
    assert kinds["configmaps"] == "ConfigMap"
    assert kinds["namespaces"] == "Namespace"
    _, _, apps = call(api, "GET", "/apis/apps/v1")
    assert apps["groupVersion"] == "apps/v1"
    assert {"name": "deployments/status"}.items() <= next(
        r for r in apps["resources"] if r["name"] == "deployments/status"
    ).items()
    status, _, _ = call(api, "GET", "/apis/gateway.networking.k8s.io/v1")
    assert status == 404


def test_unknown_url_is_a_json_404(api: ApiServer) -> None:
    status, content_type, body = call(api, "GET", "/no/such/thing")
    assert (status, content_type) == (404, "application/json")
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "NotFound", 404)


# --------------------------------------------------------------------------------------------
# CRUD through lightkube
# --------------------------------------------------------------------------------------------


def test_apply_creates_a_missing_object(api: ApiServer, client: lightkube.Client) -> None:
    created = client.apply(configmap("cfg", a="1"))
    assert created.data == {"a": "1"}
    assert created.metadata.namespace == NS
    assert created.metadata.uid
    assert created.metadata.creationTimestamp is not None
    assert int(created.metadata.resourceVersion) > 0

    stored = api.get("v1", "configmaps", "cfg", NS)
    assert stored is not None
    assert stored["data"] == {"a": "1"}
    assert stored["kind"] == "ConfigMap"
    assert stored["metadata"]["uid"] == created.metadata.uid


def test_apply_status_codes_over_raw_http(api: ApiServer) -> None:
    path = f"/api/v1/namespaces/{NS}/configmaps/raw?fieldManager=test&force=true"
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "raw"}, "data": {"k": "v"}}
    status, content_type, created = call(api, "PATCH", path, body, "application/apply-patch+yaml")
    assert (status, content_type) == (201, "application/json")
    assert created["metadata"]["namespace"] == NS
    status, _, _ = call(api, "PATCH", path, body, "application/apply-patch+yaml")
    assert status == 200
    # SSA without a field manager is rejected, as by a real apiserver.
    status, _, error = call(api, "PATCH", path.split("?")[0], body, "application/apply-patch+yaml")
    assert (status, error["reason"]) == (400, "BadRequest")


def test_reapply_merges_and_tracks_resource_versions(
    api: ApiServer, client: lightkube.Client, connect: Connect
) -> None:
    first = client.apply(configmap("cfg", labels={"app": "x"}, a="1"))
    # another manager's fields are kept; the fields this manager stopped applying are removed
    connect(api).apply(configmap("cfg", c="3"), field_manager="other")
    second = client.apply(configmap("cfg", b="2"))
    assert second.data == {"b": "2", "c": "3"}
    assert second.metadata.labels is None
    assert second.metadata.uid == first.metadata.uid
    assert int(second.metadata.resourceVersion) > int(first.metadata.resourceVersion)
    third = client.apply(configmap("cfg", b="2"))  # a no-op: the resourceVersion stays
    assert third.metadata.resourceVersion == second.metadata.resourceVersion


def test_merge_strategic_and_json_patches(client: lightkube.Client) -> None:
    client.apply(configmap("cfg", a="1", b="2"))
    patched = client.patch(ConfigMap, "cfg", {"data": {"a": None, "c": "3"}}, namespace=NS, patch_type=PatchType.MERGE)
    assert patched.data == {"b": "2", "c": "3"}
    patched = client.patch(ConfigMap, "cfg", {"data": {"d": "4"}}, namespace=NS)  # strategic (lightkube default)
    assert patched.data == {"b": "2", "c": "3", "d": "4"}
    ops = [{"op": "remove", "path": "/data/b"}, {"op": "add", "path": "/data/e", "value": "5"}]
    patched = client.patch(ConfigMap, "cfg", ops, namespace=NS, patch_type=PatchType.JSON)
    assert patched.data == {"c": "3", "d": "4", "e": "5"}


def test_patch_of_a_missing_object_is_404(client: lightkube.Client) -> None:
    for patch_type in (PatchType.MERGE, PatchType.STRATEGIC):
        with pytest.raises(lightkube.ApiError) as exc:
            client.patch(ConfigMap, "nope", {"data": {"a": "1"}}, namespace=NS, patch_type=patch_type)
        assert exc.value.status.code == 404
        assert exc.value.status.reason == "NotFound"


def test_get_of_a_missing_object_is_api_error_404(api: ApiServer, client: lightkube.Client) -> None:
    with pytest.raises(lightkube.ApiError) as exc:
        client.get(ConfigMap, "nope", namespace=NS)
    assert exc.value.status.code == 404
    assert exc.value.status.reason == "NotFound"
    assert exc.value.status.message == 'configmaps "nope" not found'
    with pytest.raises(lightkube.ApiError) as exc:
        client.get(Deployment, "nope", namespace=NS)
    assert exc.value.status.message == 'deployments.apps "nope" not found'
    status, content_type, _ = call(api, "GET", f"/api/v1/namespaces/{NS}/configmaps/nope")
    assert (status, content_type) == (404, "application/json")  # exactly, without "; charset=utf-8"


def test_create_conflict_is_409(client: lightkube.Client) -> None:
    client.create(configmap("cfg", a="1"))
    with pytest.raises(lightkube.ApiError) as exc:
        client.create(configmap("cfg", a="2"))
    assert (exc.value.status.code, exc.value.status.reason) == (409, "AlreadyExists")


def test_replace_and_optimistic_concurrency(client: lightkube.Client) -> None:
    stale = client.create(configmap("cfg", a="1"))
    fresh = client.get(ConfigMap, "cfg", namespace=NS)
    fresh.data = {"a": "2"}
    replaced = client.replace(fresh)
    assert replaced.data == {"a": "2"}
    stale.data = {"a": "3"}
    with pytest.raises(lightkube.ApiError) as exc:
        client.replace(stale)
    assert (exc.value.status.code, exc.value.status.reason) == (409, "Conflict")
    with pytest.raises(lightkube.ApiError) as exc:
        client.replace(configmap("missing", a="1"))
    assert exc.value.status.code == 404


def test_delete(api: ApiServer, client: lightkube.Client) -> None:
    client.apply(configmap("cfg", a="1"))
    client.delete(ConfigMap, "cfg", namespace=NS)
    assert api.get("v1", "configmaps", "cfg", NS) is None
    with pytest.raises(lightkube.ApiError) as exc:
        client.delete(ConfigMap, "cfg", namespace=NS)
    assert exc.value.status.code == 404
    with pytest.raises(lightkube.ApiError):
        client.get(ConfigMap, "cfg", namespace=NS)


def test_delete_respects_finalizers(api: ApiServer, client: lightkube.Client) -> None:
    api.put_object("v1", "configmaps", {"metadata": {"name": "fin", "namespace": NS, "finalizers": ["x/y"]}})
    client.delete(ConfigMap, "fin", namespace=NS)
    pending = api.get("v1", "configmaps", "fin", NS)
    assert pending is not None
    assert pending["metadata"]["deletionTimestamp"]
    client.patch(ConfigMap, "fin", {"metadata": {"finalizers": None}}, namespace=NS, patch_type=PatchType.MERGE)
    assert api.get("v1", "configmaps", "fin", NS) is None


def test_namespaces_and_cascading_deletion(api: ApiServer, client: lightkube.Client) -> None:
    client.create(Namespace(metadata=ObjectMeta(name="team")))
    ns = client.get(Namespace, "team")
    assert ns.metadata.namespace is None
    assert ns.metadata.labels == {"kubernetes.io/metadata.name": "team"}
    assert ns.status.phase == "Active"
    assert [n.metadata.name for n in client.list(Namespace)] == sorted(["team", NS, *DEFAULT_NAMESPACES])
    client.create(Namespace(metadata=ObjectMeta(name="other")))
    client.apply(configmap("cfg", namespace="team", a="1"))
    client.apply(configmap("cfg", namespace="other", a="1"))
    client.delete(Namespace, "team")
    terminating = api.get("v1", "namespaces", "team")  # Terminating until the namespace controller ran
    assert terminating is not None and terminating["status"]["phase"] == "Terminating"
    assert terminating["spec"]["finalizers"] == ["kubernetes"] and terminating["metadata"]["deletionTimestamp"]
    with pytest.raises(lightkube.ApiError) as err:  # the controllers run before each request is served
        client.get(Namespace, "team")
    assert err.value.status.code == 404
    assert api.get("v1", "namespaces", "team") is None
    assert api.get("v1", "configmaps", "cfg", "team") is None
    assert api.get("v1", "configmaps", "cfg", "other") is not None


def test_lists_have_kind_and_support_selectors(api: ApiServer, client: lightkube.Client) -> None:
    client.apply(configmap("a1", labels={"app": "a", "tier": "web"}))
    client.apply(configmap("a2", labels={"app": "a", "tier": "db"}))
    client.apply(configmap("b1", labels={"app": "b"}))
    client.create(Namespace(metadata=ObjectMeta(name="elsewhere")))
    client.apply(configmap("c1", namespace="elsewhere", labels={"app": "a"}))

    status, _, body = call(api, "GET", f"/api/v1/namespaces/{NS}/configmaps")
    assert status == 200
    assert (body["kind"], body["apiVersion"]) == ("ConfigMapList", "v1")
    assert [i["metadata"]["name"] for i in body["items"]] == ["a1", "a2", "b1"]
    _, _, body = call(api, "GET", "/apis/apps/v1/deployments")
    assert (body["kind"], body["apiVersion"], body["items"]) == ("DeploymentList", "apps/v1", [])

    def names(**kwargs: Any) -> list[str]:
        return sorted(cm.metadata.name for cm in client.list(ConfigMap, **kwargs))

    assert names(namespace=NS, labels={"app": "a"}) == ["a1", "a2"]
    assert names(namespace=NS, labels={"app": "a", "tier": "db"}) == ["a2"]
    assert names(namespace="*", labels={"app": "a"}) == ["a1", "a2", "c1"]
    assert names(namespace=NS, fields={"metadata.name": "b1"}) == ["b1"]

    def raw(selector: str) -> list[str]:
        query = urllib.parse.urlencode({"labelSelector": selector})
        _, _, body = call(api, "GET", f"/api/v1/namespaces/{NS}/configmaps?{query}")
        return [i["metadata"]["name"] for i in body["items"]]

    assert raw("app=a,tier!=db") == ["a1"]
    assert raw("app in (a, b),!tier") == ["b1"]
    assert raw("tier notin (web)") == ["a2", "b1"]
    assert raw("tier") == ["a1", "a2"]
    assert raw("app==b") == ["b1"]


def test_deletecollection_by_label(api: ApiServer, client: lightkube.Client) -> None:
    client.apply(configmap("a1", labels={"app": "a"}))
    client.apply(configmap("b1", labels={"app": "b"}))
    client.apply(configmap("c1", labels={"app": "c"}))
    status, _, body = call(api, "DELETE", f"/api/v1/namespaces/{NS}/configmaps?labelSelector=app%3Da")
    assert (status, [i["metadata"]["name"] for i in body["items"]]) == (200, ["a1"])
    assert [cm["metadata"]["name"] for cm in api.list("v1", "configmaps", NS)] == ["b1", "c1"]
    client.deletecollection(ConfigMap, namespace=NS, dry_run=True)
    assert [cm["metadata"]["name"] for cm in api.list("v1", "configmaps", NS)] == ["b1", "c1"]
    client.deletecollection(ConfigMap, namespace=NS)
    assert api.list("v1", "configmaps", NS) == []


def test_status_subresource_semantics(api: ApiServer, client: lightkube.Client) -> None:
    dep = deployment("web", {"app": "web"})
    created = client.create(dep)
    assert created.status is None  # no controller: nothing writes status
    assert created.metadata.generation == 1
    client.patch(Deployment, "web", {"status": {"replicas": 7}}, namespace=NS, patch_type=PatchType.MERGE)
    assert api.get("apps/v1", "deployments", "web", NS).get("status") is None  # ignored on the main resource
    client.patch(Deployment.Status, "web", {"status": {"replicas": 7}}, namespace=NS, patch_type=PatchType.MERGE)
    stored = api.get("apps/v1", "deployments", "web", NS)
    assert stored["status"] == {"replicas": 7}
    assert stored["metadata"]["generation"] == 1  # status writes do not bump the generation
    client.patch(Deployment, "web", {"spec": {"replicas": 3}}, namespace=NS, patch_type=PatchType.MERGE)
    assert api.get("apps/v1", "deployments", "web", NS)["metadata"]["generation"] == 2


def test_services_get_cluster_ips(client: lightkube.Client) -> None:
    svc = client.create(service("webhook", {"app": "webhook"}))
    assert svc.spec.type == "ClusterIP"
    assert re.fullmatch(r"10\.152\.183\.\d+", svc.spec.clusterIP)


def test_generic_custom_resources(api: ApiServer, client: lightkube.Client) -> None:
    KService = create_namespaced_resource("serving.knative.dev", "v1", "Service", "services")
    ksvc = KService(metadata=ObjectMeta(name="hello", namespace="default"), spec={"template": {"spec": {}}})
    with pytest.raises(lightkube.ApiError) as exc:
        client.apply(ksvc)  # the CRD is not installed yet
    assert exc.value.status.code == 404

    client.apply(CustomResourceDefinition.from_dict(crd()))
    applied = client.apply(ksvc)
    assert applied.metadata.uid
    fetched = client.get(KService, "hello", namespace="default")
    assert fetched.spec == {"template": {"spec": {}}}
    assert fetched.kind == "Service"
    assert [o.metadata.name for o in client.list(KService, namespace="default")] == ["hello"]
    _, _, body = call(api, "GET", "/apis/serving.knative.dev/v1/namespaces/default/services")
    assert body["kind"] == "ServiceList"
    _, _, discovery = call(api, "GET", "/apis/serving.knative.dev/v1")
    assert {r["name"] for r in discovery["resources"]} == {"services", "services/status"}


def test_watch_streams_events(client: lightkube.Client) -> None:
    client.apply(configmap("first", a="1"))
    events = client.watch(ConfigMap, namespace=NS)
    try:
        op, obj = next(events)
        assert (op, obj.metadata.name) == ("ADDED", "first")
        client.apply(configmap("second", a="1"))
        op, obj = next(events)
        assert (op, obj.metadata.name) == ("ADDED", "second")
        client.apply(configmap("second", a="2"))
        op, obj = next(events)
        assert (op, obj.metadata.name, obj.data) == ("MODIFIED", "second", {"a": "2"})
        client.delete(ConfigMap, "second", namespace=NS)
        op, obj = next(events)
        assert (op, obj.metadata.name) == ("DELETED", "second")
    finally:
        events.close()


def test_requests_and_writes_are_recorded(api: ApiServer, client: lightkube.Client) -> None:
    client.apply(configmap("cfg", a="1"))
    client.get(ConfigMap, "cfg", namespace=NS)
    client.delete(ConfigMap, "cfg", namespace=NS)
    path = f"/api/v1/namespaces/{NS}/configmaps/cfg"
    assert api.requests == [
        RecordedRequest("PATCH", path, "fieldManager=hybrid-knative", "application/apply-patch+yaml"),
        RecordedRequest("GET", path, "", None),
        RecordedRequest("DELETE", path, "", None),
    ]
    assert [(w.method, w.path) for w in api.writes()] == [("PATCH", path), ("DELETE", path)]
    api.reset_requests()
    assert api.requests == []
    assert api.writes() == []
    api.get("v1", "configmaps", "cfg", NS)  # direct access is not an HTTP request
    assert api.requests == []


def test_direct_state_access(api: ApiServer, client: lightkube.Client) -> None:
    api.put_object("apps/v1", "deployments", deployment("web", {"app": "web"}).to_dict())
    seeded = api.get("apps/v1", "deployments", "web", NS)
    assert seeded["metadata"]["uid"]
    assert seeded["metadata"]["namespace"] == NS
    api.set_status("apps/v1", "deployments", "web", NS, {"replicas": 1, "readyReplicas": 1})
    assert client.get(Deployment, "web", namespace=NS).status.readyReplicas == 1
    assert [d["metadata"]["name"] for d in api.list("apps/v1", "deployments")] == ["web"]
    assert api.list("apps/v1", "deployments", "elsewhere") == []
    seeded["metadata"]["name"] = "mutated"  # returned objects are copies
    assert api.get("apps/v1", "deployments", "web", NS)["metadata"]["name"] == "web"


def test_seeding_before_start_survives(connect: Connect) -> None:
    api = ApiServer(namespaces=[NS])
    api.put_object("v1", "configmaps", configmap("seed", a="1").to_dict())
    with api:
        client = connect(api)
        assert client.get(ConfigMap, "seed", namespace=NS).data == {"a": "1"}
    assert api.get("v1", "configmaps", "seed", NS) is not None


# --------------------------------------------------------------------------------------------
# FakeController
# --------------------------------------------------------------------------------------------


def test_controller_establishes_crds(connect: Connect) -> None:
    with ApiServer(namespaces=[NS], controller=FakeController()) as api:
        client = connect(api)
        client.apply(CustomResourceDefinition.from_dict(crd()))
        established = client.wait(CustomResourceDefinition, CRD_NAME, for_conditions=["Established"])
        assert established.status.acceptedNames.kind == "Service"
        stored = api.get("apiextensions.k8s.io/v1", "customresourcedefinitions", CRD_NAME)
        assert conditions(stored) == {
            "Established": ("True", "InitialNamesAccepted"),
            "NamesAccepted": ("True", "NoConflicts"),
        }
        assert stored["status"]["acceptedNames"]["plural"] == "services"
        assert stored["status"]["storedVersions"] == ["v1"]


def test_never_ready_crd_is_not_established_nor_served(connect: Connect) -> None:
    with ApiServer(namespaces=[NS], controller=FakeController(never_ready={CRD_NAME})) as api:
        client = connect(api)
        client.apply(CustomResourceDefinition.from_dict(crd()))
        got = client.get(CustomResourceDefinition, CRD_NAME)
        assert {c.type: c.status for c in got.status.conditions}["Established"] == "False"
        KService = create_namespaced_resource("serving.knative.dev", "v1", "Service", "services")
        with pytest.raises(lightkube.ApiError) as exc:
            client.apply(KService(metadata=ObjectMeta(name="x", namespace="default"), spec={}))
        assert exc.value.status.code == 404


def test_deployment_becomes_available_after_reads(connect: Connect) -> None:
    with ApiServer(namespaces=[NS], controller=FakeController(ready_after_reads={"webhook": 2})) as api:
        client = connect(api)
        client.apply(deployment("webhook", {"app": "webhook"}, replicas=2))
        client.apply(deployment("other", {"app": "other"}))
        seen = []
        for _ in range(3):
            dep = client.get(Deployment, "webhook", namespace=NS)
            seen.append({c.type: c.status for c in dep.status.conditions}["Available"])
        assert seen == ["False", "False", "True"]
        status = api.get("apps/v1", "deployments", "webhook", NS)["status"]
        assert {k: v for k, v in status.items() if k != "conditions"} == {
            "observedGeneration": 1,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
        }
        assert conditions(status) == {
            "Available": ("True", "MinimumReplicasAvailable"),
            "Progressing": ("True", "NewReplicaSetAvailable"),
        }
        other = client.get(Deployment, "other", namespace=NS)  # no read threshold: ready at once
        assert {c.type: c.status for c in other.status.conditions}["Available"] == "True"


def test_never_ready_deployment(connect: Connect) -> None:
    with ApiServer(namespaces=[NS], controller=FakeController(never_ready={"webhook"})) as api:
        client = connect(api)
        client.apply(deployment("webhook", {"app": "webhook"}))
        for _ in range(5):
            dep = client.get(Deployment, "webhook", namespace=NS)
        assert conditions(dep.status.to_dict()) == {
            "Available": ("False", "MinimumReplicasUnavailable"),
            "Progressing": ("False", "ProgressDeadlineExceeded"),
        }
        assert not dep.status.readyReplicas
        assert api.get("apps/v1", "deployments", "webhook", NS)["status"]["unavailableReplicas"] == 1


def test_endpointslices_appear_after_lists(connect: Connect) -> None:
    with ApiServer(namespaces=[NS], controller=FakeController(endpoints_after_lists=2)) as api:
        client = connect(api)
        client.apply(deployment("webhook", {"app": "webhook", "role": "wh"}))
        client.apply(service("webhook", {"app": "webhook"}))
        client.apply(service("orphan", {"app": "nothing-matches"}))

        def slices(name: str) -> list[EndpointSlice]:
            return list(client.list(EndpointSlice, namespace=NS, labels={"kubernetes.io/service-name": name}))

        assert slices("webhook") == []
        assert slices("webhook") == []
        found = slices("webhook")
        assert len(found) == 1
        (eps,) = found
        assert re.fullmatch(r"webhook-[a-z0-9]{5}", eps.metadata.name)
        assert eps.metadata.labels["kubernetes.io/service-name"] == "webhook"
        assert eps.addressType == "IPv4"
        assert len(eps.endpoints) == 1
        assert re.fullmatch(r"10\.1\.0\.\d+", eps.endpoints[0].addresses[0])
        assert eps.endpoints[0].conditions.ready is True
        assert [(p.name, p.port, p.protocol) for p in eps.ports] == [("https-webhook", 8443, "TCP")]
        assert slices("orphan") == []
        legacy = api.get("v1", "endpoints", "webhook", NS)
        assert legacy["subsets"][0]["addresses"] == [{"ip": eps.endpoints[0].addresses[0]}]
        # The slice is garbage-collected with its service.
        client.delete(Service, "webhook", namespace=NS)
        assert slices("webhook") == []


def test_endpointslices_wait_for_a_ready_deployment(connect: Connect) -> None:
    with ApiServer(namespaces=[NS], controller=FakeController(ready_after_reads={"webhook": 1})) as api:
        client = connect(api)
        client.apply(deployment("webhook", {"app": "webhook"}))
        client.apply(service("webhook", {"app": "webhook"}))
        assert api.list("discovery.k8s.io/v1", "endpointslices", NS) == []
        assert list(client.list(EndpointSlice, namespace=NS)) == []
        client.get(Deployment, "webhook", namespace=NS)
        assert len(list(client.list(EndpointSlice, namespace=NS))) == 1


def test_controller_hooks(connect: Connect) -> None:
    seen: list[tuple[str | None, str | None]] = []

    def hook(store: Store) -> None:
        if store.request is not None:
            seen.append((store.request.verb, store.request.plural))
        if store.get("v1", "configmaps", "made-by-hook", NS) is None:
            store.put("v1", "configmaps", configmap("made-by-hook", a="1").to_dict())

    controller = FakeController(hooks=[hook])
    with ApiServer(namespaces=[NS], controller=controller) as api:
        client = connect(api)
        assert client.get(ConfigMap, "made-by-hook", namespace=NS).data == {"a": "1"}
        list(client.list(ConfigMap, namespace=NS))
        assert seen == [("get", "configmaps"), ("list", "configmaps")]
        api.reconcile()  # explicit runs have no request
        assert seen[-1] == ("list", "configmaps")


def test_emulator_errors_fail_loudly(connect: Connect) -> None:
    def broken(store: Store) -> None:
        raise ZeroDivisionError("boom")

    server = ApiServer(namespaces=[NS], controller=FakeController(hooks=[broken]))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"), server as api:
        client = connect(api)
        with pytest.raises(lightkube.ApiError) as exc:
            client.get(ConfigMap, "any", namespace=NS)
        assert exc.value.status.code == 500
        assert "boom" in exc.value.status.message


def test_other_discovery_and_health_endpoints(api: ApiServer, client: lightkube.Client) -> None:
    client.apply(CustomResourceDefinition.from_dict(crd()))
    status, content_type, apis = call(api, "GET", "/apis")
    assert (status, content_type, apis["kind"]) == (200, "application/json", "APIGroupList")
    groups = {g["name"]: g for g in apis["groups"]}
    assert "apps" in groups
    assert groups["serving.knative.dev"]["preferredVersion"]["groupVersion"] == "serving.knative.dev/v1"
    _, _, group = call(api, "GET", "/apis/serving.knative.dev")
    assert (group["kind"], group["name"]) == ("APIGroup", "serving.knative.dev")
    _, _, core = call(api, "GET", "/api")
    assert core["versions"] == ["v1"]
    url = urllib.parse.urlsplit(api.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    conn.request("GET", "/readyz")
    assert conn.getresponse().read() == b"ok"
    conn.close()
