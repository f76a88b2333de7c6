"""Tests for tests/harness/validation.py (strict offline manifest validation)."""

from __future__ import annotations

import copy
import functools
import time
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from tests.harness.validation import (
    ManifestValidator,
    UnsupportedKubernetesVersion,
    crd_version_schema,
    image_errors,
    image_reference_problem,
    supported_kube_versions,
)

UPSTREAM = Path(__file__).resolve().parents[3] / "shared" / "upstream"
if not UPSTREAM.is_dir():  # pragma: no cover - fall back to the documented absolute location
    UPSTREAM = Path("/work/shared/upstream")

DIGEST = "sha256:" + "0123456789abcdef" * 4
ENVOY_FLOATING = "docker.io/envoyproxy/envoy:v1.37-latest"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def _load_tuple(relative: str) -> tuple[dict, ...]:
    path = UPSTREAM / relative
    if not path.is_file():
        pytest.skip(f"upstream mirror file {path} not available")
    with open(path, encoding="utf-8") as fh:
        return tuple(doc for doc in yaml.load_all(fh, Loader=_LOADER) if doc)


def load(*relatives: str) -> list[dict]:
    """Fresh (deep-copied) objects of one or more upstream release files."""
    return [copy.deepcopy(doc) for rel in relatives for doc in _load_tuple(rel)]


SERVING = "knative-serving/1.23.0"
SERVING_CRDS = f"{SERVING}/serving-crds.yaml"
SERVING_CORE = f"{SERVING}/serving-core.yaml"
KOURIER = "net-kourier/1.23.0/kourier.yaml"
EVENTING = "knative-eventing/1.23.0"
EVENTING_FILES = [
    f"{EVENTING}/{name}.yaml"
    for name in (
        "eventing-crds",
        "eventing-core",
        "in-memory-channel",
        "mt-channel-broker",
        "eventing-post-install",
        "eventing-tls-networking",
    )
]


@functools.cache
def validator(kube_version: str = "1.34") -> ManifestValidator:
    return ManifestValidator(kube_version, load(SERVING_CRDS))


def find(objs: list[dict], kind: str, name: str) -> dict:
    for obj in objs:
        if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
            return obj
    raise AssertionError(f"{kind}/{name} not found")


def knative_service(**spec_extra) -> dict:
    svc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default", "labels": {"app": "hello"}},
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"autoscaling.knative.dev/min-scale": "1"},
                    "labels": {"app": "hello"},
                },
                "spec": {
                    "containerConcurrency": 10,
                    "timeoutSeconds": 300,
                    "containers": [
                        {
                            "image": f"ghcr.io/example/hello@{DIGEST}",
                            "ports": [{"containerPort": 8080}],
                            "env": [{"name": "TARGET", "value": "world"}],
                            "resources": {"limits": {"cpu": "1", "memory": "512Mi", "amd.com/gpu": 1}},
                        }
                    ],
                },
            },
            "traffic": [{"latestRevision": True, "percent": 100}],
        },
    }
    svc["spec"].update(spec_extra)
    return svc


def deployment(image: str = f"registry.example/app@{DIGEST}") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "activator", "namespace": "knative-serving"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


# ------------------------------------------------------------------ versions


def test_supported_versions_cover_1_25_to_1_37():
    versions = supported_kube_versions()
    assert versions == sorted(set(versions), key=lambda v: tuple(map(int, v.split("."))))
    for minor in range(25, 38):
        assert f"1.{minor}" in versions


@pytest.mark.parametrize(
    ("given", "schema_version"),
    [
        ("1.34", "1.34.0"),
        ("1.34.2", "1.34.0"),
        ("v1.34.2", "1.34.0"),
        ("1.32.1-rc.0", "1.32.0"),
        ("1.36", "1.36.0"),
    ],
)
def test_version_mapping(given, schema_version):
    assert ManifestValidator(given).schema_version == schema_version


@pytest.mark.parametrize("bad", ["1.24", "1.99", "2.0", "latest", ""])
def test_unsupported_versions_raise(bad):
    with pytest.raises(UnsupportedKubernetesVersion):
        ManifestValidator(bad)


