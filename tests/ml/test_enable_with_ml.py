"""`enable --with ml` through the component registry on the API emulator (KServe's controller faked
strictly), a re-run that changes nothing, and a disable that keeps users' InferenceServices."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from hybrid_knative import addon
from hybrid_knative.errors import ConfigError
from hybrid_knative.ml import kserve, pki, serve, training
from hybrid_knative.ml.runtimes import runtime
from hybrid_knative.progress import Status
from tests.harness.emulator import FakeController
from tests.harness.kserve import KServeBehaviour
from tests.integration.conftest import Cluster, make_cluster  # noqa: F401 - the fixture
from tests.ml.conftest import slim_crd

pytestmark = pytest.mark.integration


@pytest.fixture()
def slim_crds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator copies every stored CRD on every request; KServe's 2.3 MB of schemas make each request
    take a second. The flow applies the same CRDs without their schemas (the strict schema checks of every
    rendered object are in test_render.py, and the KServe fake validates InferenceServices in full)."""
    for module in (kserve, training):
        original = module.render_crds
        monkeypatch.setattr(module, "render_crds",
                            lambda store, labels, original=original: [slim_crd(c) for c in original(store, labels)])


@pytest.mark.usefixtures("slim_crds")
def test_enable_with_ml_rerun_and_disable(make_cluster: Callable[..., Cluster]) -> None:  # noqa: F811
    kserve_fake = KServeBehaviour()
    cluster = make_cluster(controller=FakeController(hooks=[kserve_fake]))
    config = cluster.config(extras=("ml",), wait_timeout=60.0, eventing=False)
    status = Status(verbosity=-1)
    first = addon.enable(config, status)
    assert first.written > 0
    server = cluster.server
    deploy = server.get("apps/v1", "deployments", "kserve-controller-manager", "kserve")
    assert deploy["metadata"]["labels"]["hybrid-knative.dev/component"] == "kserve"
    assert server.get("apps/v1", "deployments", "training-operator", "kubeflow") is not None
    assert server.get("apps/v1", "deployments", "seaweedfs", "hk-model-store") is not None
    features = server.get("v1", "configmaps", "config-features", "knative-serving")["data"]
    assert features["kubernetes.podspec-init-containers"] == "enabled"
    secret = server.get("v1", "secrets", "kserve-webhook-server-cert", "kserve")
    conf = server.get("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations",
                      "inferenceservice.serving.kserve.io")
    bundle = base64.b64decode(conf["webhooks"][0]["clientConfig"]["caBundle"])
    assert pki.load(secret["data"], server.get("v1", "secrets", "kserve-webhook-ca", "kserve")["data"]) is not None
    assert b"BEGIN CERTIFICATE" in bundle

    again = addon.enable(config, status)  # certificate and store keys kept: nothing to write
    assert again.written == 0
    assert server.get("v1", "secrets", "kserve-webhook-server-cert", "kserve")["data"] == secret["data"]

    # a user's model, served through the fake KServe controller
    isvc = serve.render_inference_service(serve.ServeRequest(
        name="mine", namespace="default", runtime=runtime("sklearn"), storage_uri="pvc://models/mine"))
    server.put_object("serving.kserve.io/v1beta1", "inferenceservices", isvc)
    target = cluster.config()
    with pytest.raises(ConfigError, match="InferenceService"):
        addon.disable(target, status)
    assert server.get("apps/v1", "deployments", "kserve-controller-manager", "kserve") is not None  # untouched
    addon.disable(target, status, delete_user_models=True)
    assert server.get("apps/v1", "deployments", "kserve-controller-manager", "kserve") is None
    assert "default/mine" in kserve_fake.reconciled
