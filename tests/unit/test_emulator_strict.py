"""The emulator refuses what a real apiserver refuses, and cleans up what a real control plane cleans up.

Each table cites the documented Kubernetes behaviour it follows:

* server-side apply: https://kubernetes.io/docs/reference/using-api/server-side-apply/
  (managedFields, "Conflicts", "Merge strategy": fields dropped from a manager's re-apply are removed)
* namespaces: https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/ and
  https://kubernetes.io/docs/tasks/administer-cluster/namespaces/ (Terminating, spec.finalizers)
* validation: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/ (DNS-1123 /
  DNS-1035 names), https://kubernetes.io/docs/concepts/services-networking/service/ (ports, types,
  clusterIP immutable), https://kubernetes.io/docs/concepts/configuration/configmap/ (keys),
  https://kubernetes.io/docs/concepts/workloads/controllers/job/ (restartPolicy, template immutable),
  https://kubernetes.io/docs/concepts/workloads/controllers/deployment/ (selector matches labels,
  immutable in apps/v1)
* finalizers and garbage collection: https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/,
  https://kubernetes.io/docs/concepts/architecture/garbage-collection/
* CRD deletion: https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#delete-a-customresourcedefinition
* events and probes: https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from tests.harness.emulator import ApiServer, FakeController

NS = "apps"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


def call(api: ApiServer, method: str, path: str, body: Any = None, content_type: str = "application/json",
         **params: str) -> tuple[int, Any]:
    url = urllib.parse.urlsplit(api.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    try:
        conn.request(method, path + query, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": content_type})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def cm_path(name: str, namespace: str = NS) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


def apply_cm(api: ApiServer, manager: str, data: dict[str, str], *, force: bool = False,
             name: str = "cfg") -> tuple[int, Any]:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS}, "data": data}
    params = {"fieldManager": manager, **({"force": "true"} if force else {})}
    return call(api, "PATCH", cm_path(name), body, APPLY, **params)


def owners(obj: dict[str, Any]) -> dict[str, set[str]]:
    """{manager: owned data keys} from managedFields."""
    found: dict[str, set[str]] = {}
    for entry in obj["metadata"].get("managedFields") or []:
        keys = {k[2:] for k in (entry["fieldsV1"].get("f:data") or {})}
        found.setdefault(entry["manager"], set()).update(keys)
    return found


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with ApiServer(namespaces=[NS], controller=FakeController()) as server:
        yield server


# --------------------------------------------------------------------------------------------
# server-side apply
# --------------------------------------------------------------------------------------------

# (steps: [(manager, data, force, expected status)], expected final data, expected owners)
SSA_CASES = {
    "create records Apply managedFields": (
        [("a", {"x": "1"}, False, 201)], {"x": "1"}, {"a": {"x"}}),
    "same value from another manager is shared": (
        [("a", {"x": "1"}, False, 201), ("b", {"x": "1"}, False, 200)], {"x": "1"}, {"a": {"x"}, "b": {"x"}}),
    "a different value from another manager conflicts": (
        [("a", {"x": "1"}, False, 201), ("b", {"x": "2"}, False, 409)], {"x": "1"}, {"a": {"x"}}),
    "force takes the field over": (
        [("a", {"x": "1", "y": "1"}, False, 201), ("b", {"x": "2"}, True, 200)],
        {"x": "2", "y": "1"}, {"a": {"y"}, "b": {"x"}}),
    "a field dropped from a re-apply is removed": (
        [("a", {"x": "1", "y": "1"}, False, 201), ("a", {"x": "1"}, False, 200)], {"x": "1"}, {"a": {"x"}}),
    "a dropped field another manager owns is kept": (
        [("a", {"x": "1", "y": "1"}, False, 201), ("b", {"y": "1"}, False, 200), ("a", {"x": "1"}, False, 200)],
        {"x": "1", "y": "1"}, {"a": {"x"}, "b": {"y"}}),
    "other managers' fields are kept": (
        [("a", {"x": "1"}, False, 201), ("b", {"z": "3"}, False, 200), ("a", {"x": "2"}, False, 200)],
        {"x": "2", "z": "3"}, {"a": {"x"}, "b": {"z"}}),
}


@pytest.mark.parametrize("steps, data, expected_owners", SSA_CASES.values(), ids=SSA_CASES.keys())
def test_server_side_apply(api: ApiServer, steps: list[tuple[str, dict[str, str], bool, int]],
                           data: dict[str, str], expected_owners: dict[str, set[str]]) -> None:
    for manager, applied, force, status in steps:
        code, body = apply_cm(api, manager, applied, force=force)
        assert code == status, body
    stored = api.get("v1", "configmaps", "cfg", NS)
    assert stored is not None and stored["data"] == data
    assert owners(stored) == expected_owners
    assert all(e["operation"] == "Apply" and e["fieldsType"] == "FieldsV1"
               for e in stored["metadata"]["managedFields"])


def test_conflict_is_a_409_status_naming_the_manager_and_field(api: ApiServer) -> None:
    apply_cm(api, "kubectl-client-side-apply", {"Corefile": "a"})
    code, body = apply_cm(api, "hybrid-knative", {"Corefile": "b"})
    assert code == 409
    assert (body["kind"], body["reason"]) == ("Status", "Conflict")
    assert body["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.Corefile'
    )
    assert body["details"]["causes"] == [{"reason": "FieldManagerConflict", "field": ".data.Corefile",
                                          "message": 'conflict with "kubectl-client-side-apply" using v1'}]


def test_an_update_takes_ownership_from_appliers(api: ApiServer) -> None:
    apply_cm(api, "a", {"x": "1"})
    code, _ = call(api, "PATCH", cm_path("cfg"), {"data": {"x": "edited"}}, MERGE, fieldManager="kubectl-edit")
    assert code == 200
    stored = api.get("v1", "configmaps", "cfg", NS)
    assert stored is not None and owners(stored) == {"kubectl-edit": {"x"}}
    assert [e["operation"] for e in stored["metadata"]["managedFields"]] == ["Update"]
    code, body = apply_cm(api, "a", {"x": "1"})  # the edit is now someone else's: a conflict
    assert code == 409 and '"kubectl-edit"' in body["message"]


def test_reapplying_the_same_configuration_is_a_no_op(api: ApiServer) -> None:
    _, first = apply_cm(api, "a", {"x": "1"})
    _, second = apply_cm(api, "a", {"x": "1"})
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_list_map_items_are_owned_per_key(api: ApiServer) -> None:
    """Containers merge by name: another manager's container survives a re-apply of ours."""
    def deployment(containers: list[str]) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
                "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": c, "image": f"{c}:1"} for c in containers]}}}}

    path = f"/apis/apps/v1/namespaces/{NS}/deployments/web"
    assert call(api, "PATCH", path, deployment(["app"]), APPLY, fieldManager="a")[0] == 201
    assert call(api, "PATCH", path, deployment(["sidecar"]), APPLY, fieldManager="mesh")[0] == 200
    code, body = call(api, "PATCH", path, deployment(["app"]), APPLY, fieldManager="a")
    assert code == 200
    assert [c["name"] for c in body["spec"]["template"]["spec"]["containers"]] == ["app", "sidecar"]


