"""The emulator's HTTP layer (kmock underneath) and ``ApiServer``, which serves it on 127.0.0.1 from a
background thread. See the package documentation for what is emulated."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import importlib.resources
import json
import pathlib
import re
import threading
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal.rendering import StreamingError  # not re-exported by kmock

from tests.harness.emulator import fields, proxy
from tests.harness.emulator.common import (
    _CALL_TIMEOUT,
    _CRD_RESOURCE,
    _EXCLUDED_BUNDLED_GROUPS,
    _HOST,
    _KMOCK_ACTIONS,
    _KNOWN_KINDS,
    _RESOURCE_VERBS,
    _SHUTDOWN_TIMEOUT,
    _STARTUP_TIMEOUT,
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    K8sRequest,
    RecordedRequest,
    _api_version_of,
    _bad_request,
    _condition,
    _conflict,
    _copy,
    _details,
    _error,
    _Info,
    _invalid,
    _media_type,
    _merge_patch,
    _meta,
    _method_not_allowed,
    _no_such_resource,
    _not_found,
    _parse_path,
    _Path,
    _respond,
    _status_body,
    _verb,
)
from tests.harness.emulator.selectors import _Selectors
from tests.harness.emulator.store import ObjectDB, Store, Writer, _Watcher

if TYPE_CHECKING:
    from tests.harness.emulator.controller import FakeController

# The namespaces a real apiserver creates at start-up.
DEFAULT_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


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

    db: ObjectDB = attrs.field(factory=ObjectDB, init=False)
    _own_payloads: int = attrs.field(default=0, init=False)
    _crd_cache: tuple[int, dict[kmock.resource, tuple[kmock.ResourceInfo, dict[str, Any]]]] | None = attrs.field(
        default=None, init=False
    )

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
        self._own_payloads = len(self._payloads)

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
        with contextlib.suppress(ValueError):  # JSON is YAML, and much faster to parse (lightkube sends it)
            return json.loads(text)
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
        self.db.system_reconcile()
        if self.controller is not None:
            self.controller(Store(self, self._k8s_request(request)))
        own = len(self._payloads) == self._own_payloads
        if own and self._is_resource_request(request) and not self._is_watch(request):
            # No reaction added by a test: serve directly, skipping kmock's (slow) filter walk.
            response = await self._serve_resource(request)
            return aiohttp.web.Response(status=response.status or 200, body=response.payload, headers=response.headers)
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
        """The resources served by the stored CRDs: resource -> (info, crd), cached per CRD change."""
        if self._crd_cache is not None and self._crd_cache[0] == self.db.crd_version:
            return self._crd_cache[1]
        result = {}
        for crd in self.db.iter(_CRD_RESOURCE):
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
        self._crd_cache = (self.db.crd_version, result)
        return result

    def is_builtin(self, res: kmock.resource) -> bool:
        """Built-in kinds have list-map merge keys; custom resources' lists are atomic."""
        return res not in self._crd_infos()

    def _get_resources(self) -> list[kmock.resource]:
        return list(set(self._resources) | set(self.db.resources()) | set(self._crd_infos()))

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
        for obj in self.db.iter(res):
            kind = obj.get("kind") or str(res.plural).capitalize()
            return _Info(str(kind), None, False)
        return None

    def _require_info(self, res: kmock.resource) -> _Info:
        info = self._info(res)
        if info is None:
            raise _no_such_resource()
        return info

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
        if res.group == "" and res.plural == "services" and (request.subresource or "").split("/")[0] == "proxy":
            return await self._serve_service_proxy(request)
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

    async def _serve_service_proxy(self, request: kmock.Request) -> kmock.Response:
        """The API server's service proxy (proxy.py): resolve like kube-apiserver, then forward for real."""
        if request.namespace is None or request.name is None:
            raise _no_such_resource()
        namespace = request.namespace

        def lookup(plural: str, ns: str, name: str) -> dict[str, Any] | None:
            return self.db.lookup(kmock.resource(group="", version="v1", plural=plural), ns, name)

        scheme, ip, port = proxy.resolve(namespace, request.name, lookup)
        path = str(request.subresource or "").partition("/")[2]
        return await proxy.forward(request, scheme, ip, port, path)

    def _serve_get(self, res: kmock.resource, namespace: str | None, request: kmock.Request) -> kmock.Response:
        assert request.name is not None
        obj = self.db.lookup(res, namespace, request.name)
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
        items = [_copy(obj) for obj in self.db.iter(res, namespace) if selectors.match(obj)]
        return _respond(
            {
                "kind": f"{info.kind}List",
                "apiVersion": _api_version_of(res),
                "metadata": {"resourceVersion": str(self.db.rv)},
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
        created = self.db.create(
            res, info, namespace, body, reset_status=True, dry_run=dry_run, writer=self._writer(request),
            builtin=self.is_builtin(res),
        )
        return _respond(created, 201)

    def _serve_token_request(
        self, res: kmock.resource, namespace: str | None, request: kmock.Request, body: Any
    ) -> kmock.Response:
        assert request.name is not None
        if self.db.lookup(res, namespace, request.name) is None:
            raise _not_found(res, request.name)
        spec = dict((body or {}).get("spec") or {})
        spec.setdefault("expirationSeconds", 3600)
        token = f"emulated-token.{namespace}.{request.name}.{self.db.next_rv()}"
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
            result = _copy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            managed = _meta(new).get("managedFields")
            if managed is not None:
                result["metadata"]["managedFields"] = managed
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
        old = self.db.lookup(res, namespace, request.name)
        if old is None:
            raise _not_found(res, request.name)
        self._check_rv(res, request.name, old, body)
        new = self._restrict(info, request.subresource, old, body)
        updated = self.db.update(
            res, namespace, request.name, old, new, dry_run=dry_run, info=info, writer=self._writer(request),
            builtin=self.is_builtin(res),
        )
        return _respond(updated)

    def _serve_patch(
        self, res: kmock.resource, info: _Info, namespace: str | None, request: kmock.Request, dry_run: bool
    ) -> kmock.Response:
        assert request.name is not None
        media_type = _media_type(self._content_type(request))
        if media_type not in (APPLY_PATCH, MERGE_PATCH, STRATEGIC_PATCH, JSON_PATCH):
            raise _error(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {media_type}")
        body = self._body(request)
        old = self.db.lookup(res, namespace, request.name)
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
                body = _copy(body)
                body.setdefault("metadata", {})["name"] = request.name
                created = self.db.create(
                    res, info, namespace, body, reset_status=True, dry_run=dry_run, writer=self._writer(request),
                    builtin=self.is_builtin(res), apply=True, force=self._force(request),
                )
                return _respond(created, 201)
        if old is None:
            raise _not_found(res, request.name)
        self._check_rv(res, request.name, old, body)
        writer = self._writer(request)
        if media_type == APPLY_PATCH:
            assert writer.manager is not None
            for key in ("apiVersion", "kind"):
                if not body.get(key):
                    raise _bad_request(f"{key} must be set in an apply configuration")
            new = fields.server_side_apply(
                res, str(request.name), old, body, manager=writer.manager, force=self._force(request),
                builtin=self.is_builtin(res), subresource=request.subresource,
                status_separate=info.status_subresource,
            )
            new = self._restrict(info, request.subresource, old, new)
            if new == old:
                return _respond(old)
            updated = self.db.update(
                res, namespace, request.name, old, new, dry_run=dry_run, info=info, builtin=self.is_builtin(res)
            )
            return _respond(updated)
        if media_type == JSON_PATCH:
            new = self._json_patch(res, request.name, old, body)
        else:
            if not isinstance(body, dict):
                raise _bad_request("a merge patch must be a mapping")
            new = _merge_patch(old, body)
        new = self._restrict(info, request.subresource, old, new)
        updated = self.db.update(
            res, namespace, request.name, old, new, dry_run=dry_run, info=info, writer=writer,
            builtin=self.is_builtin(res),
        )
        return _respond(updated)

    def _writer(self, request: kmock.Request) -> Writer:
        """The field manager of a write: ``fieldManager``, else derived from the User-Agent."""
        manager = request.params.get("fieldManager")
        if not manager:
            agent = next((v for k, v in request.headers.items() if k.lower() == "user-agent"), "unknown")
            manager = agent.split("/", 1)[0] or "unknown"
        if len(manager) > 128:
            raise _bad_request("fieldManager: Too long: may not be longer than 128")
        return Writer(manager=manager, subresource=request.subresource)

    @staticmethod
    def _force(request: kmock.Request) -> bool:
        return str(request.params.get("force", "")).lower() in ("true", "1")

    @staticmethod
    def _json_patch(res: kmock.resource, name: str, old: dict[str, Any], ops: Any) -> dict[str, Any]:
        import jsonpatch  # a dependency of kmock

        if not isinstance(ops, list):
            raise _bad_request("a JSON patch must be a list of operations")
        try:
            return jsonpatch.apply_patch(_copy(old), ops)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
            raise _invalid(res, name, f"the JSON patch could not be applied: {e}") from e

    def _serve_delete_one(
        self, res: kmock.resource, namespace: str | None, request: kmock.Request, dry_run: bool
    ) -> kmock.Response:
        assert request.name is not None
        if request.subresource is not None:
            raise _method_not_allowed()
        obj, removed = self.db.delete(res, namespace, request.name, dry_run=dry_run)
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
        for obj in self.db.alive(res, namespace):
            if selectors.match(obj) and not _meta(obj).get("deletionTimestamp"):
                meta = _meta(obj)
                last, _ = self.db.delete(res, meta.get("namespace"), meta["name"], dry_run=dry_run)
                deleted.append(last)
        return _respond(
            {
                "kind": f"{info.kind}List",
                "apiVersion": _api_version_of(res),
                "metadata": {"resourceVersion": str(self.db.rv)},
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
            for obj in self.db.alive(res, namespace)
            if selectors.match(obj) and int(_meta(obj).get("resourceVersion") or 0) > since_rv
        ]
        self.db.watchers.append(watcher)
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
            if watcher in self.db.watchers:
                self.db.watchers.remove(watcher)

    def close_watches(self) -> None:
        for watcher in list(self.db.watchers):
            watcher.queue.put_nowait(None)


# --------------------------------------------------------------------------------------------
# The threaded server
# --------------------------------------------------------------------------------------------


class ApiServer:
    """The emulator served over HTTP on 127.0.0.1 (ephemeral port) from a background thread.

    Single-use context manager. The accessors (get/list/put_object/set_status) work before,
    during and after the ``with`` block; during it they run inside the emulator's loop.
    Unexpected emulator errors (HTTP 500s) are re-raised by ``__exit__``.
    """

    def __init__(
        self,
        *,
        version: str = "1.34.2",
        controller: FakeController | None = None,
        namespaces: Iterable[str] = (),
        port: int = 0,
    ) -> None:
        self.port = port
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
        # The namespaces a real apiserver creates at start-up, and the extra ones asked for.
        for namespace in (*DEFAULT_NAMESPACES, *namespaces):
            namespace_obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            self.put_object("v1", "namespaces", namespace_obj)

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
                site = aiohttp.web.TCPSite(runner, _HOST, self.port)
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

    def put_object(self, api_version: str, plural: str, obj: dict, *, manager: str | None = None) -> None:
        self._call(lambda store: store.put(api_version, plural, obj, manager=manager))

    def set_status(self, api_version: str, plural: str, name: str, namespace: str | None, status: dict) -> None:
        self._call(lambda store: store.set_status(api_version, plural, name, namespace, status))

    def delete_object(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> bool:
        return self._call(lambda store: store.delete(api_version, plural, name, namespace))

    def reconcile(self) -> None:
        """Run the built-in controllers and the fake controller now (e.g. right after seeding objects)."""
        self._call(lambda store: store.db.system_reconcile())
        controller = self.controller
        if controller is not None:
            self._call(controller)
