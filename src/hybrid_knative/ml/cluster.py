"""ML use cases that talk to the cluster: find the store, serve a model, rotate webhook certificates.

The CLI (cli/ml.py) and the registry's steps call these with a connected KubeApi; they never read
globals or the environment.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hybrid_knative.errors import ConfigError, HybridError, PermanentError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef, ref_of
from hybrid_knative.kube.wait import WaitPolicy, wait_all
from hybrid_knative.ml import pki, serve, store

Manifest = dict[str, Any]
ISVC_API = "serving.kserve.io/v1beta1"
MANAGED = {"app.kubernetes.io/managed-by": "hybrid-knative"}


def register_kinds(kube: KubeApi) -> None:
    kube.register_kind(ISVC_API, "InferenceService", "inferenceservices", namespaced=True)
    kube.register_kind("serving.kserve.io/v1alpha1", "ClusterServingRuntime", "clusterservingruntimes",
                       namespaced=False)
    kube.register_kind("serving.kserve.io/v1alpha1", "ClusterStorageContainer", "clusterstoragecontainers",
                       namespaced=False)
    kube.register_kind("kubeflow.org/v1", "PyTorchJob", "pytorchjobs", namespaced=True)


def labels_for(component: str) -> dict[str, str]:
    return {**MANAGED, "hybrid-knative.dev/component": component}


def store_settings(kube: KubeApi, *, endpoint: str | None = None) -> store.Settings:
    """How this host reaches the cluster's store: the Service's ClusterIP (routed on a MicroK8s node) and the keys."""
    secret = kube.get(ObjectRef("v1", "Secret", store.NAMESPACE, store.SERVER_SECRET))
    credentials = store.Credentials.from_secret_data((secret or {}).get("data"))
    if credentials is None:
        raise ConfigError("the model store is not installed on this cluster",
                          resolution="enable it: `hybrid-knative enable --with ml` (or `microk8s enable "
                          "hybrid-knative --with ml`)")
    if endpoint is None:
        service = kube.get(ObjectRef("v1", "Service", store.NAMESPACE, store.SERVICE)) or {}
        ip = (service.get("spec") or {}).get("clusterIP")
        if not ip or ip == "None":
            raise ConfigError(f"Service {store.NAMESPACE}/{store.SERVICE} has no cluster IP",
                              resolution="re-run enable --with ml; or pass --store-endpoint HOST:PORT")
        ports = [p for p in (service.get("spec") or {}).get("ports") or [] if p.get("name") == "s3"]
        endpoint = f"{ip}:{ports[0].get('port', store.S3_PORT) if ports else store.S3_PORT}"
    return store.Settings(endpoint=endpoint, credentials=credentials)


def gpu_count(kube: KubeApi) -> int:
    return serve.cluster_gpus(kube.list("v1", "Node"))


def render_gid(kube: KubeApi) -> int | None:
    """The render group id a GPU node published (hybrid-knative.io/render-gid), if any."""
    for node in kube.list("v1", "Node"):
        value = ((node.get("metadata") or {}).get("annotations") or {}).get("hybrid-knative.io/render-gid")
        if value and str(value).isdigit():
            return int(value)
    return None


def apply_serving(kube: KubeApi, req: serve.ServeRequest, settings: store.Settings,
                  labels: Mapping[str, str] | None = None) -> Manifest:
    """The namespace's store credentials (for s3://) and the InferenceService, applied server-side.

    ``labels``: extra labels on the InferenceService (the platform's own check marks it as ours).
    """
    register_kinds(kube)
    if kube.get(ObjectRef("v1", "Namespace", None, req.namespace)) is None:
        raise ConfigError(f"namespace {req.namespace!r} does not exist",
                          resolution=f"create it (`kubectl create namespace {req.namespace}`) or pick another")
    if req.storage_uri.startswith("s3://"):
        endpoint = dataclasses.replace(settings, endpoint=store.cluster_endpoint())  # pods use the Service name
        for obj in store.serving_credentials(req.namespace, endpoint, labels_for(store.COMPONENT)):
            kube.apply(obj)
    isvc = serve.render_inference_service(req)
    if labels:
        isvc["metadata"]["labels"].update(labels)
    kube.apply(isvc)
    return isvc


def wait_url(kube: KubeApi, isvc: Manifest, policy: WaitPolicy,
             on_progress: Callable[[str], None] | None = None) -> str:
    ref = ref_of(isvc)
    found: dict[str, str] = {}

    def check() -> str | None:
        obj = kube.get(ref)
        if obj is None:
            return "not created yet"
        url = serve.predict_url(obj)
        if url is None:
            conds = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") != "True"]
            return "; ".join(f"{c.get('type')}: {c.get('reason') or c.get('message') or 'pending'}"
                             for c in conds[:3]) or "no status yet"
        found["url"] = url
        return None

    wait_all({str(ref): check}, policy=policy, on_progress=on_progress,
             resolution="look at the predictor pod: `kubectl -n NS get pods -l "
             "serving.kserve.io/inferenceservice=NAME` and its storage-initializer logs")
    return found["url"]


def gridfs_storage_container(kube: KubeApi) -> Manifest | None:
    register_kinds(kube)
    return kube.get(ObjectRef("serving.kserve.io/v1alpha1", "ClusterStorageContainer", None,
                              serve.GRIDFS_STORAGE_CONTAINER))


def pin_gridfs_image(kube: KubeApi, image: str) -> bool:
    """Point the gridfs:// ClusterStorageContainer at ``image`` (by digest); False when GridFS is not enabled."""
    csc = gridfs_storage_container(kube)
    if csc is None:
        return False
    container = copy.deepcopy((csc.get("spec") or {}).get("container") or {})
    if container.get("image") != image:
        container["image"] = image
        kube.merge_patch(ref_of(csc), {"spec": {"container": container}})
    return True


# ------------------------------------------------------------------------------------ certificates

@dataclasses.dataclass(frozen=True)
class Rotation:
    component: str
    reasons: tuple[str, ...]
    not_after: datetime.datetime

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


def current_pki(kube: KubeApi, target: pki.WebhookTarget) -> pki.WebhookPki | None:
    serving = kube.get(ObjectRef("v1", "Secret", target.namespace, target.secret))
    ca = serving if target.ca_key_in_serving_secret else kube.get(
        ObjectRef("v1", "Secret", target.namespace, target.ca_secret))
    return pki.load((serving or {}).get("data"), (ca or {}).get("data"))


def _webhook_configurations(kube: KubeApi, component: str) -> Iterable[dict[str, Any]]:
    for kind in pki.WEBHOOK_KINDS:
        yield from kube.list("admissionregistration.k8s.io/v1", kind, labels=labels_for(component))


def rotate(kube: KubeApi, target: pki.WebhookTarget, *, force: bool,
           now: datetime.datetime | None = None) -> Rotation:
    """Re-issue the webhook certificate when due (or ``force``): Secrets first, then every webhook's caBundle.

    The new CA bundle still trusts the previous CA (see pki.ensure), so admission keeps working while
    the kubelet refreshes the mounted Secret and the server reloads it.
    """
    namespace = kube.get(ObjectRef("v1", "Namespace", None, target.namespace))
    if namespace is None:
        raise ConfigError(f"{target.component} is not installed (no namespace {target.namespace})",
                          resolution="enable it first: `hybrid-knative enable --with ml`")
    fresh, reasons = pki.ensure(target, current_pki(kube, target), force=force, now=now)
    if reasons:
        for secret in fresh.secrets(target, labels_for(target.component)):
            kube.apply(secret)
        encoded = base64.b64encode(fresh.ca_bundle).decode("ascii")
        for conf in _webhook_configurations(kube, target.component):
            hooks = copy.deepcopy(conf.get("webhooks") or [])
            touched = False
            for hook in hooks:
                svc = (hook.get("clientConfig") or {}).get("service") or {}
                if svc.get("name") == target.service and svc.get("namespace") == target.namespace:
                    hook["clientConfig"]["caBundle"] = encoded
                    touched = True
            if touched:
                kube.merge_patch(ref_of(conf), {"webhooks": hooks})
    return Rotation(target.component, tuple(reasons), fresh.not_after)


def expiry(kube: KubeApi, components: Iterable[str] = tuple(pki.TARGETS)) -> list[pki.ExpiryReport]:
    """For doctor/status: each installed webhook server's certificate (absent components are skipped)."""
    out = []
    for name in components:
        target = pki.target(name)
        try:
            if kube.get(ObjectRef("v1", "Namespace", None, target.namespace)) is None:
                continue
            secret = kube.get(ObjectRef("v1", "Secret", target.namespace, target.secret))
        except HybridError as exc:
            out.append(pki.ExpiryReport(name, False, f"cannot read the certificate: {exc.brief}"))
            continue
        out.append(pki.expiry_report(target, (secret or {}).get("data")))
    return out


def users_inference_services(kube: KubeApi) -> list[Mapping[str, Any]]:
    """InferenceServices that are not ours (for disable: listed and kept unless the user says otherwise)."""
    register_kinds(kube)
    try:
        items = kube.list(ISVC_API, "InferenceService")
    except PermanentError:
        return []  # the CRD is gone already
    return [i for i in items
            if ((i.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/managed-by") != "hybrid-knative"]
