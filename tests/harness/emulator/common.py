"""Shared pieces of the API emulator: constants, request types, errors rendered as apiserver Status
objects, URL parsing and small object helpers."""

from __future__ import annotations

import copy
import datetime
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kmock

_HOST = "127.0.0.1"
_STARTUP_TIMEOUT = 10.0
_SHUTDOWN_TIMEOUT = 10.0
_CALL_TIMEOUT = 10.0

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

_CRD_RESOURCE = kmock.resource(group="apiextensions.k8s.io", version="v1", plural="customresourcedefinitions")
_NAMESPACES = kmock.resource(group="", version="v1", plural="namespaces")
_SERVICES = kmock.resource(group="", version="v1", plural="services")
_DEPLOYMENTS = kmock.resource(group="apps", version="v1", plural="deployments")

# Groups in kmock's bundled discovery data (taken from a K3s cluster) that a fresh MicroK8s
# cluster does not serve: they come from optional CRDs / aggregated API servers.
_EXCLUDED_BUNDLED_GROUPS = frozenset({"gateway.networking.k8s.io", "metrics.k8s.io"})

# A fallback for the kinds this project uses, in case kmock's bundled discovery data changes:
# (group, plural) -> (kind, namespaced, has a status subresource).
_KNOWN_KINDS: dict[tuple[str, str], tuple[str, bool, bool]] = {
    ("", "namespaces"): ("Namespace", False, True),
    ("", "configmaps"): ("ConfigMap", True, False),
    ("", "secrets"): ("Secret", True, False),
    ("", "services"): ("Service", True, True),
    ("", "serviceaccounts"): ("ServiceAccount", True, False),
    ("", "pods"): ("Pod", True, True),
    ("", "nodes"): ("Node", False, True),
    ("", "events"): ("Event", True, False),
    ("", "endpoints"): ("Endpoints", True, False),
    ("discovery.k8s.io", "endpointslices"): ("EndpointSlice", True, False),
    ("apps", "deployments"): ("Deployment", True, True),
    ("apps", "daemonsets"): ("DaemonSet", True, True),
    ("apps", "statefulsets"): ("StatefulSet", True, True),
    ("apps", "replicasets"): ("ReplicaSet", True, True),
    ("batch", "jobs"): ("Job", True, True),
    ("apiextensions.k8s.io", "customresourcedefinitions"): ("CustomResourceDefinition", False, True),
    ("rbac.authorization.k8s.io", "roles"): ("Role", True, False),
    ("rbac.authorization.k8s.io", "rolebindings"): ("RoleBinding", True, False),
    ("rbac.authorization.k8s.io", "clusterroles"): ("ClusterRole", False, False),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): ("ClusterRoleBinding", False, False),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): (
        "ValidatingWebhookConfiguration",
        False,
        False,
    ),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): ("MutatingWebhookConfiguration", False, False),
    ("policy", "poddisruptionbudgets"): ("PodDisruptionBudget", True, True),
    ("autoscaling", "horizontalpodautoscalers"): ("HorizontalPodAutoscaler", True, True),
}

_RESOURCE_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes' random name suffixes
_SERVICE_CIDR_PREFIX = "10.152.183."  # MicroK8s' default service CIDR is 10.152.183.0/24
_LABEL_SERVICE_NAME = "kubernetes.io/service-name"
_LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
_ENDPOINTSLICE_CONTROLLER = "endpointslice-controller.k8s.io"



# --------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received by the emulator (``query`` is percent-decoded)."""

    method: str
    path: str
    query: str
    content_type: str | None


@dataclass(frozen=True)
class K8sRequest:
    """The Kubernetes meaning of the request being served (``Store.request``, for hooks).

    ``verb`` is one of get/list/watch/create/update/patch/delete/deletecollection, or ``None``
    for non-resource paths (``/version``, discovery, ...).
    """

    method: str
    path: str
    verb: str | None
    api_version: str | None
    plural: str | None
    namespace: str | None
    name: str | None
    subresource: str | None
    params: Mapping[str, str]


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        group, version = api_version.rsplit("/", 1)
        return group, version
    return "", api_version


@functools.lru_cache(maxsize=1024)
def _res(api_version: str, plural: str) -> kmock.resource:
    group, version = _split_api_version(api_version)
    return kmock.resource(group=group, version=version, plural=plural)


