"""Turn a source object into the object the target gets. Pure functions on dicts, one per concern.

* server fields: status, uid, resourceVersion, generation, managedFields, owner references…
* Knative's bookkeeping: creator/lastModifier/routes annotations, *UID labels
* images: each container pinned to ``registry/repo@sha256:…`` (the digest that actually runs)
* domains: ``*.<local zone>`` hosts and ``NAME.NS.svc.cluster.local`` URLs of cloned public KServices,
  in env values, sinks, subscribers, dead-letter sinks and DomainMapping names → the target domain
* traffic: BYO revision names are replayed; traffic pinned to generated revisions collapses to latest
* Kafka: consumer groups get a per-cluster suffix (two clusters in one group split the topic)
* models: InferenceService storage URIs that point at the local cluster (its model store, a PVC, GridFS)
  are refused unless rewritten (``--model-uri FROM=TO``) or left out; ``oci://`` models are images
* secrets: by policy; never service-account tokens or Knative-generated TLS; pull secrets re-created
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from hybrid_knative.kube.objects import Manifest

CHECKSUM = "hybrid-knative.dev/clone-checksum"
CLONED_FROM = "hybrid-knative.dev/cloned-from"
SECRET_POLICIES = ("skip", "copy")

SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                   "ownerReferences", "finalizers", "deletionTimestamp", "deletionGracePeriodSeconds",
                   "generateName")
DROP_ANNOTATIONS = frozenset({
    "serving.knative.dev/creator", "serving.knative.dev/lastModifier", "serving.knative.dev/routes",
    "serving.knative.dev/routingStateModified", "eventing.knative.dev/creator", "eventing.knative.dev/lastModifier",
    "kubectl.kubernetes.io/last-applied-configuration", "client.knative.dev/updateTimestamp",
    "kubernetes.io/service-account.uid", "client.knative.dev/user-image", CHECKSUM, CLONED_FROM,
    "deployment.kubernetes.io/revision",
})
# A plain Service's addresses are the source cluster's (its service CIDR, IP families, node ports)
SERVICE_SERVER_SPEC = ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "healthCheckNodePort")
DROP_LABELS = frozenset({"kubernetes.io/metadata.name", "serving.knative.dev/route",
                         "serving.knative.dev/routingState", "serving.knative.dev/configurationGeneration"})
_KNATIVE_DOMAINS = ("knative.dev/", "kserve.io/")
VISIBILITY = "networking.knative.dev/visibility"
PULL_SECRET_TYPES = ("kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg")


@dataclasses.dataclass
class Plan:
    """What the transformations need to know about the whole clone."""

    source_zone: str | None  # the source's Knative domain (e.g. hk.internal)
    target_domain: str | None  # the target's Knative domain
    cluster_suffix: str  # appended to Kafka consumer groups
    secrets: str = "skip"  # skip | copy
    pins: dict[tuple[str, str, str, str], str] = dataclasses.field(default_factory=dict)  # (kind, ns, name, container)
    public_services: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # (ns, name) of public KServices
    pull_secret: dict[str, Any] | None = None  # the target registry's dockerconfigjson, or None
    model_uris: tuple[tuple[str, str], ...] = ()  # storageUri prefix rewrites (local → the cloud's store)
    model_service_account: str | None = None  # replaces the local model store's account on rewritten models
    warnings: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)  # "Secret ns/name: why"


# --- server fields and Knative's bookkeeping -------------------------------------------------------

def strip_server_fields(obj: Manifest) -> Manifest:
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.setdefault("metadata", {})
    for key in SERVER_METADATA:
        meta.pop(key, None)
    if out.get("kind") == "Namespace":
        out.pop("spec", None)  # spec.finalizers: the server's
    if out.get("kind") == "ServiceAccount":
        out.pop("secrets", None)  # token secrets of the source cluster
    if out.get("kind") == "Service" and out.get("apiVersion") == "v1" and isinstance(out.get("spec"), dict):
        for key in SERVICE_SERVER_SPEC:
            out["spec"].pop(key, None)
        for port in out["spec"].get("ports") or []:
            if isinstance(port, dict):
                port.pop("nodePort", None)
    return out


def _knative_uid_label(key: str) -> bool:
    return any(d in key for d in _KNATIVE_DOMAINS) and key.endswith("UID")


def strip_knative_bookkeeping(obj: Manifest) -> Manifest:
    out = copy.deepcopy(obj)
    for meta in _metas(out):
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in DROP_ANNOTATIONS}
        labels = {k: v for k, v in (meta.get("labels") or {}).items()
                  if k not in DROP_LABELS and not _knative_uid_label(k)}
        for key, value in (("annotations", annotations), ("labels", labels)):
            if value:
                meta[key] = value
            else:
                meta.pop(key, None)
    return out


def _metas(obj: Manifest) -> list[dict[str, Any]]:
    metas = [obj.setdefault("metadata", {})]
    template = (obj.get("spec") or {}).get("template")
    if isinstance(template, dict) and isinstance(template.get("metadata"), dict):
        metas.append(template["metadata"])
    return metas


# --- images ----------------------------------------------------------------------------------------

def pod_spec_paths(obj: Manifest) -> list[tuple[str, dict[str, Any]]]:
    """(label, pod spec) pairs: KService / ContainerSource templates, InferenceService components."""
    spec = obj.get("spec") or {}
    found: list[tuple[str, dict[str, Any]]] = []
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        found.append(("template", template["spec"]))
    if obj.get("kind") == "InferenceService":
        for part in ("predictor", "transformer", "explainer"):
            if isinstance(spec.get(part), dict):
                found.append((part, spec[part]))
    return found


def containers_of(obj: Manifest) -> list[tuple[str, dict[str, Any]]]:
    """(key, container) with key ``part/name`` (``template/user-container`` …)."""
    found = []
    for label, pod in pod_spec_paths(obj):
        for key in ("initContainers", "containers"):
            for index, c in enumerate(pod.get(key) or []):
                if isinstance(c, dict) and c.get("image"):
                    found.append((f"{label}/{c.get('name') or f'{key}-{index}'}", c))
        if obj.get("kind") == "InferenceService" and isinstance(pod.get("model"), dict) and pod["model"].get("image"):
            found.append((f"{label}/model", pod["model"]))
    return found


OCI = "oci://"


def model_images(obj: Manifest) -> list[tuple[str, dict[str, Any], str]]:
    """(key, holder, field) of InferenceService models stored as OCI images (KServe's modelcars, ``oci://``):
    images like any other — pinned by digest and copied to the target registry."""
    return [(f"{component}/model-uri-{index}", holder, field)
            for index, (component, holder, field) in enumerate(model_uris(obj))
            if str(holder[field]).startswith(OCI)]


def images_of(obj: Manifest) -> list[tuple[str, str, str]]:
    """(key, image reference, container name) of every image an object runs: containers, then OCI models."""
    found = [(key, str(c["image"]), str(c.get("name") or "")) for key, c in containers_of(obj)]
    found += [(key, str(holder[field])[len(OCI):], "") for key, holder, field in model_images(obj)]
    return found


def pin_images(obj: Manifest, plan: Plan) -> Manifest:
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    where = (str(out.get("kind")), str(meta.get("namespace")), str(meta.get("name")))
    for key, container in containers_of(out):
        pinned = plan.pins.get((*where, key))
        if pinned:
            container["image"] = pinned
    for key, holder, field in model_images(out):
        pinned = plan.pins.get((*where, key))
        if pinned:
            holder[field] = OCI + pinned
    return out


def pull_secret_names(obj: Manifest) -> set[str]:
    names: set[str] = set()
    pods = [p for _, p in pod_spec_paths(obj)]
    if obj.get("kind") == "ServiceAccount":
        pods.append(obj)
    for pod in pods:
        for ref in pod.get("imagePullSecrets") or []:
            if isinstance(ref, dict) and ref.get("name"):
                names.add(str(ref["name"]))
    return names


def drop_pull_secrets(obj: Manifest) -> Manifest:
    """Without target registry credentials the references go: the nodes must have pull access themselves."""
    out = copy.deepcopy(obj)
    pods = [p for _, p in pod_spec_paths(out)] + ([out] if out.get("kind") == "ServiceAccount" else [])
    for pod in pods:
        pod.pop("imagePullSecrets", None)
    return out


# --- domains ---------------------------------------------------------------------------------------

_URL = re.compile(r"^(https?)://([^/:?#\s]+)(.*)$")
_CLUSTER_LOCAL = re.compile(r"^(?P<name>[a-z0-9-]+)\.(?P<ns>[a-z0-9-]+)\.svc\.cluster\.local\.?$")


def rewrite_host(host: str, plan: Plan) -> str:
    domain = plan.target_domain
    if not domain:
        return host
    zone = plan.source_zone
    if zone and zone != "svc.cluster.local" and host.endswith("." + zone) and not host.endswith("." + domain):
        return host[: -len(zone)] + domain
    match = _CLUSTER_LOCAL.match(host)
    if match and (match["ns"], match["name"]) in plan.public_services:
        return f"{match['name']}-{match['ns']}.{domain}"
    return host


def rewrite_url(text: str, plan: Plan) -> str:
    match = _URL.match(text)
    if match:
        host = rewrite_host(match.group(2), plan)
        return f"{match.group(1)}://{host}{match.group(3)}"
    if " " not in text and "." in text:  # a bare host name (env values)
        return rewrite_host(text, plan)
    return text


def _walk_strings(node: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(node, dict):
        return {k: _walk_strings(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk_strings(v, fn) for v in node]
    if isinstance(node, str):
        return fn(node)
    return node


def rewrite_domains(obj: Manifest, plan: Plan) -> Manifest:
    """URIs (sinks, subscribers, dead-letter sinks), env values and DomainMapping names."""
    out = copy.deepcopy(obj)
    spec = out.get("spec")
    if isinstance(spec, dict):
        for _, c in containers_of(out):
            for env in c.get("env") or []:
                if isinstance(env, dict) and isinstance(env.get("value"), str):
                    env["value"] = rewrite_url(env["value"], plan)
        out["spec"] = _rewrite_uris(spec, plan)
    if out.get("kind") == "DomainMapping":
        meta = out["metadata"]
        meta["name"] = rewrite_host(str(meta["name"]), plan)
    if out.get("kind") == "ConfigMap" and isinstance(out.get("data"), dict):
        out["data"] = {k: rewrite_url(v, plan) if _URL.match(v) else v for k, v in out["data"].items()}
    return out


def _rewrite_uris(node: Any, plan: Plan) -> Any:
    if isinstance(node, dict):
        return {k: (rewrite_url(v, plan) if k in ("uri", "url") and isinstance(v, str) else _rewrite_uris(v, plan))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_uris(v, plan) for v in node]
    return node


# --- traffic ---------------------------------------------------------------------------------------

def replay_traffic(obj: Manifest, plan: Plan) -> Manifest:
    """BYO revision names (spec.template.metadata.name) are re-created on the target under the same
    name, so traffic that names only them is kept. Traffic naming generated (or older) revisions cannot
    be replayed — those revisions will not exist there — and collapses to 100 % latest, with a warning."""
    if obj.get("kind") != "Service" or not str(obj.get("apiVersion", "")).startswith("serving.knative.dev/"):
        return obj
    spec = obj.get("spec") or {}
    traffic = spec.get("traffic")
    if not traffic:
        return obj
    byo = ((spec.get("template") or {}).get("metadata") or {}).get("name")
    named = {str(t["revisionName"]) for t in traffic if isinstance(t, dict) and t.get("revisionName")}
    if not named or named <= {byo}:
        return obj
    out = copy.deepcopy(obj)
    out["spec"]["traffic"] = [{"latestRevision": True, "percent": 100}]
    meta = obj.get("metadata") or {}
    plan.warnings.append(f"Service {meta.get('namespace')}/{meta.get('name')}: traffic pinned to revision(s) "
                         f"{', '.join(sorted(named - {byo}))} cannot be replayed (only the current template's "
                         "revision is re-created); collapsed to 100% latest. Give revisions names "
                         "(spec.template.metadata.name) to keep traffic splits across clusters.")
    return out


# --- Kafka -----------------------------------------------------------------------------------------

def _in_cluster_host(server: str, plan: Plan) -> bool:
    host = server.rsplit(":", 1)[0].rstrip(".")
    zone = plan.source_zone
    return host.endswith((".svc", ".svc.cluster.local")) or bool(zone and host.endswith("." + zone)) \
        or host in ("localhost", "127.0.0.1")


def suffix_consumer_group(obj: Manifest, plan: Plan) -> Manifest:
    if obj.get("kind") != "KafkaSource":
        return obj
    servers = [str(s) for s in (obj.get("spec") or {}).get("bootstrapServers") or []]
    local = [s for s in servers if _in_cluster_host(s, plan)]
    if local:
        meta = obj.get("metadata") or {}
        plan.warnings.append(f"KafkaSource {meta.get('namespace')}/{meta.get('name')} reads from Kafka at "
                             f"{', '.join(local)}, a name inside the source cluster: the target needs a Kafka "
                             "reachable under that name (or change bootstrapServers on the source and re-run)")
    group = (obj.get("spec") or {}).get("consumerGroup")
    if not group:
        return obj  # Knative derives one from the object's UID, which differs per cluster anyway
    out = copy.deepcopy(obj)
    suffix = f"-{plan.cluster_suffix}"
    if not str(group).endswith(suffix):
        out["spec"]["consumerGroup"] = f"{group}{suffix}"
    return out


# --- models (InferenceService storage) -------------------------------------------------------------

LOCAL_MODEL_ACCOUNT = "hk-model-store"  # the ServiceAccount `model serve` gives s3:// models of the local store
LOCAL_ONLY_SCHEMES = {"pvc://": "a PersistentVolumeClaim of the local cluster (its data is not copied)",
                      "gridfs://": "the local cluster's GridFS model backend"}
ISVC_COMPONENTS = ("predictor", "transformer", "explainer")


def model_uris(obj: Manifest) -> list[tuple[str, dict[str, Any], str]]:
    """(component, holder, key) of every storage URI of an InferenceService (``holder[key]`` is the URI)."""
    found: list[tuple[str, dict[str, Any], str]] = []
    if obj.get("kind") != "InferenceService":
        return found
    spec = obj.get("spec") or {}

    def walk(component: str, node: Any, depth: int) -> None:
        if not isinstance(node, dict) or depth > 2:
            return
        if isinstance(node.get("storageUri"), str):
            found.append((component, node, "storageUri"))
        for item in node.get("storageUris") or []:
            if isinstance(item, dict) and isinstance(item.get("uri"), str):
                found.append((component, item, "uri"))
        for key, value in node.items():
            if key not in ("containers", "initContainers", "volumes", "logger", "batcher"):
                walk(component, value, depth + 1)

    for component in ISVC_COMPONENTS:
        walk(component, spec.get(component), 0)
    return found


def local_model_reason(obj: Manifest, component: str, uri: str) -> str | None:
    """Why ``uri`` can only be read inside the source cluster (None: it may work from the cloud)."""
    for scheme, why in LOCAL_ONLY_SCHEMES.items():
        if uri.startswith(scheme):
            return why
    part = ((obj.get("spec") or {}).get(component)) or {}
    if uri.startswith("s3://") and part.get("serviceAccountName") == LOCAL_MODEL_ACCOUNT:
        return "the local model store (SeaweedFS in the cluster, credentials of its account hk-model-store)"
    return None  # oci:// models are images: pinned and copied to --registry like the containers' images


def _rewritten(uri: str, plan: Plan) -> str:
    for old, new in plan.model_uris:
        if uri.startswith(old):
            return new + uri[len(old):]
    return uri


def local_models(obj: Manifest, plan: Plan) -> list[str]:
    """``URI (why)`` of each storage URI that stays local after ``--model-uri`` rewrites."""
    found = []
    for component, holder, key in model_uris(obj):
        uri = str(holder[key])
        new = _rewritten(uri, plan)
        if new != uri:
            continue  # the user says the model is there; its reachability is theirs to vouch for
        reason = local_model_reason(obj, component, uri)
        if reason:
            found.append(f"{uri} ({reason})")
    return found


def rewrite_model_storage(obj: Manifest, plan: Plan) -> Manifest:
    """Apply ``--model-uri`` prefixes; a model moved off the local store loses that store's account."""
    uris = model_uris(obj)
    if not uris or not plan.model_uris:
        return obj
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    where = f"InferenceService {meta.get('namespace')}/{meta.get('name')}"
    moved_components = set()
    for component, holder, key in model_uris(out):
        uri = str(holder[key])
        new = _rewritten(uri, plan)
        if new != uri:
            holder[key] = new
            if local_model_reason(out, component, uri):
                moved_components.add(component)
    for component in sorted(moved_components):
        part = out["spec"][component]
        if part.get("serviceAccountName") != LOCAL_MODEL_ACCOUNT:
            continue
        if plan.model_service_account:
            part["serviceAccountName"] = plan.model_service_account
        else:
            part.pop("serviceAccountName")
            plan.warnings.append(f"{where}: its model moved off the local model store; the {component} now runs "
                                 "as the namespace's default ServiceAccount, which needs read access to the new "
                                 "location (workload identity, IRSA…) — or pass --model-service-account NAME")
    return out


# --- secrets ---------------------------------------------------------------------------------------

def secret_refusal(obj: Manifest) -> str | None:
    """Why a Secret must never be copied (None: the policy decides)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    if obj.get("type") == "kubernetes.io/service-account-token" or "kubernetes.io/service-account.name" in annotations:
        return "a service-account token (the target cluster issues its own)"
    knative_owned = any(str(o.get("apiVersion", "")).split("/")[0].endswith("knative.dev")
                        for o in meta.get("ownerReferences") or [] if isinstance(o, dict))
    knative_labelled = any(k.startswith(("networking.internal.knative.dev/", "serving.knative.dev/",
                                         "networking.knative.dev/", "knative.dev/")) for k in labels)
    if obj.get("type") == "kubernetes.io/tls" and (knative_owned or knative_labelled):
        return "TLS generated by Knative (the target's Knative issues its own certificates)"
    if knative_owned:
        return "made by Knative's controllers"
    if obj.get("type") == "helm.sh/release.v1":
        return "a Helm release record"
    return None


def pull_secret(name: str, namespace: str, plan: Plan) -> Manifest:
    assert plan.pull_secret is not None
    payload = json.dumps(plan.pull_secret, sort_keys=True).encode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": name, "namespace": namespace},
            "data": {".dockerconfigjson": base64.b64encode(payload).decode()}}


# --- all together ----------------------------------------------------------------------------------

def transform(obj: Manifest, plan: Plan, *, pull_secrets: set[tuple[str, str]]) -> Manifest | None:
    """The target's object, or None when it is not copied (the reason goes to ``plan.skipped``)."""
    meta = obj.get("metadata") or {}
    where = f"{obj.get('kind')} {str(meta['namespace']) + '/' if meta.get('namespace') else ''}{meta.get('name')}"
    if obj.get("kind") == "Secret":
        ns, name = str(meta.get("namespace")), str(meta.get("name"))
        if obj.get("type") in PULL_SECRET_TYPES or (ns, name) in pull_secrets:
            if plan.pull_secret is None:
                plan.skipped.append(f"{where}: a pull secret for the source registry (no --registry-authfile)")
                return None
            return pull_secret(name, ns, plan)
        refusal = secret_refusal(obj)
        if refusal:
            plan.skipped.append(f"{where}: {refusal}")
            return None
        if plan.secrets != "copy":
            plan.skipped.append(f"{where}: secrets are skipped (--secrets copy copies them)")
            return None
    out = strip_knative_bookkeeping(strip_server_fields(obj))
    if plan.pull_secret is None and pull_secret_names(out):
        out = drop_pull_secrets(out)
    out = pin_images(out, plan)
    out = rewrite_domains(out, plan)
    out = replay_traffic(out, plan)
    out = rewrite_model_storage(out, plan)
    return suffix_consumer_group(out, plan)


def is_public(ksvc: Manifest) -> bool:
    labels = (ksvc.get("metadata") or {}).get("labels") or {}
    return labels.get(VISIBILITY) != "cluster-local"


def is_public_model(obj: Manifest) -> bool:
    """An InferenceService served through Knative's ingress (its status.url answers from outside): not
    cluster-local, not KServe's Standard/RawDeployment mode (an in-cluster URL only)."""
    if obj.get("kind") != "InferenceService":
        return False
    meta = obj.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    if "cluster-local" in (labels.get("networking.kserve.io/visibility"), labels.get(VISIBILITY)):
        return False
    return annotations.get("serving.kserve.io/deploymentMode", "Serverless") in ("Serverless", "Knative")


def target_url(name: str, namespace: str, domain: str) -> str:
    return urllib.parse.urlunsplit(("http", f"{name}-{namespace}.{domain}", "", "", ""))
