"""Which objects of the source cluster are the user's, and so get cloned.

The platform's objects carry ``app.kubernetes.io/managed-by: hybrid-knative``; Knative's children
(Configurations, Routes, Revisions, Ingresses, Certificates, ServerlessServices, PodAutoscalers) are
re-created by Knative's controllers on the target and are never listed here, nor is anything else a
controller owns (e.g. the KService KServe makes for an InferenceService). Custom resource kinds
are only listed when the source serves them (KafkaSource needs eventing-kafka, InferenceService KServe).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest, ObjectRef

MANAGED_BY = "app.kubernetes.io/managed-by"
PLATFORM = "hybrid-knative"
CRD = "apiextensions.k8s.io/v1"
ALL_NAMESPACES = "*"  # lightkube's ALL_NS (namespace=None would mean the kubeconfig's namespace)


@dataclasses.dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True
    crd: str | None = None  # the CRD that serves it (None: built into Kubernetes)
    gate: bool = False  # wait for Ready=True before applying what depends on it
    bridge: bool = False  # only ROS 2 bridge objects of this kind are the user's to clone (see split_bridges)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


# In apply order (dependencies first): Brokers before Triggers, Services before Sources.
KINDS: tuple[Kind, ...] = (
    Kind("v1", "Namespace", "namespaces", namespaced=False),
    Kind("v1", "Secret", "secrets"),
    Kind("v1", "ServiceAccount", "serviceaccounts"),
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("rbac.authorization.k8s.io/v1", "Role", "roles"),
    Kind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    Kind("v1", "Service", "services", bridge=True),  # the ROS 2 bridge's reply sink
    Kind("apps/v1", "Deployment", "deployments", bridge=True),  # the ROS 2 bridge (robot's node, hostNetwork)
    Kind("eventing.knative.dev/v1", "Broker", "brokers", crd="brokers.eventing.knative.dev", gate=True),
    Kind("serving.knative.dev/v1", "Service", "services", crd="services.serving.knative.dev", gate=True),
    Kind("serving.kserve.io/v1beta1", "InferenceService", "inferenceservices",
         crd="inferenceservices.serving.kserve.io", gate=True),
    Kind("eventing.knative.dev/v1", "Trigger", "triggers", crd="triggers.eventing.knative.dev"),
    Kind("serving.knative.dev/v1beta1", "DomainMapping", "domainmappings", crd="domainmappings.serving.knative.dev"),
    Kind("sources.knative.dev/v1", "PingSource", "pingsources", crd="pingsources.sources.knative.dev"),
    Kind("sources.knative.dev/v1", "SinkBinding", "sinkbindings", crd="sinkbindings.sources.knative.dev"),
    Kind("sources.knative.dev/v1", "ApiServerSource", "apiserversources", crd="apiserversources.sources.knative.dev"),
    Kind("sources.knative.dev/v1", "ContainerSource", "containersources", crd="containersources.sources.knative.dev"),
    Kind("sources.knative.dev/v1beta1", "KafkaSource", "kafkasources", crd="kafkasources.sources.knative.dev"),
)
ORDER = {(k.api_version, k.kind): i for i, k in enumerate(KINDS)}
KIND_OF = {(k.api_version, k.kind): k for k in KINDS}

# Namespaces that belong to Kubernetes, MicroK8s or the platform: nothing in them is the user's.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "knative-serving", "knative-eventing",
                               "hybrid-knative-system",
                               "kourier-system", "kserve", "kubeflow", "metallb-system", "ingress",
                               "container-registry", "cert-manager", "observability", "gpu-operator-resources"})
SHARED_NAMESPACES = frozenset({"default"})  # exist everywhere: their objects are copied, not the Namespace
# ROS 2 bridges (ros2/objects.py, deployed for `events: ros2`): every part carries this label
BRIDGE_LABEL, BRIDGE_APP = "app.kubernetes.io/name", "ros2-bridge"
# Objects Kubernetes makes in every namespace by itself
BUILTIN_NAMES = {("ConfigMap", "kube-root-ca.crt"), ("ConfigMap", "istio-ca-root-cert"),
                 ("ServiceAccount", "default")}


@dataclasses.dataclass(frozen=True)
class Selection:
    namespaces: tuple[str, ...] = ()  # empty: every namespace that is not the system's
    labels: dict[str, str] = dataclasses.field(default_factory=dict)  # key=value selector on every object


def parse_selector(text: str | None) -> dict[str, str]:
    """``a=b,c=d`` (equality only: what the source's objects are listed and filtered by)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip().lstrip("=")
        if not sep or not key or "!" in key or any(c in value for c in " ,()"):
            raise ConfigError(f"unsupported label selector {part!r}",
                              resolution="use key=value pairs separated by commas, e.g. -l app=shop,tier=web")
        out[key] = value
    return out


def served_kinds(kube: KubeApi) -> list[Kind]:
    """The kinds to look at: built-in ones, and custom ones whose CRD the cluster has (and registers them)."""
    crds = {str(c["metadata"]["name"]): c for c in kube.list(CRD, "CustomResourceDefinition")}
    found = []
    for kind in KINDS:
        if kind.crd is None:
            found.append(kind)
            continue
        crd = crds.get(kind.crd)
        if crd is None or kind.version not in served_versions(crd):
            continue
        kube.register_kind(kind.api_version, kind.kind, kind.plural, namespaced=kind.namespaced)
        found.append(kind)
    return found


def served_versions(crd: dict[str, Any]) -> set[str]:
    return {str(v.get("name")) for v in (crd.get("spec") or {}).get("versions") or [] if v.get("served", True)}


def controlled(obj: Manifest) -> bool:
    """Made and owned by a controller (``ownerReferences[].controller``), e.g. the KService KServe makes for
    an InferenceService. (Secrets are judged by transform.secret_refusal, which gives the reason.)"""
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(o, dict) and o.get("controller") for o in owners)