def _api_version_of(res: kmock.resource) -> str:
    return str(res.version) if not res.group else f"{res.group}/{res.version}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _suffix(seed: str, length: int = 5) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(_NAME_ALPHABET[b % len(_NAME_ALPHABET)] for b in digest[:length])


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _without(obj: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _condition(obj: Mapping[str, Any], type_: str) -> str | None:
    conditions = (obj.get("status") or {}).get("conditions") or []
    for cond in conditions:
        if isinstance(cond, Mapping) and cond.get("type") == type_:
            return str(cond.get("status"))
    return None


# --------------------------------------------------------------------------------------------
# Errors (rendered as real apiserver Status objects)
# --------------------------------------------------------------------------------------------


def _error(code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=dict(details or {}))


def _qualified(res: kmock.resource) -> str:
    return f"{res.plural}.{res.group}" if res.group else str(res.plural)


def _details(res: kmock.resource, name: str | None) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": res.plural}
    if name:
        details["name"] = name
    if res.group:
        details["group"] = res.group
    return details


def _not_found(res: kmock.resource, name: str | None) -> kmock.KubernetesError:
    return _error(404, "NotFound", f'{_qualified(res)} "{name}" not found', _details(res, name))


def _no_such_resource() -> kmock.KubernetesError:
    return _error(404, "NotFound", "the server could not find the requested resource")


def _already_exists(res: kmock.resource, name: str) -> kmock.KubernetesError:
    return _error(409, "AlreadyExists", f'{_qualified(res)} "{name}" already exists', _details(res, name))


def _conflict(res: kmock.resource, name: str) -> kmock.KubernetesError:
    return _error(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(res)} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        _details(res, name),
    )


def _bad_request(message: str) -> kmock.KubernetesError:
    return _error(400, "BadRequest", message)


def _invalid(res: kmock.resource, name: str | None, message: str) -> kmock.KubernetesError:
    return _error(422, "Invalid", message, _details(res, name))


def _method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> kmock.KubernetesError:
    return _error(405, "MethodNotAllowed", message)


def _status_body(code: int, reason: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _respond(payload: Any, status: int = 200) -> kmock.Response:
    """A JSON response with exactly ``Content-Type: application/json`` (as the apiserver sends)."""
    return kmock.Response(
        status=status,
        payload=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )


# --------------------------------------------------------------------------------------------
# Paths & selectors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Path:
    group: str | None  # None: not an /api or /apis path
    version: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def _parse_path(path: str) -> _Path:
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    elif len(parts) == 2 and parts[0] == "apis":
        return _Path(group=parts[1])
    else:
        return _Path(group=None)
    namespace = None
    # /namespaces/NS/PLURAL[/NAME[/SUB...]] vs. the namespaces resource itself:
    # /namespaces[/NAME[/status|/finalize]]
    if len(rest) >= 3 and rest[0] == "namespaces" and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return _Path(group, version, plural, namespace, name, subresource)


def _verb(method: str, path: _Path, params: Mapping[str, str]) -> str | None:
    if path.group is None or path.plural is None:
        return None
    method = method.upper()
    if method == "GET":
        if params.get("watch") in ("true", "1", "True"):
            return "watch"
        return "get" if path.name else "list"
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if path.name else "deletecollection",
    }.get(method)


_KMOCK_ACTIONS = {
    "get": kmock.action.FETCH,
    "list": kmock.action.LIST,
    "watch": kmock.action.WATCH,
    "create": kmock.action.CREATE,
    "patch": kmock.action.UPDATE,
    "delete": kmock.action.DELETE,
}

@dataclass(frozen=True)
class _Info:
    kind: str
    namespaced: bool | None  # None: unknown (seeded objects of an undeclared resource)
    status_subresource: bool



_NAMESPACE_FINALIZER = "kubernetes"
_CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
# Metadata the apiserver owns: never part of an apply configuration's managed fields.
_SYSTEM_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
        "generateName",
    }
)


def _namespace_not_found(namespace: str) -> kmock.KubernetesError:
    """What a real apiserver answers when creating into a namespace that does not exist."""
    return _error(404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"})


def _namespace_terminating(res: kmock.resource, name: str, namespace: str) -> kmock.KubernetesError:
    return _error(
        403,
        "Forbidden",
        f'{_qualified(res)} "{name}" is forbidden: unable to create new content in namespace {namespace} '
        "because it is being terminated",
        {
            **_details(res, name),
            "causes": [
                {
                    "reason": "NamespaceTerminating",
                    "message": f"namespace {namespace} is being terminated",
                    "field": "metadata.namespace",
                }
            ],
        },
    )


def _invalid_fields(
    kind: str, group: str, name: str | None, errors: list[tuple[str, str, str]]
) -> kmock.KubernetesError:
    """422 Invalid like the apiserver: ``errors`` are (field, reason, "Invalid value: …: detail")."""
    texts = [f"{field}: {text}" for field, _, text in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: dict[str, Any] = {
        "name": name or "",
        "kind": kind,
        "causes": [{"reason": reason, "message": text, "field": field} for field, reason, text in errors],
    }
    if group:
        details["group"] = group
    return _error(422, "Invalid", f'{kind} "{name or ""}" is invalid: {joined}', details)


def _copy(obj: Any) -> Any:
    return copy.deepcopy(obj)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
