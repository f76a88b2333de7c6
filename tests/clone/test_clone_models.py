"""clone with KServe on both sides: InferenceServices whose model lives in the local model store.

Source and target API emulators with KServe's CRDs (vendored v0.20.0); the target runs the strict KServe
controller fake (validates every InferenceService against the full schema, needs the runtime, S3 credentials
with an endpoint for s3:// models). Real registries and skopeo for the transformer's image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hybrid_knative.clone.transform import LOCAL_MODEL_ACCOUNT
from hybrid_knative.errors import ConfigError, HybridError
from tests.clone.conftest import TARGET_DOMAIN, World
from tests.clone.parts import SERVING, manifest_digest, push
from tests.clone.test_clone_flow import run

pytestmark = pytest.mark.integration
ISVC = "serving.kserve.io/v1beta1"
STORE_LABELS = {"app.kubernetes.io/managed-by": "hybrid-knative", "hybrid-knative.dev/component": "model-store"}


def seed_models(world: World) -> str:
    """What `model serve iris` left on the source (+ a transformer image): returns that image's digest."""
    s = world.source.server
    digest = push(world.layout, world.src_registry, "shop/iris-transformer", "1", "iris transformer")
    # the local store's credentials in the namespace: the platform's (model-store component), never cloned
    s.put_object("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {
        "name": "hk-model-store-s3", "namespace": "shop", "labels": STORE_LABELS, "annotations": {
            "serving.kserve.io/s3-endpoint": "seaweedfs.hk-model-store.svc.cluster.local:8333"}},
        "data": {"AWS_ACCESS_KEY_ID": "SEs=", "AWS_SECRET_ACCESS_KEY": "c2VjcmV0"}})
    s.put_object("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
        "name": LOCAL_MODEL_ACCOUNT, "namespace": "shop", "labels": STORE_LABELS},
        "secrets": [{"name": "hk-model-store-s3"}]})
    s.put_object(ISVC, "inferenceservices", {
        "apiVersion": ISVC, "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": "shop", "uid": "isvc-1",
                     "labels": {"hybrid-knative.dev/project": "shop", "hybrid-knative.dev/model": "iris"},
                     "annotations": {"hybrid-knative.dev/model-digest": "sha256:" + "ab" * 32}},
        "spec": {"predictor": {"serviceAccountName": LOCAL_MODEL_ACCOUNT, "minReplicas": 0,
                               "model": {"modelFormat": {"name": "sklearn"}, "runtime": "kserve-sklearnserver",
                                         "storageUri": "s3://models/iris/"}},
                 "transformer": {"containers": [{"name": "kserve-container",
                                                 "image": f"{world.src_registry.host}/shop/iris-transformer:1"}]}},
        "status": {"url": f"http://iris-shop.{world_zone()}", "conditions": [{"type": "Ready", "status": "True"}]}})
    # what KServe made from it on the source: a controller-owned KService (KServe re-creates it on the target)
    s.put_object(SERVING, "services", {
        "apiVersion": SERVING, "kind": "Service",
        "metadata": {"name": "iris-predictor", "namespace": "shop",
                     "labels": {"serving.kserve.io/inferenceservice": "iris"},
                     "ownerReferences": [{"apiVersion": ISVC, "kind": "InferenceService", "name": "iris",
                                          "uid": "isvc-1", "controller": True}]},
        "spec": {"template": {"spec": {"containers": [{"image": "kserve/sklearnserver:v0.20.0"}]}}}})
    s.reconcile()
    s.reset_requests()
    return digest


def world_zone() -> str:
    from tests.clone.conftest import SOURCE_ZONE

    return SOURCE_ZONE


def cloud_credentials(world: World) -> None:
    """What the cloud's admin made on the target: the namespace, and an account reading the cloud's bucket."""
    t = world.target.server
    t.put_object("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    t.put_object("v1", "secrets", {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {
        "name": "cloud-models-s3", "namespace": "shop",
        "annotations": {"serving.kserve.io/s3-endpoint": "s3.eu-west-1.amazonaws.com"}},
        "data": {"AWS_ACCESS_KEY_ID": "QUtJQQ==", "AWS_SECRET_ACCESS_KEY": "eHl6"}})
    t.put_object("v1", "serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
        "name": "cloud-models", "namespace": "shop"}, "secrets": [{"name": "cloud-models-s3"}]})
    t.reset_requests()


@pytest.fixture
def models_world(make_world: Callable[..., World]) -> World:
    world = make_world(kserve=True)
    seed_models(world)
    return world