# ------------------------------------------------------------------ upstream release files


KNOWN_PROBLEMS_SERVING_CORE_AND_KOURIER: set[str] = set()  # none found at Kubernetes 1.32-1.37


@pytest.mark.parametrize("kube_version", ["1.32", "1.33", "1.34", "1.35", "1.36"])
def test_serving_core_and_kourier_validate(kube_version):
    objs = load(SERVING_CORE, KOURIER)
    assert len(objs) > 60
    mv = ManifestValidator(kube_version, load(SERVING_CRDS))
    assert set(mv.validate_all(objs)) == KNOWN_PROBLEMS_SERVING_CORE_AND_KOURIER


@pytest.mark.parametrize("kube_version", ["1.25", "1.37"])
def test_serving_core_and_kourier_validate_at_extreme_versions(kube_version):
    mv = ManifestValidator(kube_version, load(SERVING_CRDS))
    assert mv.validate_all(load(SERVING_CORE, KOURIER)) == []


def test_crds_can_come_from_the_same_stream():
    """serving-core.yaml contains the CRDs itself; non-CRD documents are ignored by add_crds."""
    objs = load(SERVING_CORE)
    mv = ManifestValidator("1.34", objs)
    assert mv.validate_all(objs) == []


def test_post_install_jobs_with_generate_name_validate():
    jobs = load(f"{SERVING}/serving-post-install-jobs.yaml")
    assert any("generateName" in job["metadata"] and "name" not in job["metadata"] for job in jobs)
    assert validator().validate_all(jobs) == []
    assert validator().validate_all(load(f"{SERVING}/serving-hpa.yaml")) == []


def test_upstream_image_and_certificate_crs_validate():
    objs = load(SERVING_CORE)
    image = find(objs, "Image", "queue-proxy")
    assert image["apiVersion"] == "caching.internal.knative.dev/v1alpha1"
    assert validator().errors(image) == []
    cert = next(o for o in objs if o["kind"] == "Certificate")
    assert validator().errors(cert) == []


def test_eventing_known_problems():
    """Eventing 1.23.0: everything validates except cert-manager Certificates (no CRD available)."""
    objs = load(*EVENTING_FILES)
    mv = ManifestValidator("1.34", objs)
    problems = mv.validate_all(objs)
    assert problems, "eventing-tls-networking.yaml contains cert-manager Certificates"
    assert all(p.startswith("Certificate/knative-eventing/") and "cert-manager.io/v1" in p for p in problems)
    assert len(problems) == 4


@pytest.mark.parametrize("kube_version", ["1.25", "1.32", "1.33"])
def test_statefulset_without_service_name_is_accepted(kube_version):
    """OpenAPI <= 1.32 marks serviceName required; the API server never enforced it (k8s#130233)."""
    statefulset = find(load(f"{EVENTING}/eventing-core.yaml"), "StatefulSet", "request-reply")
    assert "serviceName" not in statefulset["spec"]
    assert ManifestValidator(kube_version).errors(statefulset) == []
    statefulset["spec"]["serviceNameX"] = "x"
    assert any("$.spec.serviceNameX" in e for e in ManifestValidator(kube_version).errors(statefulset))


def test_builtin_verdicts_match_kubernetes_validate():
    """The cached validators must agree with kubernetes_validate.validate(strict=True)."""
    objs = [o for o in load(SERVING_CORE, KOURIER) if "knative.dev" not in o["apiVersion"]]
    broken = deployment()
    broken["spec"]["replicasX"] = 1
    wrong_type = deployment()
    wrong_type["spec"]["replicas"] = "three"
    for obj in [*objs, broken, wrong_type]:
        try:
            kubernetes_validate.validate(obj, "1.34", strict=True)
            expected_valid = True
        except kubernetes_validate.ValidationError:
            expected_valid = False
        assert (validator().errors(obj) == []) == expected_valid, obj["metadata"]