# --------------------------------------------------------------------------------------------
# namespaces
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, content_type", [("POST", "application/json"), ("PATCH", APPLY)])
def test_objects_are_refused_in_a_namespace_that_does_not_exist(api: ApiServer, method: str,
                                                                 content_type: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "nope"}}
    path = "/api/v1/namespaces/nope/configmaps" + ("/cfg" if method == "PATCH" else "")
    code, status = call(api, method, path, body, content_type, fieldManager="m")
    assert code == 404
    assert (status["reason"], status["message"]) == ("NotFound", 'namespaces "nope" not found')
    assert status["details"] == {"name": "nope", "kind": "namespaces"}
    assert api.get("v1", "configmaps", "cfg", "nope") is None


def test_namespace_deletion_goes_through_terminating(api: ApiServer) -> None:
    apply_cm(api, "a", {"x": "1"})
    held = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "namespace": NS,
                                                                 "finalizers": ["example.com/hold"]}}
    assert call(api, "POST", f"/api/v1/namespaces/{NS}/configmaps", held)[0] == 201
    code, ns = call(api, "DELETE", f"/api/v1/namespaces/{NS}")
    assert code == 200 and ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
    # the namespace controller ran before this request: the plain object is gone, the held one waits
    assert call(api, "GET", cm_path("cfg"))[0] == 404
    code, held_now = call(api, "GET", cm_path("held"))
    assert code == 200 and held_now["metadata"]["deletionTimestamp"]
    code, status = call(api, "POST", f"/api/v1/namespaces/{NS}/configmaps",
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
    assert code == 403 and status["reason"] == "Forbidden" and "being terminated" in status["message"]
    code, ns = call(api, "GET", f"/api/v1/namespaces/{NS}")
    assert code == 200 and ns["status"]["phase"] == "Terminating"
    call(api, "PATCH", cm_path("held"), {"metadata": {"finalizers": None}}, MERGE)
    assert call(api, "GET", f"/api/v1/namespaces/{NS}")[0] == 404


# --------------------------------------------------------------------------------------------
# validation of core kinds (422 Invalid with a Status body)
# --------------------------------------------------------------------------------------------


def svc(name: str = "web", **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def deploy(labels: dict[str, str], containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}, **spec}}


