"""An in-process Kubernetes API emulator that speaks real HTTP on 127.0.0.1.

The project's real (synchronous) ``lightkube.Client`` runs unchanged against it::

    with ApiServer(controller=FakeController()) as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        client = lightkube.Client(config=lightkube.KubeConfig.from_file(kubeconfig), field_manager="x")
        client.apply(ConfigMap(metadata=ObjectMeta(name="cm", namespace="default"), data={"k": "v"}))
        assert api.get("v1", "configmaps", "cm", "default")["data"] == {"k": "v"}

It is built on kmock's ``KubernetesEmulator`` (HTTP plumbing, response rendering, kmock's DSL
reactions for ad-hoc overrides such as ``api.emulator["get /healthz"] << b"ok"``, discovery
endpoints and the versioned object storage ``api.emulator.objects``), with the gaps that matter
to a real client filled in:

* kmock cannot parse ``/api/v1/namespaces[/NAME]`` (it crashes or treats the name as a
  namespace), has no PUT, no deletecollection, no server-side apply creating missing objects,
  no label/field selectors, no ``kind``/``apiVersion`` on lists, a wrong ``groupVersion`` for
  ``/api/v1`` ("/v1"), a hard-coded ``/version`` and error bodies with
  ``Content-Type: application/json; charset=utf-8`` (which lightkube does not turn into
  ``ApiError``). All CRUD semantics are therefore implemented here; kmock's own mutation logic
  in ``KubernetesEmulator._handle`` is bypassed.
* Objects get ``uid``, an incrementing ``resourceVersion``, ``creationTimestamp``,
  ``generation`` (bumped when anything outside metadata/status changes), ``metadata.namespace``
  for namespaced paths; no-op writes keep the resourceVersion (as a real apiserver does).
* Resources with a ``status`` subresource ignore status changes on the main endpoint (and drop
  ``status`` on create); ``.../status`` writes change nothing but the status.
* Known resources are the built-in ones (kmock's bundled discovery data, minus the Gateway API
  and metrics groups), the custom resources of stored CRDs (404 while a CRD is not
  ``Established``) and any resource that has seeded objects; anything else is 404.

The emulator runs in a background thread with its own asyncio loop. ``FakeController`` (when
given) is run synchronously inside that loop before every request is served, so each response
sees a consistent, deterministic state (no timers, no sleeps).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import gzip
import hashlib
import importlib.resources
import json
import pathlib
import re
import threading
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal.rendering import StreamingError  # not re-exported by kmock

__all__ = [
    "ApiServer",
    "FakeController",
    "K8sRequest",
    "RecordedRequest",
    "Store",
]

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


def _method_not_allowed(message: str = "the server does not allow this method on the requested resource"):
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

_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_REQUIREMENT = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_REQUIREMENT = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def parse_label_selector(selector: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """Parse ``k=v,k2!=v2,k3 in (a,b),k4 notin (c),k5,!k6`` into (key, operator, values)."""
    requirements: list[tuple[str, str, tuple[str, ...]]] = []
    for part in _split_selector(selector):
        if m := _SET_REQUIREMENT.match(part):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append((m.group(1), m.group(2), values))
        elif m := _EQ_REQUIREMENT.match(part):
            op = "!=" if m.group(2) == "!=" else "="
            requirements.append((m.group(1), op, (m.group(3),)))
        elif m := _EXISTS_REQUIREMENT.match(part):
            requirements.append((m.group(2), "!" if m.group(1) else "exists", ()))
        else:
            raise _bad_request(f"unable to parse requirement: {part!r}")
    return requirements


def _labels_match(labels: Mapping[str, str], requirements: Iterable[tuple[str, str, tuple[str, ...]]]) -> bool:
    for key, op, values in requirements:
        present = key in labels
        value = labels.get(key)
        if op == "=" and value != values[0]:
            return False
        if op == "!=" and present and value == values[0]:
            return False
        if op == "in" and (not present or value not in values):
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
    return True


def _parse_field_selector(selector: str) -> list[tuple[str, bool, str]]:
    requirements = []
    for part in _split_selector(selector):
        if m := _EQ_REQUIREMENT.match(part):
            requirements.append((m.group(1), m.group(2) != "!=", m.group(3)))
        else:
            raise _bad_request(f"invalid field selector: {part!r}")
    return requirements


def _field_value(obj: Mapping[str, Any], dotted: str) -> str:
    value: Any = obj
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fields_match(obj: Mapping[str, Any], requirements: Iterable[tuple[str, bool, str]]) -> bool:
    return all((_field_value(obj, path) == value) == equal for path, equal, value in requirements)


@dataclass(frozen=True)
class _Selectors:
    labels: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    fields: tuple[tuple[str, bool, str], ...] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> _Selectors:
        return cls(
            labels=tuple(parse_label_selector(params.get("labelSelector", ""))),
            fields=tuple(_parse_field_selector(params.get("fieldSelector", ""))),
        )

    def match(self, obj: Mapping[str, Any]) -> bool:
        labels = _meta(obj).get("labels") or {}
        return _labels_match(labels, self.labels) and _fields_match(obj, self.fields)


@dataclass(frozen=True)
class _Info:
    kind: str
    namespaced: bool | None  # None: unknown (seeded objects of an undeclared resource)
    status_subresource: bool


@attrs.define
class _Watcher:
    res: kmock.resource
    namespace: str | None
    selectors: _Selectors
    queue: asyncio.Queue[dict[str, Any] | None]


# --------------------------------------------------------------------------------------------
# The emulator (runs inside the background event loop)
# --------------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class KubernetesApiEmulator(kmock.KubernetesEmulator):
    """kmock's KubernetesEmulator with a realistic apiserver CRUD layer (see the module doc)."""

    server_version: str = "1.34.2"
    controller: FakeController | None = None
    recorder: Callable[[RecordedRequest], None] | None = None

    # Unexpected (non-Kubernetes) exceptions raised while serving; ApiServer re-raises them.
    internal_errors: list[BaseException] = attrs.field(factory=list, init=False)

    _rv: int = attrs.field(default=0, init=False)
    _uids: int = attrs.field(default=0, init=False)
    _cluster_ips: int = attrs.field(default=0, init=False)
    _watchers: list[_Watcher] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()  # kmock's discovery & (now unused) CRUD fallbacks
        # = self.resources.load_bundled(), without its importlib.resources DeprecationWarning.
        bundled = importlib.resources.files("kmock._internal").joinpath("resources.json.gz").read_bytes()
        self.resources.load_data(gzip.decompress(bundled))
        for res in list(self.resources):
            if res.group in _EXCLUDED_BUNDLED_GROUPS:
                del self.resources[res]
        self.fallback["get /version/"] << self._serve_server_version
        for probe in ("/healthz", "/livez", "/readyz"):
            self.fallback["get", probe] << kmock.Response(
                status=200, payload=b"ok", headers={"Content-Type": "text/plain; charset=utf-8"}
            )
        # Sub-priority above kmock's own fallbacks, below any user-defined reaction.
        # Two reactions: kmock's Response objects keep the last status/headers of a reaction.
        (self.fallback**1)[self._is_watch] << self._serve_watch
        (self.fallback**1)[self._is_resource_request] << self._serve_resource

    # -- request plumbing ---------------------------------------------------------------------

    @staticmethod
    def _is_resource_request(request: kmock.Request) -> bool:
        return request.resource is not None and request.resource.plural is not None

    @staticmethod
    def _is_watch(request: kmock.Request) -> bool:
        return request.action == kmock.action.WATCH

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # Same as kmock's RawHandler.__call__, but with our own request parsing.
        await raw_request.read()
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            request = await self._parse_request(raw_request)
            self._requests.append(request)
            try:
                return await self._handle(request)
            except StreamingError as e:
                raw_response = e.args[0]
                if e.__cause__ is not None:
                    raise e.__cause__ from None
                raise
        except Exception as e:
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(e)
            await self._stream_error(e, raw_response)
            await raw_response.write_eof()
            return raw_response

    async def _parse_request(self, raw_request: aiohttp.web.BaseRequest) -> kmock.Request:
        body = await raw_request.read()
        text = body.decode("utf-8", errors="replace")
        params = dict(raw_request.query)
        path = _parse_path(raw_request.path)
        verb = _verb(raw_request.method, path, params)
        try:
            data = self._decode_body(text, raw_request.headers.get("Content-Type")) if body else None
        except kmock.KubernetesError:
            data = None
        resource = None
        if path.group is not None:
            resource = kmock.resource(group=path.group, version=path.version, plural=path.plural)
        return kmock.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=params,
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            body=body,
            text=text,
            data=data,
            action=_KMOCK_ACTIONS.get(verb or ""),
            resource=resource,
            namespace=path.namespace,
            name=path.name,
            subresource=path.subresource,
        )

    @staticmethod
    def _decode_body(text: str, content_type: str | None) -> Any:
        try:
            if "yaml" in _media_type(content_type):
                return yaml.safe_load(text)
            return json.loads(text)
        except (ValueError, yaml.YAMLError) as e:
            raise _bad_request(f"the request body could not be decoded: {e}") from e

    @staticmethod
    def _content_type(request: kmock.Request) -> str | None:
        for key, value in request.headers.items():
            if key.lower() == "content-type":
                return value
        return None

    def _k8s_request(self, request: kmock.Request) -> K8sRequest:
        res = request.resource
        path = _Path(
            group=None if res is None else res.group,
            version=None if res is None else res.version,
            plural=None if res is None else res.plural,
            namespace=request.namespace,
            name=request.name,
        )
        verb = _verb(str(request.method.value), path, request.params)
        return K8sRequest(
            method=str(request.method.value),
            path=request.url.path,
            verb=verb,
            api_version=None if res is None or res.version is None else _api_version_of(res),
            plural=None if res is None else res.plural,
            namespace=request.namespace,
            name=request.name,
            subresource=request.subresource,
            params=dict(request.params),
        )

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if self.recorder is not None:
            self.recorder(
                RecordedRequest(
                    method=str(request.method.value),
                    path=request.url.path,
                    query=request.url.query_string,
                    content_type=self._content_type(request),
                )
            )
        if self.controller is not None:
            self.controller(Store(self, self._k8s_request(request)))
        # Skip KubernetesEmulator._handle (kmock's own object mutations): we do it ourselves.
        return await kmock.RawHandler._handle(self, request)

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, kmock.KubernetesNotFoundError):  # kmock's own 404s (unknown URLs)
            body = _status_body(404, "NotFound", "the server could not find the requested resource")
        elif isinstance(exc, kmock.KubernetesError):
            body = _status_body(exc.status, exc.reason or "InternalError", exc.message or repr(exc), exc.details)
        else:
            self.internal_errors.append(exc)
            message = f"emulator error: {exc!r}\n{traceback.format_exc()}"
            body = _status_body(500, "InternalError", message)
        return aiohttp.web.Response(
            status=body["code"],
            body=json.dumps(body).encode(),
            content_type="application/json",
        )

    async def _stream_error(self, exc: Exception, raw_response: aiohttp.web.StreamResponse) -> None:
        if not isinstance(exc, kmock.KubernetesError):
            self.internal_errors.append(exc)
        code = exc.status if isinstance(exc, kmock.KubernetesError) else 500
        status = _status_body(code, "InternalError", repr(exc))
        await raw_response.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")

    # -- discovery ----------------------------------------------------------------------------

    # kmock's discovery documents, but with the exact apiserver Content-Type.
    async def _serve_root(self, request: kmock.Request) -> kmock.Response:
        return _respond(await super()._serve_root(request))

    async def _serve_api(self, request: kmock.Request) -> kmock.Response:
        return _respond(await super()._serve_api(request))

    async def _serve_apis(self, request: kmock.Request) -> kmock.Response:
        return _respond(await super()._serve_apis(request))

    async def _serve_group(self, request: kmock.Request) -> kmock.Response:
        return _respond(await super()._serve_group(request))

    async def _serve_server_version(self, request: kmock.Request) -> kmock.Response:
        version = self.server_version.lstrip("v")
        major, minor, *_ = [*version.split("."), "0", "0"]
        return _respond(
            {
                "major": major,
                "minor": re.sub(r"\D.*$", "", minor),
                "emulationMajor": major,
                "emulationMinor": re.sub(r"\D.*$", "", minor),
                "minCompatibilityMajor": major,
                "minCompatibilityMinor": re.sub(r"\D.*$", "", minor),
                "gitVersion": f"v{version}",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "go1.24.0",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    def _crd_infos(self) -> dict[kmock.resource, tuple[kmock.ResourceInfo, dict[str, Any]]]:
        """The resources served by the stored CRDs: resource -> (info, crd)."""
        result = {}
        for crd in self._alive(_CRD_RESOURCE):
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
            if not group or not plural or not kind:
                continue
            for version in spec.get("versions") or []:
                if not version.get("served", True) or not version.get("name"):
                    continue
                res = kmock.resource(group=group, version=version["name"], plural=plural)
                info = kmock.ResourceInfo(
                    kind=kind,
                    singular=names.get("singular") or kind.lower(),
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    verbs=set(_RESOURCE_VERBS),
                    shortnames=set(names.get("shortNames") or []),
                    categories=set(names.get("categories") or []),
                    subresources=set((version.get("subresources") or {}).keys()),
                )
                result[res] = (info, crd)
        return result

    def _get_resources(self) -> list[kmock.resource]:
        return list(set(super()._get_resources()) | set(self._crd_infos()))

    async def _serve_version(self, request: kmock.Request) -> kmock.Response:
        assert request.resource is not None
        group, version = request.resource.group, request.resource.version
        infos: dict[kmock.resource, kmock.ResourceInfo] = {
            res: self.resources[res] for res in self.resources if res.group == group and res.version == version
        }
        for res, (info, _) in self._crd_infos().items():
            if res.group == group and res.version == version:
                infos[res] = info
        if not infos and group != "":
            raise _no_such_resource()
        resources = []
        for res, info in sorted(infos.items(), key=lambda item: str(item[0].plural)):
            for sub in ["", *sorted(info.subresources)]:
                resources.append(
                    {
                        "name": f"{res.plural}/{sub}" if sub else res.plural,
                        "singularName": "" if sub else (info.singular or ""),
                        "namespaced": bool(info.namespaced),
                        "kind": info.kind or str(res.plural).capitalize(),
                        "verbs": sorted(info.verbs),
                        **({"shortNames": sorted(info.shortnames)} if info.shortnames and not sub else {}),
                        **({"categories": sorted(info.categories)} if info.categories and not sub else {}),
                    }
                )
        return _respond(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": version if group == "" else f"{group}/{version}",
                "resources": resources,
            }
        )

    def _info(self, res: kmock.resource) -> _Info | None:
        """What the apiserver knows about a resource; None if it does not serve it."""
        crd_infos = self._crd_infos()
        if res in crd_infos:
            info, crd = crd_infos[res]
            if _condition(crd, "Established") == "False":
                return None  # a real apiserver does not serve it until the CRD is established
            return _Info(str(info.kind), bool(info.namespaced), "status" in info.subresources)
        if res in self.resources:
            info = self.resources[res]
            known = _KNOWN_KINDS.get((str(res.group), str(res.plural)))
            kind = info.kind or (known[0] if known else str(res.plural).capitalize())
            return _Info(kind, info.namespaced, "status" in info.subresources)
        known = _KNOWN_KINDS.get((str(res.group), str(res.plural)))
        if known is not None:
            return _Info(*known)
        for (stored_res, _, _), obj in self._objects.items():
            if stored_res == res and not obj.deleted:
                kind = obj.last.raw.get("kind") or str(res.plural).capitalize()
                return _Info(str(kind), None, False)
        return None

    def _require_info(self, res: kmock.resource) -> _Info:
        info = self._info(res)
        if info is None:
            raise _no_such_resource()
        return info

    # -- storage (synchronous: atomic within the event loop) ----------------------------------

    def _alive(self, res: kmock.resource, namespace: str | None = None) -> list[dict[str, Any]]:
        """Current objects of a resource (all namespaces if None), sorted as etcd would."""
        found = []
        for (stored_res, stored_ns, _), obj in self._objects.items():
            if stored_res == res and not obj.deleted and (namespace is None or stored_ns == namespace):
                found.append(obj.last.raw)
        found.sort(key=lambda o: (_meta(o).get("namespace") or "", _meta(o).get("name") or ""))
        return [copy.deepcopy(obj) for obj in found]

    def _lookup(self, res: kmock.resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (res, namespace, name)
        if key not in self._objects:
            return None
        obj = self._objects[key]
        return None if obj.deleted else copy.deepcopy(obj.last.raw)

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _next_uid(self) -> str:
        self._uids += 1
        return str(uuid.UUID(int=self._uids, version=4))

    def _notify(self, event: str, res: kmock.resource, obj: Mapping[str, Any]) -> None:
        namespace = _meta(obj).get("namespace")
        for watcher in list(self._watchers):
            if watcher.res != res or (watcher.namespace is not None and watcher.namespace != namespace):
                continue
            if watcher.selectors.match(obj):
                watcher.queue.put_nowait({"type": event, "object": copy.deepcopy(obj)})

    def _put(self, res: kmock.resource, namespace: str | None, name: str, obj: dict[str, Any]) -> None:
        key = (res, namespace, name)
        if key in self._objects:
            self._objects[key].history.append(copy.deepcopy(obj))
        else:
            self._objects[key] = copy.deepcopy(obj)

    def _apply_create_defaults(self, res: kmock.resource, obj: dict[str, Any]) -> None:
        """Defaulting that a real apiserver does itself (not a controller)."""
        meta = obj["metadata"]
        spec = obj.get("spec")
        if res == _NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        elif res == _SERVICES and isinstance(spec, dict):
            spec.setdefault("type", "ClusterIP")
            if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
                self._cluster_ips += 1
                ip = f"{_SERVICE_CIDR_PREFIX}{(self._cluster_ips % 250) + 2}"
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
        elif res == _DEPLOYMENTS and isinstance(spec, dict):
            spec.setdefault("replicas", 1)

    def _create(
        self,
        res: kmock.resource,
        info: _Info,
        namespace: str | None,
        body: Any,
        *,
        reset_status: bool,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad_request("the object to create must be a JSON/YAML mapping")
        obj = copy.deepcopy(body)
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise _bad_request("metadata must be a mapping")
        if info.namespaced is False:
            meta.pop("namespace", None)
            namespace = None
        else:
            if namespace is None:
                namespace = meta.get("namespace")
            if info.namespaced and not namespace:
                raise _bad_request("the namespace of the object is not specified")
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise _bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            if namespace:
                meta["namespace"] = namespace
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise _invalid(res, None, "metadata.name: Required value: name or generateName is required")
            meta["name"] = meta["generateName"] + _suffix(f"{namespace}/{meta['generateName']}/{self._rv}")
        name = meta["name"]
        if self._lookup(res, namespace, name) is not None:
            raise _already_exists(res, name)
        obj.setdefault("apiVersion", _api_version_of(res))
        obj.setdefault("kind", info.kind)
        if reset_status and info.status_subresource:
            obj.pop("status", None)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(key, None)
        self._apply_create_defaults(res, obj)
        meta["uid"] = str(uuid.UUID(int=self._uids + 1, version=4)) if dry_run else self._next_uid()
        meta["resourceVersion"] = str(self._rv + 1) if dry_run else self._next_rv()
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        if not dry_run:
            self._put(res, namespace, name, obj)
            self._notify("ADDED", res, obj)
        return obj

    def _update(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        old: dict[str, Any],
        new: Any,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Store a new full state of an existing object (after the verb-specific merging)."""
        if not isinstance(new, dict):
            raise _bad_request("the object must be a JSON/YAML mapping")
        new = copy.deepcopy(new)
        old_meta = _meta(old)
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        if meta.get("name") not in (None, name):
            raise _bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL")
        for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta.pop("resourceVersion", None)
        new.setdefault("apiVersion", old.get("apiVersion", _api_version_of(res)))
        new.setdefault("kind", old.get("kind"))
        if new == {**old, "metadata": _without(old_meta, "resourceVersion")}:
            return old  # a no-op write: a real apiserver keeps the resourceVersion
        if _without(new, "metadata", "status") != _without(old, "metadata", "status"):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        meta["resourceVersion"] = str(self._rv + 1) if dry_run else self._next_rv()
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(res, namespace, name, new)
            return new
        self._put(res, namespace, name, new)
        self._notify("MODIFIED", res, new)
        return new

    def _remove(self, res: kmock.resource, namespace: str | None, name: str, last: dict[str, Any]) -> None:
        self._objects[res, namespace, name].delete()  # kmock's soft deletion: keeps the history
        self._notify("DELETED", res, last)
        if res == _NAMESPACES:  # the namespace controller's cleanup, done at once
            for (stored_res, stored_ns, _), obj in list(self._objects.items()):
                if stored_ns == name and not obj.deleted:
                    content = copy.deepcopy(obj.last.raw)
                    obj.delete()
                    self._notify("DELETED", stored_res, content)

    def _delete(self, res: kmock.resource, namespace: str | None, name: str, *, dry_run: bool = False):
        """Delete (or mark for deletion if finalizers exist); returns (object, removed_now)."""
        obj = self._lookup(res, namespace, name)
        if obj is None:
            raise _not_found(res, name)
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp") or dry_run:
                return obj, False
            meta["deletionTimestamp"] = _now()
            meta["deletionGracePeriodSeconds"] = 0
            meta["resourceVersion"] = self._next_rv()
            self._put(res, namespace, name, obj)
            self._notify("MODIFIED", res, obj)
            return obj, False
        if not dry_run:
            self._remove(res, namespace, name, obj)
        return obj, True

    # -- verbs --------------------------------------------------------------------------------

    def _scope(self, request: kmock.Request, info: _Info) -> str | None:
        """Validate the namespace part of the URL against the resource scope."""
        if info.namespaced is False and request.namespace is not None:
            raise _no_such_resource()
        if info.namespaced and request.namespace is None and request.name is not None:
            raise _no_such_resource()
        return request.namespace

    async def _serve_resource(self, request: kmock.Request) -> kmock.Response:
        assert request.resource is not None
        res = request.resource
        k8s = self._k8s_request(request)
        info = self._require_info(res)
        namespace = self._scope(request, info)
        dry_run = bool(request.params.get("dryRun"))
        verb = k8s.verb
        if verb == "get":
            return self._serve_get(res, namespace, request)
        if verb == "list":
            return self._serve_list_objects(res, info, namespace, request)
        if verb == "create":
            return self._serve_post(res, info, namespace, request, dry_run)
        if verb == "update":
            return self._serve_put(res, info, namespace, request, dry_run)
        if verb == "patch":
            return self._serve_patch(res, info, namespace, request, dry_run)
        if verb == "delete":
            return self._serve_delete_one(res, namespace, request, dry_run)
        if verb == "deletecollection":
            return self._serve_delete_collection(res, info, namespace, request, dry_run)
        raise _method_not_allowed()

    def _serve_get(self, res: kmock.resource, namespace: str | None, request: kmock.Request) -> kmock.Response:
        assert request.name is not None
        obj = self._lookup(res, namespace, request.name)
        if obj is None:
            raise _not_found(res, request.name)
        if request.subresource not in (None, "status"):
            raise _no_such_resource()
        return _respond(obj)

    def _serve_list_objects(
        self, res: kmock.resource, info: _Info, namespace: str | None, request: kmock.Request
    ) -> kmock.Response:
        if request.subresource is not None:
            raise _no_such_resource()
        selectors = _Selectors.from_params(request.params)
        items = [obj for obj in self._alive(res, namespace) if selectors.match(obj)]
        return _respond(
            {
                "kind": f"{info.kind}List",
                "apiVersion": _api_version_of(res),
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        )

    def _body(self, request: kmock.Request) -> Any:
        if not request.body:
            raise _bad_request("the request body is empty")
        return self._decode_body(request.text, self._content_type(request))

    def _serve_post(
        self, res: kmock.resource, info: _Info, namespace: str | None, request: kmock.Request, dry_run: bool
    ) -> kmock.Response:
        body = self._body(request)
        if request.name is not None:
            if res.plural == "serviceaccounts" and request.subresource == "token":
                return self._serve_token_request(res, namespace, request, body)
            raise _method_not_allowed()
        if info.namespaced and namespace is None:
            raise _no_such_resource()
        return _respond(self._create(res, info, namespace, body, reset_status=True, dry_run=dry_run), 201)

    def _serve_token_request(
        self, res: kmock.resource, namespace: str | None, request: kmock.Request, body: Any
    ) -> kmock.Response:
        assert request.name is not None
        if self._lookup(res, namespace, request.name) is None:
            raise _not_found(res, request.name)
        spec = dict((body or {}).get("spec") or {})
        spec.setdefault("expirationSeconds", 3600)
        token = f"emulated-token.{namespace}.{request.name}.{self._next_rv()}"
        return _respond(
            {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": request.name, "namespace": namespace},
                "spec": spec,
                "status": {"token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"},
            },
            201,
        )

    @staticmethod
    def _check_rv(res: kmock.resource, name: str, old: Mapping[str, Any], body: Any) -> None:
        wanted = _meta(body).get("resourceVersion") if isinstance(body, Mapping) else None
        if wanted and wanted != _meta(old).get("resourceVersion"):
            raise _conflict(res, name)

    @staticmethod
    def _restrict(info: _Info, subresource: str | None, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """The status-subresource rules: main endpoint ignores status; /status changes only status."""
        if subresource == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            return result
        if subresource is not None:
            raise _no_such_resource()
        if info.status_subresource:
            new = dict(new)
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        return new

    def _serve_put(
        self, res: kmock.resource, info: _Info, namespace: str | None, request: kmock.Request, dry_run: bool
    ) -> kmock.Response:
        assert request.name is not None
        body = self._body(request)
        old = self._lookup(res, namespace, request.name)
        if old is None:
            raise _not_found(res, request.name)
        self._check_rv(res, request.name, old, body)
        new = self._restrict(info, request.subresource, old, body)
        return _respond(self._update(res, namespace, request.name, old, new, dry_run=dry_run))

    def _serve_patch(
        self, res: kmock.resource, info: _Info, namespace: str | None, request: kmock.Request, dry_run: bool
    ) -> kmock.Response:
        assert request.name is not None
        media_type = _media_type(self._content_type(request))
        if media_type not in (APPLY_PATCH, MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH):
            raise _error(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {media_type}")
        body = self._body(request)
        old = self._lookup(res, namespace, request.name)
        if media_type == APPLY_PATCH:
            if not request.params.get("fieldManager"):
                raise _bad_request("PATCH requests with apply content type require fieldManager to be set")
            if not isinstance(body, dict):
                raise _bad_request("the apply configuration must be a mapping")
            if _meta(body).get("name") not in (None, request.name):
                raise _bad_request("the name of the object does not match the name on the URL")
            if old is None:
                if request.subresource is not None:
                    raise _not_found(res, request.name)
                if info.namespaced and namespace is None:
                    raise _no_such_resource()
                body = copy.deepcopy(body)
                body.setdefault("metadata", {})["name"] = request.name
                created = self._create(res, info, namespace, body, reset_status=True, dry_run=dry_run)
                return _respond(created, 201)
        if old is None:
            raise _not_found(res, request.name)
        self._check_rv(res, request.name, old, body)
        if media_type == JSON_PATCH:
            new = self._json_patch(res, request.name, old, body)
        else:
            if not isinstance(body, dict):
                raise _bad_request("a merge patch must be a mapping")
            new = _merge_patch(old, body)
        new = self._restrict(info, request.subresource, old, new)
        return _respond(self._update(res, namespace, request.name, old, new, dry_run=dry_run))

    @staticmethod
    def _json_patch(res: kmock.resource, name: str, old: dict[str, Any], ops: Any) -> dict[str, Any]:
        import jsonpatch  # a dependency of kmock

        if not isinstance(ops, list):
            raise _bad_request("a JSON patch must be a list of operations")
        try:
            return jsonpatch.apply_patch(copy.deepcopy(old), ops)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
            raise _invalid(res, name, f"the JSON patch could not be applied: {e}") from e

    def _serve_delete_one(
        self, res: kmock.resource, namespace: str | None, request: kmock.Request, dry_run: bool
    ) -> kmock.Response:
        assert request.name is not None
        if request.subresource is not None:
            raise _method_not_allowed()
        obj, removed = self._delete(res, namespace, request.name, dry_run=dry_run)
        if not removed:
            return _respond(obj)
        return _respond(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {**_details(res, request.name), "uid": obj["metadata"].get("uid")},
            }
        )

    def _serve_delete_collection(
        self, res: kmock.resource, info: _Info, namespace: str | None, request: kmock.Request, dry_run: bool
    ) -> kmock.Response:
        selectors = _Selectors.from_params(request.params)
        deleted = []
        for obj in self._alive(res, namespace):
            if selectors.match(obj):
                meta = _meta(obj)
                last, _ = self._delete(res, meta.get("namespace"), meta["name"], dry_run=dry_run)
                deleted.append(last)
        return _respond(
            {
                "kind": f"{info.kind}List",
                "apiVersion": _api_version_of(res),
                "metadata": {"resourceVersion": str(self._rv)},
                "items": deleted,
            }
        )

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        assert request.resource is not None
        res = request.resource
        info = self._require_info(res)
        namespace = self._scope(request, info)
        selectors = _Selectors.from_params(request.params)
        if request.name is not None:  # the deprecated /NAME?watch=true form
            selectors = _Selectors(selectors.labels, (*selectors.fields, ("metadata.name", True, request.name)))
        since = request.params.get("resourceVersion") or "0"
        since_rv = int(since) if since.isdigit() else 0
        timeout = request.params.get("timeoutSeconds")
        # Snapshot & subscribe atomically (no await in between): no event can be lost.
        watcher = _Watcher(res=res, namespace=namespace, selectors=selectors, queue=asyncio.Queue())
        initial = [
            {"type": "ADDED", "object": obj}
            for obj in self._alive(res, namespace)
            if selectors.match(obj) and int(_meta(obj).get("resourceVersion") or 0) > since_rv
        ]
        self._watchers.append(watcher)
        return self._watch_stream(watcher, initial, float(timeout) if timeout else None)

    async def _watch_stream(
        self, watcher: _Watcher, initial: list[dict[str, Any]], timeout: float | None
    ) -> AsyncIterator[Any]:
        try:
            yield b""  # send the headers now
            for event in initial:
                yield event
            loop = asyncio.get_running_loop()
            deadline = None if timeout is None else loop.time() + timeout
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), remaining)
                except asyncio.TimeoutError:
                    return
                if event is None:  # the server is shutting down
                    return
                yield event
        finally:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

    def close_watches(self) -> None:
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)


# --------------------------------------------------------------------------------------------
# The synchronous store façade (for the controller, hooks and ApiServer accessors)
# --------------------------------------------------------------------------------------------


class Store:
    """Direct access to the emulator's objects, bypassing HTTP (no request is recorded).

    Must be used inside the emulator's loop (controller and hooks are); ``ApiServer``'s own
    accessors marshal their calls there. All returned objects are deep copies.
    """

    def __init__(self, emulator: KubernetesApiEmulator, request: K8sRequest | None = None) -> None:
        self.emulator = emulator
        self.request = request  # the request about to be served (None when run explicitly)

    def _info(self, res: kmock.resource, obj: Mapping[str, Any] | None = None) -> _Info:
        info = self.emulator._info(res)
        if info is not None:
            return info
        kind = (obj or {}).get("kind") or str(res.plural).capitalize()
        return _Info(str(kind), None, False)

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.emulator._lookup(_res(api_version, plural), namespace, name)

    def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        if isinstance(label_selector, Mapping):
            label_selector = ",".join(f"{k}={v}" for k, v in label_selector.items())
        selectors = _Selectors(labels=tuple(parse_label_selector(label_selector or "")))
        return [obj for obj in self.emulator._alive(_res(api_version, plural), namespace) if selectors.match(obj)]

    def put(self, api_version: str, plural: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create or fully replace an object (status included: this is a test-setup backdoor)."""
        res = _res(api_version, plural)
        body = copy.deepcopy(dict(obj))
        body.setdefault("apiVersion", api_version)
        info = self._info(res, body)
        meta = _meta(body)
        if not meta.get("name"):
            raise ValueError(f"the object has no metadata.name: {obj!r}")
        namespace = meta.get("namespace") if info.namespaced is not False else None
        if info.namespaced and not namespace:
            raise ValueError(f"{_qualified(res)} is namespaced, but the object has no metadata.namespace")
        old = self.emulator._lookup(res, namespace, meta["name"])
        if old is None:
            return self.emulator._create(res, info, namespace, body, reset_status=False)
        return self.emulator._update(res, namespace, meta["name"], old, body)

    def patch(
        self, api_version: str, plural: str, name: str, namespace: str | None, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON-merge-patch an existing object (status included)."""
        res = _res(api_version, plural)
        old = self.emulator._lookup(res, namespace, name)
        if old is None:
            raise KeyError(f"{_qualified(res)} {namespace}/{name} does not exist")
        return self.emulator._update(res, namespace, name, old, _merge_patch(old, patch))

    def set_status(
        self, api_version: str, plural: str, name: str, namespace: str | None, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace the whole status (a no-op, without a new resourceVersion, if unchanged)."""
        res = _res(api_version, plural)
        old = self.emulator._lookup(res, namespace, name)
        if old is None:
            raise KeyError(f"{_qualified(res)} {namespace}/{name} does not exist")
        return self.emulator._update(res, namespace, name, old, {**old, "status": copy.deepcopy(dict(status))})

    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> bool:
        """Delete (finalizers respected); False if the object did not exist."""
        res = _res(api_version, plural)
        try:
            self.emulator._delete(res, namespace, name)
        except kmock.KubernetesError:
            return False
        return True


# --------------------------------------------------------------------------------------------
# The fake controller
# --------------------------------------------------------------------------------------------


def _pod_template_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    template = (workload.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("labels") or {})


def _workload_ready(kind: str, obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    if kind == "deployments":
        return _condition(obj, "Available") == "True"
    desired = status.get("desiredNumberScheduled", 0)
    return bool(desired) and status.get("numberReady", 0) >= desired


@dataclass
class FakeController:
    """Writes status the way the real Kubernetes/Knative controllers would, deterministically.

    Invoked synchronously inside the emulator before each request is served:

    * CRDs become ``Established``/``NamesAccepted`` (``Established: False`` if never_ready; the
      emulator then does not serve their custom resources, like a real apiserver).
    * Deployments (and DaemonSets) become available once they have been read (GET by name,
      any namespace) ``ready_after_reads[name]`` times, i.e. the GET number N+1 sees them ready;
      never_ready ones end in ``ProgressDeadlineExceeded``. Jobs complete (or fail if never_ready).
    * Services with a selector get an EndpointSlice (and a v1 Endpoints) once a ready Deployment/
      DaemonSet in their namespace has matching pod template labels and ``endpoints_after_lists``
      EndpointSlice LIST requests have been served (i.e. the LIST number N+1 sees it).
    * ``hooks`` are extra callables ``(store) -> None`` run after the built-in behaviours;
      ``store.request`` is the request about to be served (or None).
    """

    never_ready: set[str] = field(default_factory=set)
    ready_after_reads: dict[str, int] = field(default_factory=dict)
    endpoints_after_lists: int = 0
    hooks: list[Callable[[Store], None]] = field(default_factory=list)

    # Observed traffic (requests already served when the controller runs).
    reads: dict[str, int] = field(default_factory=dict, init=False)
    endpointslice_lists: int = field(default=0, init=False)
    _addresses: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False)

    def __call__(self, store: Store) -> None:
        self.reconcile(store)
        for hook in list(self.hooks):
            hook(store)
        if store.request is not None:
            self.observe(store.request)

    def observe(self, request: K8sRequest) -> None:
        if request.verb == "get" and request.plural in ("deployments", "daemonsets") and request.name:
            self.reads[request.name] = self.reads.get(request.name, 0) + 1
        if request.verb == "list" and request.plural == "endpointslices":
            self.endpointslice_lists += 1

    def is_ready(self, name: str) -> bool:
        if name in self.never_ready:
            return False
        return self.reads.get(name, 0) >= self.ready_after_reads.get(name, 0)

    def reconcile(self, store: Store) -> None:
        self._reconcile_crds(store)
        self._reconcile_deployments(store)
        self._reconcile_daemonsets(store)
        self._reconcile_jobs(store)
        self._reconcile_endpoints(store)

    # -- CRDs ---------------------------------------------------------------------------------

    def _reconcile_crds(self, store: Store) -> None:
        for crd in store.list("apiextensions.k8s.io/v1", "customresourcedefinitions"):
            name = crd["metadata"]["name"]
            spec = crd.get("spec") or {}
            names = dict(spec.get("names") or {})
            kind = names.get("kind", "")
            accepted = {
                "kind": kind,
                "listKind": names.get("listKind") or f"{kind}List",
                "plural": names.get("plural", ""),
                "singular": names.get("singular") or kind.lower(),
                **{k: names[k] for k in ("shortNames", "categories") if names.get(k)},
            }
            stored = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
            if name in self.never_ready:
                conditions = [
                    {
                        "type": "Established",
                        "status": "False",
                        "reason": "Installing",
                        "message": "the initial names have not yet been accepted",
                    },
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                    },
                ]
            else:
                conditions = [
                    {
                        "type": "Established",
                        "status": "True",
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                    },
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                    },
                ]
            status = {"acceptedNames": accepted, "conditions": conditions, "storedVersions": stored}
            if crd.get("status") != status:
                store.set_status("apiextensions.k8s.io/v1", "customresourcedefinitions", name, None, status)

    # -- workloads ----------------------------------------------------------------------------

    def _reconcile_deployments(self, store: Store) -> None:
        for deployment in store.list("apps/v1", "deployments"):
            meta = deployment["metadata"]
            name = meta["name"]
            replicas = int((deployment.get("spec") or {}).get("replicas", 1))
            generation = meta.get("generation", 1)
            rs = f'ReplicaSet "{name}-{_suffix(name, 10)}"'
            if self.is_ready(name):
                status: dict[str, Any] = {
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "True",
                            "reason": "MinimumReplicasAvailable",
                            "message": "Deployment has minimum availability.",
                        },
                        {
                            "type": "Progressing",
                            "status": "True",
                            "reason": "NewReplicaSetAvailable",
                            "message": f"{rs} has successfully progressed.",
                        },
                    ],
                }
            else:
                progressing = (
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": f"{rs} has timed out progressing.",
                    }
                    if name in self.never_ready
                    else {
                        "type": "Progressing",
                        "status": "True",
                        "reason": "ReplicaSetUpdated",
                        "message": f"{rs} is progressing.",
                    }
                )
                status = {
                    "observedGeneration": generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "unavailableReplicas": replicas,
                    "conditions": [
                        {
                            "type": "Available",
                            "status": "False",
                            "reason": "MinimumReplicasUnavailable",
                            "message": "Deployment does not have minimum availability.",
                        },
                        progressing,
                    ],
                }
            if deployment.get("status") != status:
                store.set_status("apps/v1", "deployments", name, meta.get("namespace"), status)

    def _reconcile_daemonsets(self, store: Store) -> None:
        for daemonset in store.list("apps/v1", "daemonsets"):
            meta = daemonset["metadata"]
            ready = self.is_ready(meta["name"])
            status = {
                "observedGeneration": meta.get("generation", 1),
                "currentNumberScheduled": 1,
                "desiredNumberScheduled": 1,
                "numberMisscheduled": 0,
                "updatedNumberScheduled": 1,
                **({"numberReady": 1, "numberAvailable": 1} if ready else {"numberReady": 0, "numberUnavailable": 1}),
            }
            if daemonset.get("status") != status:
                store.set_status("apps/v1", "daemonsets", meta["name"], meta.get("namespace"), status)

    def _reconcile_jobs(self, store: Store) -> None:
        for job in store.list("batch/v1", "jobs"):
            meta = job["metadata"]
            if meta["name"] in self.never_ready:
                status: dict[str, Any] = {
                    "failed": 1,
                    "conditions": [
                        {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                        {
                            "type": "Failed",
                            "status": "True",
                            "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit",
                        },
                    ],
                }
            else:
                status = {
                    "succeeded": 1,
                    "conditions": [
                        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
                        {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
                    ],
                }
            if job.get("status") != status:
                store.set_status("batch/v1", "jobs", meta["name"], meta.get("namespace"), status)

    # -- endpoints ----------------------------------------------------------------------------

    def _address(self, namespace: str, name: str) -> str:
        key = (namespace, name)
        if key not in self._addresses:
            self._addresses[key] = f"10.1.0.{len(self._addresses) + 1}"
        return self._addresses[key]

    @staticmethod
    def _target_port(port: Mapping[str, Any], workloads: list[dict[str, Any]]) -> int:
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, int):
            return target
        if isinstance(target, str) and target.isdigit():
            return int(target)
        for workload in workloads:
            template_spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
            for container in template_spec.get("containers") or []:
                for cport in container.get("ports") or []:
                    if cport.get("name") == target and "containerPort" in cport:
                        return int(cport["containerPort"])
        return int(port.get("port", 0))

    def _reconcile_endpoints(self, store: Store) -> None:
        services = store.list("v1", "services")
        workloads = [(kind, obj) for kind in ("deployments", "daemonsets") for obj in store.list("apps/v1", kind)]
        wanted: set[tuple[str, str]] = set()
        for service in services:
            meta, spec = service["metadata"], service.get("spec") or {}
            selector = spec.get("selector") or {}
            if not selector or spec.get("type") == "ExternalName":
                continue
            namespace, svc_name = meta.get("namespace", "default"), meta["name"]
            matching = [
                obj
                for kind, obj in workloads
                if obj["metadata"].get("namespace") == namespace
                and _workload_ready(kind, obj)
                and all(_pod_template_labels(obj).get(k) == v for k, v in selector.items())
            ]
            slice_name = f"{svc_name}-{_suffix(f'{namespace}/{svc_name}')}"
            wanted.add((namespace, slice_name))
            existing = store.get("discovery.k8s.io/v1", "endpointslices", slice_name, namespace)
            if existing is None and (not matching or self.endpointslice_lists < self.endpoints_after_lists):
                continue
            address = self._address(namespace, svc_name)
            ports = [
                {
                    "name": port.get("name", ""),
                    "port": self._target_port(port, matching),
                    "protocol": port.get("protocol", "TCP"),
                    **({"appProtocol": port["appProtocol"]} if port.get("appProtocol") else {}),
                }
                for port in spec.get("ports") or []
            ]
            endpoints = (
                [{"addresses": [address], "conditions": {"ready": True, "serving": True, "terminating": False}}]
                if matching
                else []
            )
            owner = {
                "apiVersion": "v1",
                "kind": "Service",
                "name": svc_name,
                "uid": meta.get("uid"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
            endpoint_slice = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": slice_name,
                    "namespace": namespace,
                    "generateName": f"{svc_name}-",
                    "labels": {_LABEL_SERVICE_NAME: svc_name, _LABEL_MANAGED_BY: _ENDPOINTSLICE_CONTROLLER},
                    "ownerReferences": [owner],
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": ports,
            }
            self._put_if_changed(store, "discovery.k8s.io/v1", "endpointslices", existing, endpoint_slice)
            subsets = (
                [
                    {
                        "addresses": [{"ip": address}],
                        "ports": [{k: v for k, v in p.items() if k != "name" or v} for p in ports],
                    }
                ]
                if matching
                else []
            )
            legacy = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": svc_name, "namespace": namespace},
                "subsets": subsets,
            }
            self._put_if_changed(store, "v1", "endpoints", store.get("v1", "endpoints", svc_name, namespace), legacy)
        # Garbage-collect the slices of deleted services (ownerReferences).
        for endpoint_slice in store.list("discovery.k8s.io/v1", "endpointslices"):
            meta = endpoint_slice["metadata"]
            labels = meta.get("labels") or {}
            if labels.get(_LABEL_MANAGED_BY) != _ENDPOINTSLICE_CONTROLLER:
                continue
            if (meta.get("namespace"), meta["name"]) not in wanted:
                store.delete("discovery.k8s.io/v1", "endpointslices", meta["name"], meta.get("namespace"))
                if store.get("v1", "services", labels.get(_LABEL_SERVICE_NAME, ""), meta.get("namespace")) is None:
                    store.delete("v1", "endpoints", labels.get(_LABEL_SERVICE_NAME, ""), meta.get("namespace"))

    @staticmethod
    def _put_if_changed(
        store: Store, api_version: str, plural: str, existing: dict[str, Any] | None, desired: dict[str, Any]
    ) -> None:
        if existing is not None:
            merged = {**existing, **_without(desired, "metadata")}
            merged["metadata"] = {**existing["metadata"], **desired["metadata"]}
            if merged == existing:
                return
            desired = merged
        store.put(api_version, plural, desired)


# --------------------------------------------------------------------------------------------
# The threaded server
# --------------------------------------------------------------------------------------------


class ApiServer:
    """The emulator served over HTTP on 127.0.0.1 (ephemeral port) from a background thread.

    Single-use context manager. The accessors (get/list/put_object/set_status) work before,
    during and after the ``with`` block; during it they run inside the emulator's loop.
    Unexpected emulator errors (HTTP 500s) are re-raised by ``__exit__``.
    """

    def __init__(self, *, version: str = "1.34.2", controller: FakeController | None = None) -> None:
        self.version = version
        self.controller = controller
        self.url: str = ""
        self.requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self.emulator = KubernetesApiEmulator(server_version=version, controller=controller, recorder=self._record)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> ApiServer:
        if self._thread is not None:
            raise RuntimeError("an ApiServer can be started only once")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="k8s-api-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(_STARTUP_TIMEOUT):
            self._stop_thread()
            raise RuntimeError("the Kubernetes API emulator did not start in time")
        if self._failure is not None:
            self._stop_thread()
            raise RuntimeError("the Kubernetes API emulator failed to start") from self._failure
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        alive = self._stop_thread()
        if exc_type is not None:
            return
        if alive:
            raise RuntimeError(f"the Kubernetes API emulator thread did not stop in {_SHUTDOWN_TIMEOUT}s")
        if self.emulator.internal_errors:
            first = self.emulator.internal_errors[0]
            raise RuntimeError(
                f"the Kubernetes API emulator failed {len(self.emulator.internal_errors)} time(s) "
                f"while serving requests; the first error: {first!r}"
            ) from first

    def _stop_thread(self) -> bool:
        """Stop the loop thread (bounded); returns True if it is still alive."""
        loop, thread, stop = self._loop, self._thread, self._stop
        if loop is not None and stop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            thread.join(_SHUTDOWN_TIMEOUT)
            return thread.is_alive()
        return False

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as e:
            self._failure = e
        finally:
            self._ready.set()
            try:
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            finally:
                self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self.emulator:
            server = aiohttp.web.Server(self.emulator, handler_cancellation=True)
            runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
            await runner.setup()
            try:
                site = aiohttp.web.TCPSite(runner, _HOST, 0)
                await site.start()
                port = runner.addresses[0][1]
                self.url = f"http://{_HOST}:{port}"
                self._ready.set()
                await self._stop.wait()
            finally:
                self.emulator.close_watches()
                await runner.cleanup()

    # -- requests -----------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self.requests.append(request)

    def writes(self) -> list[RecordedRequest]:
        with self._requests_lock:
            return [r for r in self.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    def reset_requests(self) -> None:
        with self._requests_lock:
            self.requests.clear()

    # -- kubeconfig ---------------------------------------------------------------------------

    def write_kubeconfig(self, path: pathlib.Path, *, context: str = "emulator") -> pathlib.Path:
        if not self.url:
            raise RuntimeError("the ApiServer is not running: use it as a context manager first")
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "emulator-token"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}],
            "current-context": context,
        }
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    # -- direct state access ------------------------------------------------------------------

    def _call(self, fn: Callable[[Store], Any]) -> Any:
        loop = self._loop
        store = Store(self.emulator)
        in_loop_thread = threading.current_thread() is self._thread
        if loop is None or in_loop_thread or not loop.is_running() or loop.is_closed():
            return fn(store)

        async def call() -> Any:
            return fn(store)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(_CALL_TIMEOUT)

    def get(self, api_version: str, kind_plural: str, name: str, namespace: str | None = None) -> dict | None:
        return self._call(lambda store: store.get(api_version, kind_plural, name, namespace))

    def list(self, api_version: str, plural: str, namespace: str | None = None) -> list[dict]:
        return self._call(lambda store: store.list(api_version, plural, namespace))

    def put_object(self, api_version: str, plural: str, obj: dict) -> None:
        self._call(lambda store: store.put(api_version, plural, obj))

    def set_status(self, api_version: str, plural: str, name: str, namespace: str | None, status: dict) -> None:
        self._call(lambda store: store.set_status(api_version, plural, name, namespace, status))

    def delete_object(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> bool:
        return self._call(lambda store: store.delete(api_version, plural, name, namespace))

    def reconcile(self) -> None:
        """Run the controller now (without a request), e.g. right after seeding objects."""
        controller = self.controller
        if controller is not None:
            self._call(controller)