def test_validation_is_fast():
    objs = load(SERVING_CORE, KOURIER, *EVENTING_FILES)
    mv = ManifestValidator("1.35", objs)
    start = time.perf_counter()
    mv.validate_all(objs)
    elapsed = time.perf_counter() - start
    assert len(objs) > 200
    assert elapsed < 5.0, f"validating {len(objs)} objects took {elapsed:.2f}s"


# ------------------------------------------------------------------ built-in kinds


def test_valid_deployment():
    assert validator().errors(deployment()) == []


def test_unknown_field_in_deployment_is_reported():
    obj = deployment()
    obj["spec"]["replicasX"] = 3
    errors = validator().errors(obj)
    assert errors == ["Deployment/knative-serving/activator at $.spec.replicasX: unknown field 'replicasX'"]


def test_wrong_type_in_deployment_is_reported():
    obj = deployment()
    obj["spec"]["replicas"] = "three"
    errors = validator().errors(obj)
    assert len(errors) == 1
    assert errors[0].startswith("Deployment/knative-serving/activator at $.spec.replicas: ")
    assert "'three' is not of type" in errors[0] and "integer" in errors[0]


def test_all_errors_are_reported_with_nested_paths():
    obj = deployment()
    obj["spec"]["replicasX"] = 3
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyX"] = "Always"
    obj["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "http"}]
    errors = validator().errors(obj)
    joined = "\n".join(errors)
    assert len(errors) == 3, joined
    assert "$.spec.replicasX: unknown field" in joined
    assert "$.spec.template.spec.containers[0].imagePullPolicyX: unknown field" in joined
    assert "$.spec.template.spec.containers[0].ports[0].containerPort:" in joined


def test_configmap_values_must_be_strings():
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "n"},
        "data": {"a": 1},
    }
    errors = validator().errors(cm)
    assert len(errors) == 1 and "ConfigMap/n/c at $.data.a:" in errors[0]


def test_cluster_scoped_label_has_no_namespace():
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "r"},
        "rules": [{"verbs": ["get"], "resourcez": ["pods"]}],
    }
    assert validator().errors(role) == ["ClusterRole/r at $.rules[0].resourcez: unknown field 'resourcez'"]


def test_name_or_generate_name_is_required():
    obj = deployment()
    del obj["metadata"]["name"]
    assert any("metadata.name or metadata.generateName is required" in e for e in validator().errors(obj))
    obj["metadata"]["generateName"] = "activator-"
    assert validator().errors(obj) == []


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "apps/v1", "kind": "Widget", "metadata": {"name": "w"}},
        {"apiVersion": "apps/v2", "kind": "Deployment", "metadata": {"name": "w"}},
        # a sub-schema file exists for this one, but it is not a top-level kind
        {"apiVersion": "apps/v1", "kind": "DeploymentSpec", "metadata": {"name": "w"}},
        # kubernetes_validate would map this to apps-v1 by file name: must not validate as a Deployment
        {"apiVersion": "apps.example.com/v1", "kind": "Deployment", "metadata": {"name": "w"}},
    ],
)
def test_unknown_kind_fails(obj):
    errors = validator().errors(obj)
    assert len(errors) == 1
    assert errors[0].startswith(f"{obj['kind']}/w at $: no schema for kind {obj['kind']!r}")


@pytest.mark.parametrize(
    "obj",
    [
        None,
        "text",
        {"kind": "ConfigMap", "metadata": {"name": "x"}},
        {"apiVersion": "v1", "metadata": {"name": "x"}},
    ],
)
def test_malformed_objects_fail(obj):
    assert validator().errors(obj)


def test_validate_all_skips_empty_documents():
    assert validator().validate_all([None, deployment(), None]) == []


# ------------------------------------------------------------------ CRD-based kinds


def test_knative_service_valid():
    assert validator().errors(knative_service()) == []


def test_knative_service_template_metadata_preserves_unknown_fields():
    svc = knative_service()
    svc["spec"]["template"]["metadata"]["name"] = "hello-v1"
    svc["spec"]["template"]["metadata"]["whatever"] = {"x": 1}  # x-kubernetes-preserve-unknown-fields
    assert validator().errors(svc) == []