def job(restart: str | None, image: str = "busybox:1") -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [{"name": "run", "image": image}]}
    if restart:
        pod["restartPolicy"] = restart
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
            "spec": {"template": {"spec": pod}}}


C = [{"name": "web", "image": "web:1"}]
# id: (collection path, object, field of the cause, text in the message)
INVALID = {
    "namespace name": ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": "Team_A"}}, "metadata.name", "RFC 1123 label"),
    "node name": ("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node_1"}},
                  "metadata.name", "RFC 1123 subdomain"),
    "service name": ("SVC", svc("1web"), "metadata.name", "DNS-1035 label"),
    "service without ports": ("SVC", svc(ports=[]), "spec.ports", "Required value"),
    "service port 0": ("SVC", svc(ports=[{"port": 0}]), "spec.ports[0].port", "between 1 and 65535"),
    "service targetPort": ("SVC", svc(ports=[{"port": 80, "targetPort": 70000}]), "spec.ports[0].targetPort",
                           "between 1 and 65535"),
    "service type": ("SVC", svc(type="Internal"), "spec.type", 'Unsupported value: "Internal"'),
    "service protocol": ("SVC", svc(ports=[{"port": 80, "protocol": "HTTP"}]), "spec.ports[0].protocol",
                         "Unsupported value"),
    "service unnamed ports": ("SVC", svc(ports=[{"port": 80}, {"name": "b", "port": 81}]), "spec.ports[0].name",
                              "Required value"),
    "service clusterIP": ("SVC", svc(clusterIP="10.152.183.999"), "spec.clusterIP", "valid IP address"),
    "service externalIPs": ("SVC", svc(externalIPs=["node-1"]), "spec.externalIPs[0]", "valid IP address"),
    "configmap key": ("CM", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                             "data": {"bad key": "v"}}, "data[bad key]", "a valid config key"),
    "configmap duplicate key": ("CM", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                       "data": {"k": "v"}, "binaryData": {"k": "dg=="}}, "data",
                                "duplicate of key present in binaryData"),
    "label value": ("CM", {"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "c", "labels": {"app": "x" * 64}}}, "metadata.labels",
                    "a valid label"),
    "deployment selector": ("DEP", deploy({"app": "other"}, C), "spec.template.metadata.labels",
                            "`selector` does not match template `labels`"),
    "deployment containers": ("DEP", deploy({"app": "web"}, []), "spec.template.spec.containers", "Required"),
    "deployment container name": ("DEP", deploy({"app": "web"}, [{"name": "Web", "image": "w"}]),
                                  "spec.template.spec.containers[0].name", "RFC 1123 label"),
    "deployment replicas": ("DEP", deploy({"app": "web"}, C, replicas=-1), "spec.replicas", "greater than or equal"),
    "job restartPolicy": ("JOB", job("Always"), "spec.template.spec.restartPolicy", 'Unsupported value: "Always"'),
    "job without restartPolicy": ("JOB", job(None), "spec.template.spec.restartPolicy", "Required value"),
    "job without image": ("JOB", job("Never", image=""), "spec.template.spec.containers[0].image", "Required"),
}
PATHS = {"SVC": f"/api/v1/namespaces/{NS}/services", "CM": f"/api/v1/namespaces/{NS}/configmaps",
         "DEP": f"/apis/apps/v1/namespaces/{NS}/deployments", "JOB": f"/apis/batch/v1/namespaces/{NS}/jobs"}