def is_platform(obj: Manifest) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY) == PLATFORM


def _namespace_wanted(name: str, selection: Selection) -> bool:
    if name in SYSTEM_NAMESPACES or name.startswith("kube-") or name.startswith("knative-"):
        return False
    return not selection.namespaces or name in selection.namespaces


def select(kube: KubeApi, kinds: list[Kind], selection: Selection) -> list[Manifest]:
    """The user's objects, as the source stores them (one LIST per kind, across namespaces)."""
    system = [n for n in selection.namespaces if not _namespace_wanted(n, Selection())]
    if system:
        raise ConfigError(f"namespace {system[0]} belongs to Kubernetes or the platform, not to you",
                          resolution="clone copies users' objects; the platform is installed on the target by "
                          "clone itself (or `hybrid-knative enable`)")
    chosen: list[Manifest] = []
    namespaces: dict[str, Manifest] = {}
    for kind in kinds:
        if kind.kind == "Namespace":
            namespaces = {str(n["metadata"]["name"]): n for n in kube.list(kind.api_version, kind.kind)}
            continue
        labels = {**selection.labels, BRIDGE_LABEL: BRIDGE_APP} if kind.bridge else selection.labels
        if kind.bridge and selection.labels.get(BRIDGE_LABEL, BRIDGE_APP) != BRIDGE_APP:
            continue
        for obj in kube.list(kind.api_version, kind.kind, namespace=ALL_NAMESPACES, labels=labels or None):
            obj.setdefault("apiVersion", kind.api_version)
            obj.setdefault("kind", kind.kind)
            meta = obj.get("metadata") or {}
            ns = str(meta.get("namespace") or "")
            if not _namespace_wanted(ns, selection) or is_platform(obj):
                continue
            if (kind.kind, meta.get("name")) in BUILTIN_NAMES:
                continue
            if kind.kind != "Secret" and controlled(obj):
                continue  # made by a controller (KServe's predictor KService…): it makes it again on the target
            if is_platform(namespaces.get(ns, {})):
                continue
            chosen.append(obj)
    used = sorted({str(o["metadata"]["namespace"]) for o in chosen} | set(selection.namespaces))
    missing = [n for n in selection.namespaces if n not in namespaces]
    if missing:
        raise ConfigError(f"namespace {missing[0]} does not exist on the source cluster",
                          resolution="check --namespace (list them with `kubectl get namespaces`)")
    ns_objs = []
    for ns_name in used:
        found = namespaces.get(ns_name)
        if found is not None and ns_name not in SHARED_NAMESPACES and not is_platform(found):
            found.setdefault("apiVersion", "v1")
            found.setdefault("kind", "Namespace")
            ns_objs.append(found)
    return ns_objs + chosen


def is_bridge_part(obj: Manifest) -> bool:
    """A part of a ROS 2 bridge that only works next to a robot: its Deployment (hostNetwork, pinned to the
    robot's node, DDS multicast), its sink Service and ConfigMap, and the reply Trigger that delivers to
    that Service. The bridge's topic Triggers deliver to the user's KServices and are not parts of it."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if labels.get(BRIDGE_LABEL) != BRIDGE_APP:
        return False
    if obj.get("kind") == "Trigger":
        sub_ref = (((obj.get("spec") or {}).get("subscriber") or {}).get("ref")) or {}
        return not str(sub_ref.get("apiVersion", "")).startswith("serving.knative.dev/")
    return obj.get("kind") in ("Deployment", "Service", "ConfigMap") and (
        obj.get("kind") != "Service" or obj.get("apiVersion") == "v1")


def split_bridges(objs: list[Manifest]) -> tuple[list[Manifest], dict[str, list[str]]]:
    """(objects without the bridges' parts, ``ns/bridge`` → ``Kind name`` of each part left out)."""
    kept: list[Manifest] = []
    bridges: dict[str, list[str]] = {}
    for obj in objs:
        if not is_bridge_part(obj):
            kept.append(obj)
            continue
        meta = obj["metadata"]
        instance = (meta.get("labels") or {}).get("app.kubernetes.io/instance") or meta["name"]
        bridges.setdefault(f"{meta.get('namespace')}/{instance}", []).append(f"{obj['kind']} {meta['name']}")
    return kept, bridges


def sort_key(obj: Manifest) -> tuple[int, str, str]:
    meta = obj.get("metadata") or {}
    return (ORDER.get((str(obj.get("apiVersion")), str(obj.get("kind"))), len(ORDER)),
            str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def revisions_of(kube: KubeApi, namespaces: set[str]) -> dict[tuple[str, str], Manifest]:
    """(namespace, revision name) → Revision, read (never copied) to learn the digests that run."""
    kube.register_kind("serving.knative.dev/v1", "Revision", "revisions", namespaced=True)
    found: dict[tuple[str, str], Manifest] = {}
    if not namespaces:
        return found
    for rev in kube.list("serving.knative.dev/v1", "Revision", namespace=ALL_NAMESPACES):  # one request
        meta = rev.get("metadata") or {}
        if meta.get("namespace") in namespaces:
            found[(str(meta["namespace"]), str(meta.get("name")))] = rev
    return found


def ref(obj: Manifest) -> ObjectRef:
    meta = obj.get("metadata") or {}
    return ObjectRef(str(obj["apiVersion"]), str(obj["kind"]), meta.get("namespace"), str(meta["name"]))