def test_knative_service_unknown_field_fails():
    svc = knative_service(replicas=3)
    assert validator().errors(svc) == ["Service/default/hello at $.spec.replicas: unknown field 'replicas'"]


def test_knative_service_nested_unknown_field_and_type_error():
    svc = knative_service()
    container = svc["spec"]["template"]["spec"]["containers"][0]
    container["imagee"] = "typo"
    svc["spec"]["template"]["spec"]["containerConcurrency"] = "ten"
    errors = validator().errors(svc)
    joined = "\n".join(errors)
    assert len(errors) == 2, joined
    expected = "Service/default/hello at $.spec.template.spec.containers[0].imagee: unknown field 'imagee'"
    assert expected in errors
    assert "$.spec.template.spec.containerConcurrency: 'ten' is not of type 'integer'" in joined


def test_knative_service_int_or_string_and_metadata():
    svc = knative_service()
    probe = {"httpGet": {"port": "http", "path": "/"}}
    svc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = probe
    assert validator().errors(svc) == []
    probe["httpGet"]["port"] = 8080
    assert validator().errors(svc) == []
    probe["httpGet"]["port"] = [8080]
    assert any(
        "$.spec.template.spec.containers[0].readinessProbe.httpGet.port" in e for e in validator().errors(svc)
    )


def test_knative_service_root_metadata_is_checked_against_object_meta():
    svc = knative_service()
    svc["metadata"]["lables"] = {"a": "b"}
    assert validator().errors(svc) == ["Service/default/hello at $.metadata.lables: unknown field 'lables'"]
    svc = knative_service()
    del svc["metadata"]["name"]
    assert any("metadata.name or metadata.generateName is required" in e for e in validator().errors(svc))


def test_knative_service_wrong_version_or_kind():
    svc = knative_service()
    svc["apiVersion"] = "serving.knative.dev/v2"
    assert "has no version 'v2'" in validator().errors(svc)[0]
    svc = knative_service()
    svc["kind"] = "Servic"
    assert "no CRD for kind 'Servic' in group 'serving.knative.dev'" in validator().errors(svc)[0]


def test_knative_image_cr_validates():
    image = {
        "apiVersion": "caching.internal.knative.dev/v1alpha1",
        "kind": "Image",
        "metadata": {"name": "queue-proxy", "namespace": "knative-serving"},
        "spec": {"image": f"gcr.io/knative-releases/queue@{DIGEST}", "imagePullSecrets": [{"name": "pull"}]},
    }
    assert validator().errors(image) == []
    del image["spec"]["image"]
    assert validator().errors(image) == [
        "Image/knative-serving/queue-proxy at $.spec: 'image' is a required property"
    ]


def test_crd_groups_without_crds_are_unknown_kinds():
    """Without the CRDs, Knative kinds are unknown and must fail (never pass silently)."""
    errors = ManifestValidator("1.34").errors(knative_service())
    assert len(errors) == 1 and "no schema for kind 'Service'" in errors[0]


def _widget_crd(**version_overrides) -> dict:
    versions = [
        {
            "name": "v1",
            "served": True,
            "storage": True,
            "schema": {
                "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
                                "port": {
                                    "x-kubernetes-int-or-string": True,
                                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                                },
                                "note": {"type": "string", "nullable": True},
                                "mode": {"type": "string", "enum": ["a", "b"], "nullable": True},
                                "extra": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                    "properties": {"known": {"type": "string"}},
                                },
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "items": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "atomic",
                                    "items": {"type": "object", "properties": {"n": {"type": "string"}}},
                                },
                                "opaque": {"type": "object"},
                            },
                        },
                    },
                }
            },
        },
        {
            "name": "v0",
            "served": False,
            "storage": False,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        },
    ]
    versions[0].update(version_overrides)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": versions,
        },
    }


def _widget(**spec) -> dict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns"},
        "spec": {"size": 1, **spec},
    }