def test_a_model_in_the_local_store_is_refused_before_any_write(models_world: World) -> None:
    world = models_world
    with pytest.raises(ConfigError, match="read their model from storage only this cluster") as err:
        run(world)
    assert "InferenceService shop/iris" in (err.value.details or "")
    assert "s3://models/iris/" in (err.value.details or "") and "local model store" in (err.value.details or "")
    assert "--model-uri" in (err.value.resolution or "") and "--skip-local-models" in (err.value.resolution or "")
    assert world.target.server.writes() == [] and world.source.server.writes() == []


def test_skip_local_models_leaves_them_out_and_says_so(models_world: World) -> None:
    world = models_world
    applied: list[dict[str, Any]] = []
    report, _ = run(world, applied, skip_local_models=True)
    t = world.target.server
    assert t.get(ISVC, "inferenceservices", "iris", "shop") is None
    assert not any(o["kind"] == "InferenceService" for o in applied)
    assert any("InferenceService shop/iris" in s and "--skip-local-models" in s for s in report.skipped)
    assert [(a.name, a.status) for a in report.answers] == [("hello", 200), ("orders", 200)]
    # its transformer image was not copied either
    assert len(report.images.copied) == 3


def test_model_uri_rewrite_clones_the_inference_service_and_it_becomes_ready(models_world: World) -> None:
    world = models_world
    cloud_credentials(world)
    applied: list[dict[str, Any]] = []
    report, _ = run(world, applied, model_uris=(("s3://models/", "s3://acme-models/serving/"),),
                    model_service_account="cloud-models")
    t = world.target.server
    isvc = t.get(ISVC, "inferenceservices", "iris", "shop")
    assert isvc is not None
    pred = isvc["spec"]["predictor"]
    assert pred["model"]["storageUri"] == "s3://acme-models/serving/iris/"
    assert pred["serviceAccountName"] == "cloud-models"
    assert isvc["metadata"]["annotations"]["hybrid-knative.dev/model-digest"] == "sha256:" + "ab" * 32
    # the transformer is pinned to its digest, copied to the target registry
    assert [c.tag for c in report.images.copied if "iris-transformer" in c.source] == ["1"]
    image = isvc["spec"]["transformer"]["containers"][0]["image"]
    assert image.startswith(f"{world.registry}/shop/iris-transformer@sha256:")
    assert manifest_digest(image, world.dst_registry.authfile) == image.split("@", 1)[1]
    # KServe (the strict fake) accepted it: Ready through the Ready gate, with its predictor KService
    conds = {c["type"]: c["status"] for c in isvc["status"]["conditions"]}
    assert conds["Ready"] == "True", isvc["status"]
    assert t.get(SERVING, "services", "iris-predictor", "shop")["metadata"]["ownerReferences"][0]["kind"] == \
        "InferenceService"
    # validated strictly against KServe's schema before it was sent; the platform's store account stayed home
    assert [o["metadata"]["name"] for o in applied if o["kind"] == "InferenceService"] == ["iris"]
    names = {(o["kind"], o["metadata"]["name"]) for o in applied}
    assert ("ServiceAccount", LOCAL_MODEL_ACCOUNT) not in names and ("Secret", "hk-model-store-s3") not in names
    assert ("Service", "iris-predictor") not in names  # KServe's child, made again by KServe on the target
    assert world.source.server.writes() == []
    # invoked through its new URL like the services (a KServe model server answers GET / when alive)
    assert [(a.name, a.status) for a in report.answers] == [("hello", 200), ("orders", 200), ("iris", 200)]
    assert next(a.url for a in report.answers if a.name == "iris") == f"http://iris-predictor-shop.{TARGET_DOMAIN}"
    # a re-run writes nothing
    world.target.server.reset_requests()
    again, _ = run(world, model_uris=(("s3://models/", "s3://acme-models/serving/"),),
                   model_service_account="cloud-models")
    assert world.target.server.writes() == [] and again.images.copied == []


def test_without_the_cloud_account_the_kserve_controller_would_refuse(models_world: World) -> None:
    """The rewrite without --model-service-account: clone warns; KServe then has no S3 credentials (the default
    account has none here), so the Ready gate fails with KServe's reason — the clone stops, nothing lies."""
    world = models_world
    with pytest.raises(HybridError, match="not ready") as err:
        run(world, model_uris=(("s3://models/", "s3://acme-models/serving/"),))
    assert "shop/iris" in str(err.value)
    isvc = world.target.server.get(ISVC, "inferenceservices", "iris", "shop")
    assert isvc is not None and "serviceAccountName" not in isvc["spec"]["predictor"]
    ready = [c for c in isvc["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "False" and ready[0]["reason"] == "StorageInitializerFailed"
