"""KServe v0.20.0 from the pinned files, standalone, in Knative mode on Kourier, without cert-manager.

* CRDs: ``kserve-crds.yaml`` (the InferenceService CRD is ~1.9 MB: applied server-side, as we always do).
* Controller: the ``KSERVE_CORE_MANIFEST_EOF`` heredoc of the pinned install script, cut out line by
  line (the script's sha256 is checked first) and parsed as YAML, then transformed structurally:
  cert-manager's Issuer/Certificate and ``inject-ca-from`` annotations dropped (our PKI sets
  ``caBundle``), ``IfNotPresent`` everywhere, the unrequested kube-rbac-proxy sidecar and its metrics
  Service dropped (metrics stay on the pod's loopback), ``disableIstioVirtualHost: true``.
* Runtimes: chosen CPU ClusterServingRuntimes from ``kserve-cluster-resources.yaml`` with
  workstation-sized requests, plus our own ROCm runtimes (see :mod:`hybrid_knative.ml.runtimes`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from hybrid_knative.catalog import ComponentVersion, load_catalog
from hybrid_knative.errors import IntegrityError, PermanentError
from hybrid_knative.ml import pki
from hybrid_knative.ml.runtimes import CPU_RUNTIMES, rocm_runtimes, sized_cpu_runtime
from hybrid_knative.upstream import UpstreamStore

Manifest = dict[str, Any]

COMPONENT = "kserve"
NAMESPACE = "kserve"
CONTROLLER = "kserve-controller-manager"
CONFIG_MAP = "inferenceservice-config"
INSTALL_SCRIPT = "kserve-knative-mode-full-install-with-manifests.sh"
CORE_HEREDOC = "KSERVE_CORE_MANIFEST_EOF"
CERT_MANAGER_GROUP = "cert-manager.io"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "ClusterServingRuntime",
                  "ClusterStorageContainer", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
                  "CustomResourceDefinition"}
PROXY_CONTAINER = "kube-rbac-proxy"
DROPPED_OBJECTS = {("Service", "kserve-controller-manager-metrics-service"), ("ClusterRole", "kserve-proxy-role"),
                   ("ClusterRoleBinding", "kserve-proxy-rolebinding")}
# Knative Serving features KServe's pods need (config-features in knative-serving)
KNATIVE_FEATURES = {
    "kubernetes.podspec-nodeselector": "enabled",
    "kubernetes.podspec-tolerations": "enabled",
    "kubernetes.podspec-affinity": "enabled",
    "kubernetes.podspec-init-containers": "enabled",
    "kubernetes.podspec-securitycontext": "enabled",
    "kubernetes.podspec-emptydir": "enabled",
    "kubernetes.podspec-persistent-volume-claim": "enabled",
    "kubernetes.podspec-persistent-volume-write": "enabled",
}
CONTROLLER_RESOURCES = {"requests": {"cpu": "100m", "memory": "200Mi"}, "limits": {"cpu": "500m", "memory": "300Mi"}}


def component() -> ComponentVersion:
    return load_catalog().extra_component(COMPONENT)


def _docs(text: str, source: str) -> list[Manifest]:
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = [d for d in yaml.load_all(text, Loader=loader) if d]
    except yaml.YAMLError as exc:
        raise PermanentError(f"{source} is not valid YAML: {exc}") from None
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
            raise PermanentError(f"{source} contains a document that is not a Kubernetes object")
    return docs


def heredoc(script: str, marker: str) -> str:
    """The body of ``cat <<'MARKER'`` … ``MARKER`` in a shell script (exactly one, quoted: no expansion)."""
    lines = script.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() in (f"cat <<'{marker}'", f'cat <<"{marker}"')]
    if len(starts) != 1:
        raise PermanentError(f"the install script has {len(starts)} quoted heredocs {marker} (expected 1)",
                             resolution="the pinned script changed shape; update ml/kserve.py with it")
    start = starts[0] + 1
    for end in range(start, len(lines)):
        if lines[end] == marker:
            return "\n".join(lines[start:end]) + "\n"
    raise PermanentError(f"heredoc {marker} is not terminated in the install script")


def core_manifest(store: UpstreamStore, comp: ComponentVersion | None = None) -> list[Manifest]:
    """The controller manifest as objects, cut out of the pinned install script after checking its sha256."""
    comp = comp or component()
    f = comp.file(INSTALL_SCRIPT)
    raw = store.path(f).read_bytes()
    actual = hashlib.sha256(raw).hexdigest()
    if actual != f.sha256:  # the store checked it once; this read is what we parse, so check again
        raise IntegrityError(f"checksum mismatch for {f.path}", details=f"expected {f.sha256}\nactual   {actual}",
                             resolution="re-run `make vendor`")
    return _docs(heredoc(raw.decode("utf-8"), CORE_HEREDOC), f"{f.path} ({CORE_HEREDOC})")


def crds(store: UpstreamStore, comp: ComponentVersion | None = None) -> list[Manifest]:
    comp = comp or component()
    f = comp.file("kserve-crds.yaml")
    return [d for d in _docs(store.read_text(f), f.path) if d["kind"] == "CustomResourceDefinition"]


def cluster_resources(store: UpstreamStore, comp: ComponentVersion | None = None) -> list[Manifest]:
    comp = comp or component()
    f = comp.file("kserve-cluster-resources.yaml")
    return _docs(store.read_text(f), f.path)


def _name(obj: Manifest) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _clean_metadata(obj: Manifest, labels: Mapping[str, str]) -> None:
    meta = obj.setdefault("metadata", {})
    meta.pop("creationTimestamp", None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(CERT_MANAGER_GROUP)}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    if obj["kind"] in CLUSTER_SCOPED:
        meta.pop("namespace", None)  # upstream puts `namespace: kserve` on the cluster-scoped storage container
    meta["labels"] = {**(meta.get("labels") or {}), **labels}


def _ingress_config(raw: str, domain: str | None) -> str:
    ingress = json.loads(raw)
    ingress["disableIstioVirtualHost"] = True  # Kourier, not Istio: no VirtualService
    ingress["ingressClassName"] = "kourier.ingress.networking.knative.dev"
    ingress["disableIngressCreation"] = True  # Standard-mode predictors stay in-cluster (no ingress controller)
    if domain:
        ingress["ingressDomain"] = domain
    return json.dumps(ingress, indent=4)


def _config_map(obj: Manifest, *, domain: str | None, store_endpoint: str | None) -> None:
    data = obj["data"]
    data["ingress"] = _ingress_config(data["ingress"], domain)
    if store_endpoint is not None:
        # the store's endpoint as the cluster-wide default too (the ServiceAccount's Secret says the same)
        credentials = json.loads(data["credentials"])
        credentials["s3"].update({"s3Endpoint": store_endpoint, "s3UseHttps": "0", "s3VerifySSL": "0"})
        data["credentials"] = json.dumps(credentials, indent=4)


def _controller(obj: Manifest) -> None:
    pod = obj["spec"]["template"]["spec"]
    pod["containers"] = [c for c in pod["containers"] if c.get("name") != PROXY_CONTAINER]
    for c in pod["containers"]:
        c["imagePullPolicy"] = "IfNotPresent"
        if c.get("name") == "manager":
            c["resources"] = copy.deepcopy(CONTROLLER_RESOURCES)
    obj["spec"].setdefault("replicas", 1)


def _pull_policy(obj: Manifest) -> None:
    spec = obj.get("spec") or {}
    container = spec.get("container")
    if obj["kind"] == "ClusterStorageContainer" and isinstance(container, dict):
        container["imagePullPolicy"] = "IfNotPresent"


def render_controller(store: UpstreamStore, labels: Mapping[str, str], webhook: pki.WebhookPki, *,
                      domain: str | None = None, store_endpoint: str | None = None) -> list[Manifest]:
    """The transformed core manifest + our webhook Secrets, every webhook carrying our caBundle."""
    out: list[Manifest] = []
    for original in core_manifest(store):
        obj = copy.deepcopy(original)
        group = str(obj["apiVersion"]).split("/")[0]
        if group == CERT_MANAGER_GROUP or (obj["kind"], _name(obj)) in DROPPED_OBJECTS:
            continue
        if obj["kind"] == "Secret" and _name(obj) == pki.KSERVE.secret:
            continue  # ours below
        _clean_metadata(obj, labels)
        if obj["kind"] == "ConfigMap" and _name(obj) == CONFIG_MAP:
            _config_map(obj, domain=domain, store_endpoint=store_endpoint)
        elif obj["kind"] == "Deployment" and _name(obj) == CONTROLLER:
            _controller(obj)
        _pull_policy(obj)
        out.append(obj)
    out.extend(webhook.secrets(pki.KSERVE, labels))
    return pki.with_ca_bundle(out, pki.KSERVE, webhook.ca_bundle)


def render_crds(store: UpstreamStore, labels: Mapping[str, str]) -> list[Manifest]:
    out = []
    for crd in crds(store):
        obj = copy.deepcopy(crd)
        _clean_metadata(obj, labels)
        out.append(obj)
    return out


def render_runtimes(store: UpstreamStore, labels: Mapping[str, str], *, names: Iterable[str] = CPU_RUNTIMES,
                    rocm: bool = False) -> list[Manifest]:
    """The chosen upstream CPU runtimes (workstation-sized) and, with ``rocm``, our ROCm runtimes."""
    wanted = list(dict.fromkeys(names))
    found = {_name(d): d for d in cluster_resources(store) if d["kind"] == "ClusterServingRuntime"}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise PermanentError(f"the pinned KServe cluster resources have no runtime {', '.join(missing)}")
    out = []
    for name in wanted:
        obj = sized_cpu_runtime(found[name])
        _clean_metadata(obj, labels)
        out.append(obj)
    if rocm:
        for obj in rocm_runtimes():
            _clean_metadata(obj, labels)
            out.append(obj)
    return out


def knative_features() -> Manifest:
    """The config-features keys KServe needs, as a fragment merged into Knative's ConfigMap."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "config-features", "namespace": "knative-serving"},
            "data": dict(KNATIVE_FEATURES)}


def s3_credentials_config(controller_objs: Iterable[Manifest]) -> dict[str, str]:
    """``credentials.s3`` of the rendered inferenceservice-config (what KServe's credential builder reads)."""
    for obj in controller_objs:
        if obj.get("kind") == "ConfigMap" and _name(obj) == CONFIG_MAP:
            s3 = json.loads(obj["data"]["credentials"]).get("s3") or {}
            return {str(k): str(v) for k, v in s3.items()}
    raise PermanentError(f"no {CONFIG_MAP} among the rendered objects")


def controller_images(objs: Iterable[Manifest]) -> list[str]:
    """Images KServe itself needs (controller, storage initializer) from the rendered objects."""
    found: list[str] = []
    for obj in objs:
        if obj.get("kind") == "Deployment":
            found += [c["image"] for c in obj["spec"]["template"]["spec"]["containers"]]
        elif obj.get("kind") == "ClusterStorageContainer":
            found.append(obj["spec"]["container"]["image"])
        elif obj.get("kind") == "ConfigMap" and _name(obj) == CONFIG_MAP:
            found.append(json.loads(obj["data"]["storageInitializer"])["image"])
    return sorted(set(found))