def test_synthetic_crd_conversion_rules():
    mv = ManifestValidator("1.34")
    mv.add_crds([_widget_crd()])
    ok = _widget(
        port="http",
        note=None,
        mode=None,
        extra={"known": "k", "anything": [1]},
        labels={"a": "b"},
        items=[{"n": "x"}],
        opaque={},
    )
    assert mv.errors(ok) == []
    assert mv.errors(_widget(port=80, mode="a")) == []

    def first(obj):
        errors = mv.errors(obj)
        assert len(errors) == 1, errors
        return errors[0]

    assert "$.spec.size" in first(_widget(size=0))  # exclusiveMinimum: true (OpenAPI v3.0 style)
    assert "$.spec.port" in first(_widget(port=1.5))
    assert "$.spec.mode" in first(_widget(mode="c"))
    assert first(_widget(extra={"known": 1})).startswith("Widget/ns/w at $.spec.extra.known:")
    assert "$.spec.items[0].m: unknown field 'm'" in first(_widget(items=[{"m": "x"}]))
    assert "$.spec.opaque.x: unknown field 'x'" in first(_widget(opaque={"x": 1}))
    assert "$.spec.labels.a" in first(_widget(labels={"a": 1}))
    assert "'size' is a required property" in first({**_widget(), "spec": {}})
    assert "$.status: unknown field 'status'" in first({**_widget(), "status": {}})
    assert all("at $.metadata" in e for e in mv.errors({**_widget(), "metadata": []}))


def test_crd_version_not_served_is_an_error():
    mv = ManifestValidator("1.34", [_widget_crd()])
    obj = {**_widget(), "apiVersion": "example.com/v0"}
    assert mv.errors(obj) == [
        "Widget/ns/w at $.apiVersion: version 'v0' of CRD widgets.example.com is not served"
    ]


