"""KServe's controller for the API emulator (a FakeController hook), strict where KServe is.

For each InferenceService not yet reconciled (``observedGeneration`` ≠ ``generation``):

* the object must be valid against KServe's v0.20.0 CRD schema (the API server would refuse it);
* the controller Deployment ``kserve/kserve-controller-manager`` must be Available (nothing happens
  without it), and the webhook Secret must hold a certificate the webhooks' ``caBundle`` trusts;
* the named runtime must exist as a ClusterServingRuntime supporting the model format;
* the storage URI must be served: ``s3://`` needs ``serviceAccountName`` naming a ServiceAccount whose
  Secret carries ``serving.kserve.io/s3-endpoint``; other schemes need a ClusterStorageContainer with a
  matching prefix (``pvc://`` is built in); ``storageContainerName`` must exist;
* GPU requests (``amd.com/gpu``) need a Node with that much allocatable.

Then, in Knative mode, it creates the ``NAME-predictor`` Knative Service (which the Knative fake makes
Ready with its URL) and reports the InferenceService Ready with that URL; in Standard mode it reports
the in-cluster URL. Any failed rule gives ``Ready: False`` with KServe-like reasons.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
from typing import Any

from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder
from cryptography.x509.verification import Store as TrustStore

from tests.harness.emulator import Store
from tests.harness.knative import SERVING, _cond
from tests.harness.validation import ManifestValidator, kserve_crds

ISVC = "serving.kserve.io/v1beta1"
V1ALPHA1 = "serving.kserve.io/v1alpha1"


@functools.cache
def kserve_validator(kube_version: str) -> ManifestValidator:
    """Compiled once per process (the InferenceService schema alone takes seconds to compile)."""
    return ManifestValidator(kube_version, kserve_crds())


@dataclasses.dataclass
class KServeBehaviour:
    kube_version: str = "1.34"
    reconciled: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        kserve_validator(self.kube_version)  # outside the emulator's request path

    def validator(self) -> ManifestValidator:
        return kserve_validator(self.kube_version)

    def __call__(self, store: Store) -> None:
        if not store.get("apiextensions.k8s.io/v1", "customresourcedefinitions", "inferenceservices.serving.kserve.io"):
            return
        for isvc in store.list(ISVC, "inferenceservices"):
            if (isvc.get("status") or {}).get("observedGeneration") != isvc["metadata"].get("generation", 1):
                self._reconcile(store, isvc)

    # ---------------------------------------------------------------------------------------

    def _problem(self, store: Store, isvc: dict[str, Any]) -> tuple[str, str] | None:
        clean = {k: v for k, v in isvc.items() if k != "status"}
        clean["metadata"] = {k: v for k, v in isvc["metadata"].items()
                             if k in ("name", "namespace", "labels", "annotations")}
        errors = self.validator().errors(clean)
        if errors:
            return "InvalidSpec", "; ".join(errors[:3])
        if not _available(store, "kserve", "kserve-controller-manager"):
            return "ControllerNotRunning", "kserve-controller-manager is not available"
        if problem := _webhook_trust(store):
            return "WebhookCertificate", problem
        ns = isvc["metadata"]["namespace"]
        pred = isvc["spec"]["predictor"]
        model = pred.get("model") or {}
        runtime = store.get(V1ALPHA1, "clusterservingruntimes", model.get("runtime", ""))
        if runtime is None:
            return "RuntimeNotRecognized", f"no ClusterServingRuntime {model.get('runtime')!r}"
        formats = {f["name"] for f in runtime["spec"].get("supportedModelFormats") or []}
        if (model.get("modelFormat") or {}).get("name") not in formats:
            return "NoSupportingRuntime", f"runtime {runtime['metadata']['name']} does not support the model format"
        uri = model.get("storageUri", "")
        if pred.get("storageContainerName") and not store.get(V1ALPHA1, "clusterstoragecontainers",
                                                              pred["storageContainerName"]):
            return "StorageContainerNotFound", f"no ClusterStorageContainer {pred['storageContainerName']}"
        if uri.startswith("s3://"):
            sa = store.get("v1", "serviceaccounts", pred.get("serviceAccountName", "default"), ns)
            secrets = [store.get("v1", "secrets", s["name"], ns) for s in (sa or {}).get("secrets") or []]
            if not any(((s or {}).get("metadata") or {}).get("annotations", {}).get("serving.kserve.io/s3-endpoint")
                       for s in secrets):
                return "StorageInitializerFailed", "no S3 credentials with an s3-endpoint for the service account"
        elif not uri.startswith("pvc://"):
            prefixes = [u.get("prefix", "") for c in store.list(V1ALPHA1, "clusterstoragecontainers")
                        for u in c["spec"].get("supportedUriFormats") or []]
            if not any(p and uri.startswith(p) for p in prefixes):
                return "StorageUriNotSupported", f"no ClusterStorageContainer supports {uri}"
        want = int(((model.get("resources") or {}).get("limits") or {}).get("amd.com/gpu", "0"))
        if want:
            have = max((int((n.get("status") or {}).get("allocatable", {}).get("amd.com/gpu", "0"))
                        for n in store.list("v1", "nodes")), default=0)
            if have < want:
                return "Unschedulable", f"0/1 nodes are available: Insufficient amd.com/gpu (want {want})"
        return None

    def _reconcile(self, store: Store, isvc: dict[str, Any]) -> None:
        meta = isvc["metadata"]
        name, ns, generation = meta["name"], meta["namespace"], meta.get("generation", 1)
        self.reconciled.append(f"{ns}/{name}")
        problem = self._problem(store, isvc)
        if problem:
            store.set_status(ISVC, "inferenceservices", name, ns, {
                "observedGeneration": generation,
                "conditions": [_cond("PredictorReady", "False", *problem), _cond("Ready", "False", *problem)]})
            return
        standard = (meta.get("annotations") or {}).get("serving.kserve.io/deploymentMode") == "Standard"
        if standard:
            url = f"http://{name}-predictor.{ns}.svc.cluster.local"
        else:
            ksvc_name = f"{name}-predictor"
            ksvc = store.get(SERVING, "services", ksvc_name, ns)
            if ksvc is None:
                runtime = store.get(V1ALPHA1, "clusterservingruntimes", isvc["spec"]["predictor"]["model"]["runtime"])
                container = dict((runtime or {})["spec"]["containers"][0])
                store.put(SERVING, "services", {
                    "apiVersion": SERVING, "kind": "Service",
                    "metadata": {"name": ksvc_name, "namespace": ns,
                                 "labels": {"serving.kserve.io/inferenceservice": name},
                                 "ownerReferences": [{"apiVersion": ISVC, "kind": "InferenceService", "name": name,
                                                      "uid": meta.get("uid", ""), "controller": True}]},
                    "spec": {"template": {"spec": {"containers": [container]}}}})
                return  # the Knative fake reconciles it before the next request
            conds = {c["type"]: c for c in (ksvc.get("status") or {}).get("conditions") or []}
            if conds.get("Ready", {}).get("status") != "True":
                return
            url = ksvc["status"]["url"]
        store.set_status(ISVC, "inferenceservices", name, ns, {
            "observedGeneration": generation, "url": url,
            "address": {"url": f"http://{name}-predictor.{ns}.svc.cluster.local"},
            "conditions": [_cond("IngressReady"), _cond("PredictorReady"), _cond("Ready")],
            "components": {"predictor": {"url": url}}})


def _available(store: Store, namespace: str, name: str) -> bool:
    dep = store.get("apps/v1", "deployments", name, namespace)
    return any(c.get("type") == "Available" and c.get("status") == "True"
               for c in ((dep or {}).get("status") or {}).get("conditions") or [])


def _webhook_trust(store: Store) -> str | None:
    """The API server calls KServe's webhooks over TLS: each caBundle must vouch for the served certificate."""
    secret = store.get("v1", "secrets", "kserve-webhook-server-cert", "kserve")
    if secret is None or "tls.crt" not in (secret.get("data") or {}):
        return "Secret kserve/kserve-webhook-server-cert has no tls.crt"
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        for conf in store.list("admissionregistration.k8s.io/v1", kind):
            for hook in conf.get("webhooks") or []:
                cc = hook.get("clientConfig") or {}
                if (cc.get("service") or {}).get("name") != "kserve-webhook-server-service":
                    continue
                if not cc.get("caBundle"):
                    return f"webhook {hook['name']} has no caBundle"
                roots = x509.load_pem_x509_certificates(base64.b64decode(cc["caBundle"]))
                verifier = PolicyBuilder().store(TrustStore(roots)).build_server_verifier(
                    DNSName("kserve-webhook-server-service.kserve.svc"))
                try:
                    verifier.verify(cert, [])
                except Exception as exc:
                    return f"webhook {hook['name']}: caBundle does not trust the serving certificate ({exc})"
    return None