@pytest.mark.parametrize("path, obj, field, text", INVALID.values(), ids=INVALID.keys())
def test_invalid_objects_are_refused_with_422(api: ApiServer, path: str, obj: dict[str, Any], field: str,
                                              text: str) -> None:
    code, status = call(api, "POST", PATHS.get(path, path), obj)
    assert code == 422, status
    assert (status["kind"], status["status"], status["reason"], status["code"]) == ("Status", "Failure", "Invalid",
                                                                                     422)
    assert status["message"].startswith(f'{obj["kind"]} "{obj["metadata"]["name"]}" is invalid: ')
    causes = {c["field"]: c["message"] for c in status["details"]["causes"]}
    assert field in causes and text in causes[field], causes
    assert status["details"]["kind"] == obj["kind"]


def test_valid_objects_are_accepted(api: ApiServer) -> None:
    assert call(api, "POST", PATHS["SVC"], svc(ports=[{"name": "http", "port": 80, "targetPort": "http"}]))[0] == 201
    assert call(api, "POST", PATHS["SVC"], svc("headless", clusterIP="None", ports=[]))[0] == 201
    assert call(api, "POST", PATHS["SVC"], {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
                                             "spec": {"type": "ExternalName", "externalName": "example.com"}})[0] == 201
    assert call(api, "POST", PATHS["DEP"], deploy({"app": "web", "tier": "x"}, C))[0] == 201
    assert call(api, "POST", PATHS["JOB"], job("OnFailure"))[0] == 201
    assert call(api, "POST", PATHS["CM"], {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                           "data": {"Corefile": "x", "a-b_c.d": "y"}})[0] == 201


# id: (collection, original, the same object changed, the immutable field)
IMMUTABLE = {
    "service clusterIP": ("SVC", svc(clusterIP="10.152.183.50"), svc(clusterIP="10.152.183.51"), "spec.clusterIP"),
    "job template": ("JOB", job("Never"), job("Never", image="busybox:2"), "spec.template"),
    "deployment selector": ("DEP", deploy({"app": "web", "v": "1"}, C),
                            {**deploy({"app": "web", "v": "1"}, C),
                             "spec": {**deploy({"app": "web", "v": "1"}, C)["spec"],
                                      "selector": {"matchLabels": {"app": "web", "v": "1"}}}}, "spec.selector"),
}


@pytest.mark.parametrize("path, original, changed, field", IMMUTABLE.values(), ids=IMMUTABLE.keys())
def test_immutable_fields(api: ApiServer, path: str, original: dict[str, Any], changed: dict[str, Any],
                          field: str) -> None:
    name = original["metadata"]["name"]
    assert call(api, "POST", PATHS[path], original)[0] == 201
    code, status = call(api, "PATCH", f"{PATHS[path]}/{name}", changed, APPLY, fieldManager="m", force="true")
    assert code == 422, status
    causes = {c["field"]: c["message"] for c in status["details"]["causes"]}
    assert field in causes and "field is immutable" in causes[field]


# --------------------------------------------------------------------------------------------
# finalizers, garbage collection, CRD deletion
# --------------------------------------------------------------------------------------------