def test_add_crds_replaces_and_rejects_bad_crds():
    mv = ManifestValidator("1.34", [_widget_crd()])
    assert mv.errors(_widget(extra={"known": "k"})) == []
    relaxed = _widget_crd(
        schema={"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    )
    mv.add_crds([relaxed])
    assert mv.errors(_widget(anything="goes")) == []
    bad = _widget_crd(schema={"openAPIV3Schema": {"type": "objekt"}})
    with pytest.raises(ValueError, match=r"widgets\.example\.com"):
        mv.add_crds([bad])
    with pytest.raises(ValueError, match="unsupported apiVersion"):
        mv.add_crds([{**_widget_crd(), "apiVersion": "apiextensions.k8s.io/v1beta1"}])


def test_crd_version_schema_marks_objects_closed():
    schema = crd_version_schema(_widget_crd(), _widget_crd()["spec"]["versions"][0])
    spec = schema["properties"]["spec"]
    assert schema["additionalProperties"] is False
    assert spec["additionalProperties"] is False
    assert "additionalProperties" not in spec["properties"]["extra"]  # preserve-unknown-fields
    assert spec["properties"]["note"]["type"] == ["string", "null"]
    assert spec["properties"]["port"]["type"] == ["integer", "string"]
    assert not any(key.startswith("x-kubernetes-") for key in spec["properties"]["items"])


# ------------------------------------------------------------------ versions sweep


@pytest.mark.parametrize("kube_version", ["1.32", "1.33", "1.34", "1.35", "1.36"])
def test_versions_sweep(kube_version):
    mv = ManifestValidator(kube_version, load(SERVING_CRDS))
    assert mv.errors(deployment()) == []
    assert mv.errors(knative_service()) == []
    broken = deployment()
    broken["spec"]["replicasX"] = 1
    assert mv.errors(broken) == [
        "Deployment/knative-serving/activator at $.spec.replicasX: unknown field 'replicasX'"
    ]
    assert mv.errors(knative_service(replicas=1))
    hpa = find(load(SERVING_CORE), "HorizontalPodAutoscaler", "activator")
    assert mv.errors(hpa) == []


# ------------------------------------------------------------------ image pinning


@pytest.mark.parametrize(
    "image",
    [
        f"gcr.io/knative-releases/knative.dev/serving/cmd/queue@{DIGEST}",
        f"docker.io/envoyproxy/envoy:v1.37.0@{DIGEST}",
        "docker.io/envoyproxy/envoy:v1.37.0",
        "localhost:32000/app:1.2.3",
        "rocm/k8s-device-plugin:1.31.0.9",
        "rocm/k8s-device-plugin:labeller-1.31.0.9",
        "busybox:1.36",
    ],
)
def test_pinned_images_pass(image):
    assert image_reference_problem(image) is None
    assert image_errors(deployment(image)) == []


@pytest.mark.parametrize(
    "image",
    [
        ENVOY_FLOATING,
        "busybox",
        "busybox:latest",
        "rocm/k8s-device-plugin:labeller-latest",
        "localhost:32000/app",
        "app@sha256:abc",
        f"app@sha512:{'0' * 128}",
        "",
        None,
        "app:",
    ],
)
def test_unpinned_images_fail(image):
    assert image_reference_problem(image) is not None
    errors = image_errors(deployment(image))
    assert len(errors) == 1
    prefix = "Deployment/knative-serving/activator at $.spec.template.spec.containers[0].image: "
    assert errors[0].startswith(prefix)


def test_envoy_floating_tag_is_flagged_in_upstream_kourier():
    objs = load(KOURIER)
    problems = [e for obj in objs for e in image_errors(obj)]
    assert problems == [
        "Deployment/kourier-system/3scale-kourier-gateway at $.spec.template.spec.containers[0].image: "
        f"image {ENVOY_FLOATING!r} uses the floating tag 'v1.37-latest'; pin a fixed tag or a digest"
    ]


def test_serving_core_images_are_pinned_and_checked():
    objs = load(SERVING_CORE, f"{SERVING}/serving-post-install-jobs.yaml")
    assert [e for obj in objs for e in image_errors(obj)] == []
    config = find(objs, "ConfigMap", "config-deployment")
    config["data"]["queue-sidecar-image"] = "gcr.io/knative-releases/queue:latest"
    assert image_errors(config) == [
        "ConfigMap/knative-serving/config-deployment at $.data.queue-sidecar-image: "
        "image 'gcr.io/knative-releases/queue:latest' uses the floating tag 'latest'; "
        "pin a fixed tag or a digest"
    ]
    image = find(objs, "Image", "queue-proxy")
    image["spec"]["image"] = "gcr.io/knative-releases/queue"
    assert len(image_errors(image)) == 1 and "$.spec.image" in image_errors(image)[0]


def test_image_errors_cover_all_pod_templates():
    pod_spec = {
        "initContainers": [{"name": "i", "image": "busybox"}],
        "containers": [{"name": "c", "image": f"x@{DIGEST}"}, {"name": "d", "image": "y:latest"}],
    }
    cases = {
        ("v1", "Pod"): {"spec": pod_spec},
        ("apps/v1", "DaemonSet"): {"spec": {"template": {"spec": pod_spec}}},
        ("apps/v1", "StatefulSet"): {"spec": {"template": {"spec": pod_spec}}},
        ("batch/v1", "Job"): {"spec": {"template": {"spec": pod_spec}}},
        ("batch/v1", "CronJob"): {"spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec}}}}},
        ("serving.knative.dev/v1", "Service"): {"spec": {"template": {"spec": pod_spec}}},
    }
    for (api_version, kind), body in cases.items():
        obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "n", "namespace": "ns"}, **body}
        errors = image_errors(obj)
        assert len(errors) == 2, (kind, errors)
        assert "initContainers[0].image: image 'busybox' has no tag or digest" in errors[0]
        assert "containers[1].image: image 'y:latest' uses the floating tag 'latest'" in errors[1]
    # a core/v1 Service has no pod template: nothing to check
    assert image_errors({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}) == []


def test_rocm_raw_manifests_use_unpinned_images():
    objs = load(
        "rocm-k8s-device-plugin/k8s-ds-amdgpu-dp.yaml",
        "rocm-k8s-device-plugin/k8s-ds-amdgpu-labeller.yaml",
    )
    problems = [e for obj in objs for e in image_errors(obj)]
    assert len(problems) == 2
    assert validator().validate_all(objs) == []
