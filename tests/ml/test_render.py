"""KServe, runtimes, model store and Training Operator objects: strictly valid, and shaped as intended."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store

from hybrid_knative.errors import ConfigError, IntegrityError, PermanentError
from hybrid_knative.ml import kserve, pki, runtimes, store, training
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR, UpstreamStore
from tests.harness.validation import ManifestValidator, image_errors, kserve_crds, training_operator_crds

KUBE_VERSIONS = ["1.34", "1.36"]  # oldest and newest the platform supports for KServe
LABELS = {"app.kubernetes.io/managed-by": "hybrid-knative", "hybrid-knative.dev/component": "kserve"}
UPSTREAM = UpstreamStore()


@pytest.fixture(scope="module")
def webhook() -> pki.WebhookPki:
    return pki.issue(pki.KSERVE)


@pytest.fixture(scope="module")
def controller(webhook: pki.WebhookPki) -> list[dict]:
    return kserve.render_controller(UPSTREAM, LABELS, webhook, domain="hk.internal",
                                    store_endpoint=store.cluster_endpoint())


def everything(controller: list[dict]) -> list[dict]:
    creds = store.Credentials.generate()
    settings = store.Settings(endpoint=store.cluster_endpoint(), credentials=creds)
    train_pki = pki.issue(pki.TRAINING)
    return [
        *kserve.render_crds(UPSTREAM, LABELS), *controller,
        *kserve.render_runtimes(UPSTREAM, LABELS, rocm=True), kserve.knative_features(),
        *store.render(creds, LABELS), *store.serving_credentials("default", settings, LABELS),
        *training.render_crds(UPSTREAM, LABELS), *training.render_operator(UPSTREAM, LABELS, train_pki),
        training.pytorchjob_example(rocm=True, workers=2, render_gid=110),
        training.pytorchjob_example(rocm=False, workers=0),
    ]


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_rendered_object_is_valid(kube: str, controller: list[dict]) -> None:
    objs = everything(controller)
    validator = ManifestValidator(kube, [*kserve_crds(), *training_operator_crds()])
    assert validator.validate_all(objs) == []
    assert [e for o in objs for e in image_errors(o)] == []


def test_validator_catches_a_bad_runtime_field() -> None:
    broken = runtimes.rocm_runtimes()[0]
    broken["spec"]["containerz"] = []
    assert ManifestValidator("1.34", kserve_crds()).errors(broken)


def test_heredoc_is_cut_structurally() -> None:
    script = "x\n    cat <<'M'\na: 1\n  M\nM\ny\n"
    assert kserve.heredoc(script, "M") == "a: 1\n  M\n"  # only an exact terminator line ends it
    with pytest.raises(PermanentError):
        kserve.heredoc("cat <<'M'\na\n", "M")
    with pytest.raises(PermanentError):
        kserve.heredoc("nothing", "M")


def test_core_manifest_refuses_a_modified_script(tmp_path: Path) -> None:
    comp = kserve.component()
    f = comp.file(kserve.INSTALL_SCRIPT)
    target = tmp_path / f.path
    target.parent.mkdir(parents=True)
    target.write_bytes((PACKAGE_VENDOR_DIR / f.path).read_bytes() + b"\n# tampered\n")
    with pytest.raises(IntegrityError):
        kserve.core_manifest(UpstreamStore(search_dirs=(tmp_path,)))


def test_controller_without_cert_manager_istio_or_always_pulls(controller: list[dict], webhook: pki.WebhookPki) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in controller}
    assert not [o for o in controller if o["apiVersion"].startswith("cert-manager.io")]
    text = json.dumps(controller)
    assert "cert-manager.io/inject-ca-from" not in text
    assert ("Deployment", "kserve-controller-manager") in kinds
    assert ("ClusterStorageContainer", "default") in kinds
    webhooks = [o for o in controller if o["kind"].endswith("WebhookConfiguration")]
    assert len(webhooks) == 6
    for conf in webhooks:
        for hook in conf["webhooks"]:
            assert base64.b64decode(hook["clientConfig"]["caBundle"]) == webhook.ca_bundle
    (deploy,) = [o for o in controller if o["kind"] == "Deployment"]
    pod = deploy["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["manager"]
    assert all(c["imagePullPolicy"] == "IfNotPresent" for c in pod["containers"])
    assert pod["volumes"][0]["secret"]["secretName"] == pki.KSERVE.secret
    (cm,) = [o for o in controller if o["kind"] == "ConfigMap"]
    ingress = json.loads(cm["data"]["ingress"])
    assert ingress["disableIstioVirtualHost"] is True
    assert ingress["ingressDomain"] == "hk.internal"
    (csc,) = [o for o in controller if o["kind"] == "ClusterStorageContainer"]
    assert "namespace" not in csc["metadata"]
    assert all(o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "hybrid-knative" for o in controller)


def test_webhook_ca_bundle_matches_the_secret_and_verifies_the_serving_cert(controller: list[dict]) -> None:
    secret = next(o for o in controller if o["kind"] == "Secret" and o["metadata"]["name"] == pki.KSERVE.secret)
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    for conf in (o for o in controller if o["kind"].endswith("WebhookConfiguration")):
        for hook in conf["webhooks"]:
            bundle = base64.b64decode(hook["clientConfig"]["caBundle"])
            verifier = PolicyBuilder().store(Store(x509.load_pem_x509_certificates(bundle))) \
                .build_server_verifier(DNSName(pki.KSERVE.dns_names[0]))
            verifier.verify(cert, [])


def test_runtimes_are_workstation_sized_and_rocm_ones_are_ours() -> None:
    objs = kserve.render_runtimes(UPSTREAM, LABELS, rocm=True)
    by_name = {o["metadata"]["name"]: o for o in objs}
    assert set(by_name) == {*runtimes.CPU_RUNTIMES, "hk-vllm-rocm", "hk-pytorch-rocm"}
    sk = by_name["kserve-sklearnserver"]["spec"]["containers"][0]["resources"]["requests"]
    assert sk == {"cpu": "100m", "memory": "256Mi"}
    for name in ("hk-vllm-rocm", "hk-pytorch-rocm"):
        rt = by_name[name]
        assert "serving.kserve.io/server-type" not in (rt["metadata"].get("annotations") or {})
        assert not name.startswith("kserve-")
        (c,) = rt["spec"]["containers"]
        assert c["resources"]["limits"][runtimes.GPU_RESOURCE] == "1"
        assert rt["spec"]["nodeSelector"][runtimes.GPU_PRESENT_LABEL] == "true"
        assert "@" in c["image"] or ":" in c["image"].rsplit("/", 1)[-1]
    assert not any(o["metadata"]["name"].startswith("hk-") for o in kserve.render_runtimes(UPSTREAM, LABELS))


def test_unknown_runtime_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as err:
        runtimes.runtime("tensorflw")
    assert "sklearn" in str(err.value.resolution)


def test_knative_features() -> None:
    data = kserve.knative_features()["data"]
    for key in ("nodeselector", "tolerations", "affinity", "init-containers", "securitycontext"):
        assert data[f"kubernetes.podspec-{key}"] == "enabled"


def test_store_objects_and_credentials_are_kept_on_rerun() -> None:
    creds = store.Credentials.generate()
    objs = store.render(creds, LABELS)
    secret = next(o for o in objs if o["kind"] == "Secret")
    assert store.Credentials.from_secret_data(secret["data"]) == creds
    identities = json.loads(base64.b64decode(secret["data"]["s3.json"]))
    assert identities["identities"][0]["credentials"][0]["accessKey"] == creds.access_key
    assert creds.secret_key not in repr(creds)
    deploy = next(o for o in objs if o["kind"] == "Deployment")
    assert deploy["spec"]["strategy"]["type"] == "Recreate"
    with pytest.raises(ConfigError):
        store.render(creds, LABELS, size="lots")


def test_training_operator_standalone(webhook: pki.WebhookPki) -> None:
    train_pki = pki.issue(pki.TRAINING)
    objs = training.render_operator(UPSTREAM, LABELS, train_pki)
    (vwc,) = [o for o in objs if o["kind"] == "ValidatingWebhookConfiguration"]
    assert vwc["metadata"]["name"] == "validator.training-operator.kubeflow.org"  # the base's patch applied
    assert vwc["metadata"]["labels"]["control-plane"] == "kubeflow-training-operator"
    for hook in vwc["webhooks"]:
        assert hook["clientConfig"]["service"] == {"name": "training-operator", "namespace": "kubeflow",
                                                   "path": hook["clientConfig"]["service"]["path"]}
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == train_pki.ca_cert_pem
    (deploy,) = [o for o in objs if o["kind"] == "Deployment"]
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "ghcr.io/kubeflow/training-v1/training-operator:v1-93c5489"
    assert c["imagePullPolicy"] == "IfNotPresent"
    (crb,) = [o for o in objs if o["kind"] == "ClusterRoleBinding"]
    assert crb["subjects"][0]["namespace"] == "kubeflow"
    secret = next(o for o in objs if o["kind"] == "Secret")
    assert secret["metadata"]["name"] == "training-operator-webhook-cert"
    assert {"ca.crt", "ca.key", "tls.crt", "tls.key"} <= set(secret["data"])
    assert all(o["metadata"].get("namespace") == "kubeflow" for o in objs
               if o["kind"] not in training.CLUSTER_SCOPED)


def test_rocm_pytorchjob() -> None:
    job = training.pytorchjob_example(rocm=True, workers=1, gpus_per_pod=2, render_gid=110,
                                      hsa_override_gfx_version="11.0.0")
    for role in ("Master", "Worker"):
        pod = job["spec"]["pytorchReplicaSpecs"][role]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["name"] == "pytorch"
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["NCCL_SOCKET_IFNAME"] == "eth0" and env["NCCL_IB_DISABLE"] == "1"
        assert env["HSA_OVERRIDE_GFX_VERSION"] == "11.0.0"
        assert c["resources"]["limits"]["amd.com/gpu"] == "2"
        assert pod["volumes"][0]["emptyDir"]["medium"] == "Memory"
        assert pod["securityContext"]["supplementalGroups"] == [110]
    with pytest.raises(ConfigError):
        training.pytorchjob_example(gpus_per_pod=0)