def test_object_finalizers(api: ApiServer) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/x"]}}
    call(api, "POST", PATHS["CM"], body)
    code, obj = call(api, "DELETE", cm_path("held"))
    assert code == 200 and obj["metadata"]["deletionTimestamp"]
    code, status = call(api, "PATCH", cm_path("held"), {"metadata": {"finalizers": ["example.com/x", "new"]}}, MERGE)
    assert code == 422 and "no new finalizers can be added" in status["message"]
    assert call(api, "GET", cm_path("held"))[0] == 200
    call(api, "PATCH", cm_path("held"), {"metadata": {"finalizers": []}}, MERGE)
    assert call(api, "GET", cm_path("held"))[0] == 404


def test_owner_reference_garbage_collection(api: ApiServer) -> None:
    _, owner = call(api, "POST", PATHS["CM"], {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "own"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "own", "uid": owner["metadata"]["uid"]}
    for name in ("dep1", "dep2"):
        call(api, "POST", PATHS["CM"], {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": name, "ownerReferences": [ref]}})
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "still-there"}
    _, keeper = call(api, "POST", PATHS["CM"], {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k"}})
    other["uid"] = keeper["metadata"]["uid"]
    call(api, "POST", PATHS["CM"], {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "dep3", "ownerReferences": [ref, other]}})
    assert call(api, "DELETE", cm_path("own"))[0] == 200
    assert call(api, "GET", cm_path("dep1"))[0] == 404  # background GC ran before this request
    assert call(api, "GET", cm_path("dep2"))[0] == 404
    assert call(api, "GET", cm_path("dep3"))[0] == 200  # one owner is still there


def crd_body() -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def test_deleting_a_crd_deletes_its_custom_resources(api: ApiServer) -> None:
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    assert call(api, "POST", crds, crd_body())[0] == 201
    widgets = f"/apis/example.com/v1/namespaces/{NS}/widgets"
    assert call(api, "POST", widgets, {"apiVersion": "example.com/v1", "kind": "Widget",
                                       "metadata": {"name": "w1"}})[0] == 201
    assert call(api, "POST", widgets, {"apiVersion": "example.com/v1", "kind": "Widget",
                                       "metadata": {"name": "w2", "finalizers": ["example.com/x"]}})[0] == 201
    code, crd = call(api, "DELETE", f"{crds}/widgets.example.com")
    assert code == 200 and crd["metadata"]["finalizers"] == ["customresourcecleanup.apiextensions.k8s.io"]
    assert call(api, "GET", f"{widgets}/w1")[0] == 404
    assert call(api, "GET", f"{crds}/widgets.example.com")[0] == 200  # waits for w2's finalizer
    call(api, "PATCH", f"{widgets}/w2", {"metadata": {"finalizers": []}}, MERGE)
    assert call(api, "GET", f"{crds}/widgets.example.com")[0] == 404
    assert call(api, "GET", f"{widgets}/w2")[0] == 404


# --------------------------------------------------------------------------------------------
# the fake controller: pods, events, failing jobs
# --------------------------------------------------------------------------------------------


def events_of(api: ApiServer, name: str) -> dict[str, tuple[str, str]]:
    return {e["reason"]: (e["type"], e["message"]) for e in api.list("v1", "events", NS)
            if e["involvedObject"]["name"] == name}


def test_a_failing_job_reports_like_the_job_controller() -> None:
    with ApiServer(namespaces=[NS], controller=FakeController(failing_jobs={"migrate"})) as api:
        body = job("Never")
        body["spec"]["backoffLimit"] = 2
        assert call(api, "POST", PATHS["JOB"], body)[0] == 201
        code, stored = call(api, "GET", f"{PATHS['JOB']}/migrate")
        assert code == 200
        assert stored["status"]["failed"] == 3
        failed = {c["type"]: c for c in stored["status"]["conditions"]}["Failed"]
        assert (failed["status"], failed["reason"]) == ("True", "BackoffLimitExceeded")
        pods = [p for p in api.list("v1", "pods", NS) if p["metadata"]["labels"].get("job-name") == "migrate"]
        assert len(pods) == 3 and all(p["status"]["phase"] == "Failed" for p in pods)
        terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (1, "Error")
        assert events_of(api, "migrate")["BackoffLimitExceeded"] == (
            "Warning", "Job has reached the specified backoff limit")


def test_deployments_get_pods_and_events() -> None:
    probe = {"httpGet": {"path": "/", "port": 8012}}
    containers = [{"name": "web", "image": "web:1", "readinessProbe": probe}]
    with ApiServer(namespaces=[NS], controller=FakeController(never_ready={"broken"})) as api:
        ok = deploy({"app": "web"}, containers)
        broken = deploy({"app": "web"}, containers)
        broken["metadata"]["name"] = "broken"
        for body in (ok, broken):
            assert call(api, "POST", PATHS["DEP"], body)[0] == 201
        call(api, "GET", "/version")  # one more request: the controller has run
        pods = {p["metadata"]["name"].rsplit("-", 2)[0]: p for p in api.list("v1", "pods", NS)}
        assert set(pods) == {"web", "broken"}
        ready = {c["type"]: c["status"] for c in pods["web"]["status"]["conditions"]}["Ready"]
        assert ready == "True" and pods["web"]["status"]["phase"] == "Running"
        assert pods["web"]["metadata"]["labels"]["app"] == "web" and "pod-template-hash" in pods["web"]["metadata"][
            "labels"]
        assert events_of(api, pods["web"]["metadata"]["name"])["Started"] == ("Normal", "Started container web")
        assert "ScalingReplicaSet" in events_of(api, "web")
        assert events_of(api, pods["broken"]["metadata"]["name"])["Unhealthy"] == (
            "Warning", "Readiness probe failed: HTTP probe failed with statuscode: 503")
        # the Deployment goes: its ReplicaSet and pods follow (garbage collection by ownerReferences)
        call(api, "DELETE", f"{PATHS['DEP']}/web")
        call(api, "GET", "/version")
        assert {p["metadata"]["name"].rsplit("-", 2)[0] for p in api.list("v1", "pods", NS)} == {"broken"}


def test_knative_revisions_get_a_deployment_and_failing_ones_unready_pods() -> None:
    from tests.harness.knative import SERVING, KnativeBehaviour, with_knative

    behaviour = KnativeBehaviour(failing={"broken": ("ProgressDeadlineExceeded",
                                                     "Initial scale was never achieved")})
    with ApiServer(namespaces=[NS], controller=with_knative(FakeController(), behaviour)) as api:
        crd = crd_body()
        crd["metadata"]["name"] = "services.serving.knative.dev"
        crd["spec"].update(group="serving.knative.dev", names={"kind": "Service", "plural": "services"})
        crd["spec"]["versions"][0]["subresources"] = {"status": {}}
        for extra in ("revisions", "configurations", "routes"):
            api.put_object("apiextensions.k8s.io/v1", "customresourcedefinitions", {
                **crd, "metadata": {"name": f"{extra}.serving.knative.dev"},
                "spec": {**crd["spec"], "names": {"kind": extra[:-1].capitalize(), "plural": extra}}})
        call(api, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        for name in ("hello", "broken"):
            body = {"apiVersion": SERVING, "kind": "Service", "metadata": {"name": name},
                    "spec": {"template": {"spec": {"containers": [{"image": "ghcr.io/acme/hello:v1"}]}}}}
            assert call(api, "POST", f"/apis/serving.knative.dev/v1/namespaces/{NS}/services", body)[0] == 201
        call(api, "GET", "/version")
        call(api, "GET", "/version")
        idle = api.get("apps/v1", "deployments", "hello-00001-deployment", NS)
        assert idle is not None and idle["spec"]["replicas"] == 0  # scaled to zero: no pods
        pods = api.list("v1", "pods", NS)
        assert {p["metadata"]["labels"]["serving.knative.dev/revision"] for p in pods} == {"broken-00001"}
        assert [c["name"] for c in pods[0]["spec"]["containers"]] == ["user-container", "queue-proxy"]
        assert events_of(api, pods[0]["metadata"]["name"])["Unhealthy"] == (
            "Warning", "Readiness probe failed: HTTP probe failed with statuscode: 503")
