"""The Kubernetes API through lightkube: server-side apply with one field manager, typed errors."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import lightkube
from lightkube import ApiError
from lightkube.config.client_adapter import Client as adapter_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ConfigError as LightkubeConfigError
from lightkube.core.exceptions import LoadResourceError
from lightkube.core.resource import NamespacedResource, api_info
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.types import PatchType

from hybrid_knative.errors import ConfigError, PermanentError, TemporaryError
from hybrid_knative.kube.objects import Manifest, ObjectRef, ref_of
from hybrid_knative.versions import KubeVersion

FIELD_MANAGER = "hybrid-knative"
ALL_NAMESPACES = "*"  # lightkube's marker for a LIST across every namespace
T = TypeVar("T")


@dataclasses.dataclass
class ApiCounters:
    """Request counts by verb, for `make bench` and for tests of idempotency."""

    reads: int = 0
    writes: int = 0


class KubeApi:
    """A thin, typed facade over the lightkube sync client.

    Inside ``remembering()`` (enable uses it) reads are remembered until this client writes anything or
    ``forget()`` is called (enable's wait policy calls it before every sleep), so one run never asks the
    server twice for an object nothing could have changed in between. ``present()`` answers "does this object
    exist?" from one LIST per kind (label-selected), which also fills that memory: an unchanged re-run of
    enable needs a few LISTs instead of a GET per object.
    """

    def __init__(self, client: lightkube.Client, config: SingleConfig, *, timeout: float = 30.0) -> None:
        self._client = client
        self._config = config
        self._timeout = timeout
        self._crd_kinds: dict[tuple[str, str], tuple[str, bool]] = {}  # (apiVersion, kind) -> (plural, namespaced)
        self.counters = ApiCounters()
        self._memo: dict[ObjectRef, dict[str, Any] | None] = {}  # reads since the last write/forget()
        self._list_memo: dict[tuple[str, str, str | None, str], list[dict[str, Any]]] = {}
        self._remember = False
        self._listed: dict[tuple[str, str, str], set[tuple[str | None, str]]] = {}  # kind+selector -> names
        # the read memory is shared with branch() clients (other threads): changed under this lock; a read is
        # remembered only when no forget() (any client's) happened while it was on its way
        self._lock = threading.RLock()
        self._forgets = [0]

    def branch(self) -> KubeApi:
        """A client for another thread (enable's overlapped installs): its own connection and counters (add
        them back with ``absorb``); it shares the kinds learnt from CRDs, ``present()``'s index and the read
        memory — one memory for all, as if one client made every request: any client's write or forget()
        drops it for all."""
        client = lightkube.Client(config=self._config, field_manager=FIELD_MANAGER,
                                  timeout=httpx2.Timeout(self._timeout), trust_env=False)
        other = KubeApi(client, self._config, timeout=self._timeout)
        other._crd_kinds = self._crd_kinds
        other._memo, other._list_memo, other._listed = self._memo, self._list_memo, self._listed
        other._lock, other._forgets = self._lock, self._forgets
        other._remember = self._remember
        return other

    def absorb(self, other: KubeApi) -> None:
        """Count a branch client's requests as this client's and close its connection (call once, after its
        thread ended)."""
        self.counters.reads += other.counters.reads
        self.counters.writes += other.counters.writes
        other.counters = ApiCounters()
        other._client.close()

    # --- read memory -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def remembering(self) -> Iterator[None]:
        """Remember reads inside this block (see the class docstring); callers that poll must call forget()
        before they sleep — enable's WaitPolicy does."""
        before, self._remember = self._remember, True
        try:
            yield
        finally:
            self._remember = before
            self.forget()

    def forget(self) -> None:
        """Drop remembered reads (call before waiting for the cluster to change; writes do it themselves)."""
        with self._lock:
            self._memo.clear()
            self._list_memo.clear()
            self._forgets[0] += 1

    def _wrote(self, ref: ObjectRef, *, exists: bool) -> None:
        self.forget()  # a write may change other objects too (controllers, GC): re-read everything
        with self._lock:
            for (api_version, kind, _), names in self._listed.items():
                if (api_version, kind) == (ref.api_version, ref.kind):
                    (names.add if exists else names.discard)((ref.namespace, ref.name))

    def present(self, ref: ObjectRef, *, labels: dict[str, str]) -> bool:
        """Whether ``ref`` exists and carries ``labels``: one LIST of its kind across all namespaces per
        selector and run, kept current with this client's own writes."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        key = (ref.api_version, ref.kind, selector)
        with self._lock:  # branch clients share the index: one LIST per kind for all of them
            if key not in self._listed:
                _, namespaced = self.resource_info(ref.api_version, ref.kind)
                items = self.list(ref.api_version, ref.kind, namespace=ALL_NAMESPACES if namespaced else None,
                                  labels=labels)
                names: set[tuple[str | None, str]] = set()
                for item in items:
                    meta = item.get("metadata") or {}
                    found = ObjectRef(ref.api_version, ref.kind, meta.get("namespace") if namespaced else None,
                                      str(meta.get("name")))
                    names.add((found.namespace, found.name))
                    if self._remember:
                        self._memo[found] = item
                self._listed[key] = names
            return (ref.namespace, ref.name) in self._listed[key]

    @classmethod
    def connect(cls, kubeconfig: Path, context: str | None = None, *, timeout: float = 30.0,
                context_flag: str = "--context") -> KubeApi:
        try:
            if not Path(kubeconfig).exists():  # lightkube reports a missing file as a generic config error
                raise FileNotFoundError(kubeconfig)
            whole = KubeConfig.from_file(kubeconfig)
            if context is not None and context not in whole.contexts:
                known = ", ".join(sorted(whole.contexts)) or "none"
                raise ConfigError(f"kubeconfig {kubeconfig} has no context {context!r} (it has: {known})",
                                  resolution=f"pass {context_flag} with one of the file's contexts "
                                  "(`kubectl config get-contexts` lists them)")
            single = whole.get(context_name=context)
        except ConfigError:
            raise
        except FileNotFoundError:
            raise ConfigError(f"kubeconfig not found: {kubeconfig}",
                              resolution="pass --kubeconfig PATH, or run on a MicroK8s node") from None
        except PermissionError:
            raise ConfigError(f"cannot read kubeconfig {kubeconfig} (permission denied)",
                              resolution="run with sudo, or join the microk8s group") from None
        except (LightkubeConfigError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"cannot use kubeconfig {kubeconfig}: {exc}",
                              resolution="check the file, and --context if given") from None
        except Exception as exc:  # yaml errors and friends: one clear line, no traceback
            raise ConfigError(f"cannot read kubeconfig {kubeconfig}: {type(exc).__name__}: {exc}") from None
        if single is None:
            raise ConfigError(f"kubeconfig {kubeconfig} has no context {context or '(current)'}",
                              resolution="pass --context with one of the file's contexts")
        client = lightkube.Client(config=single, field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(timeout),
                                  trust_env=False)
        return cls(client, single, timeout=timeout)

    @property
    def server(self) -> str:
        return str(self._config.cluster.server)

    @property
    def context(self) -> str:
        return str(self._config.context_name)

    # --- errors -------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T], *, write: bool) -> T:
        if write:
            self.counters.writes += 1
        else:
            self.counters.reads += 1
        try:
            return fn()
        except ApiError as exc:
            code = int(exc.status.code or 0)
            message = exc.status.message or str(exc)
            if code in (429, 500, 502, 503, 504) or code == 0:
                raise TemporaryError(f"{what}: the API server answered {code}: {message}") from exc
            raise PermanentError(f"{what}: the API server refused it ({code} {exc.status.reason}): {message}",
                                 resolution=_resolution_for(code)) from exc
        except httpx2.TransportError as exc:
            raise TemporaryError(f"{what}: cannot reach the API server at {self.server}: {exc}",
                                 resolution="check that MicroK8s is running: `microk8s status --wait-ready`") from exc

    # --- discovery-free resource resolution ---------------------------------------------------

    def register_crds(self, crds: Iterable[Manifest]) -> None:
        """Learn the kinds served by these CRDs, so their objects can be applied before discovery."""
        for crd in crds:
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            namespaced = spec.get("scope") == "Namespaced"
            for ver in spec.get("versions") or []:
                key = (f"{spec['group']}/{ver['name']}", str(names["kind"]))
                self._crd_kinds[key] = (str(names["plural"]), namespaced)

    def register_kind(self, api_version: str, kind: str, plural: str, *, namespaced: bool) -> None:
        self._crd_kinds.setdefault((api_version, kind), (plural, namespaced))

    def resource_info(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind."""
        res = self.resource(api_version, kind)
        return str(api_info(res).plural), issubclass(res, NamespacedResource)

    def resource(self, api_version: str, kind: str) -> Any:
        try:
            return resource_registry.load(api_version, kind)
        except LoadResourceError:
            pass
        key = (api_version, kind)
        if key in self._crd_kinds:
            plural, namespaced = self._crd_kinds[key]
            group, _, version = api_version.rpartition("/")
            factory = create_namespaced_resource if namespaced else create_global_resource
            return factory(group, version, kind, plural)
        raise PermanentError(f"unknown kind {kind} ({api_version})",
                             details="it is neither built into Kubernetes nor served by a CRD we install")

    # --- verbs -----------------------------------------------------------------------------------

    def server_version(self) -> KubeVersion:
        def fetch() -> KubeVersion:
            with adapter_client(self._config, ConnectionParams(trust_env=False)) as http:
                resp = http.get("/version")
                if resp.status_code >= 500:
                    raise TemporaryError(f"GET /version answered {resp.status_code}")
                if resp.status_code >= 400:
                    raise PermanentError(f"GET /version answered {resp.status_code}",
                                         resolution="check the credentials in the kubeconfig")
                data = resp.json()
            text = str(data.get("gitVersion") or f"{data.get('major')}.{str(data.get('minor', '')).rstrip('+')}")
            return KubeVersion.parse(text)

        try:
            return self._call("GET /version", fetch, write=False)
        except TemporaryError as exc:
            raise PermanentError(
                f"the Kubernetes API server at {self.server} is not reachable",
                details=exc.brief,
                resolution="start MicroK8s (`sudo microk8s start`) and wait for it "
                "(`sudo microk8s status --wait-ready`), or pass --kubeconfig/--context of a running cluster",
            ) from None

    def apply(self, obj: Manifest) -> None:
        ref = ref_of(obj)
        res = self.resource(ref.api_version, ref.kind)
        try:
            self._call(
                f"apply {ref}",
                lambda: self._client.patch(res, ref.name, obj, namespace=ref.namespace, patch_type=PatchType.APPLY,
                                           force=True),
                write=True,
            )
        finally:  # also a write that timed out may have happened
            self._wrote(ref, exists=True)

    def merge_patch(self, ref: ObjectRef, body: dict[str, Any]) -> None:
        res = self.resource(ref.api_version, ref.kind)
        try:
            self._call(
                f"patch {ref}",
                lambda: self._client.patch(res, ref.name, body, namespace=ref.namespace, patch_type=PatchType.MERGE),
                write=True,
            )
        finally:
            self._wrote(ref, exists=True)

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The live object (None when missing); remembered until the next write or forget()."""
        try:
            return copy.deepcopy(self._memo[ref])  # callers may change what they get
        except KeyError:
            pass
        res = self.resource(ref.api_version, ref.kind)
        forgets = self._forgets[0]

        def fetch() -> dict[str, Any] | None:
            try:
                return _as_dict(self._client.get(res, ref.name, namespace=ref.namespace))
            except ApiError as exc:
                if exc.status.code == 404:
                    return None
                raise

        found = self._call(f"get {ref}", fetch, write=False)
        with self._lock:
            if self._remember and forgets == self._forgets[0]:
                self._memo[ref] = copy.deepcopy(found)
        return found

    def delete(self, ref: ObjectRef) -> bool:
        """Delete; False when it was already gone."""
        res = self.resource(ref.api_version, ref.kind)

        def remove() -> bool:
            try:
                self._client.delete(res, ref.name, namespace=ref.namespace)
            except ApiError as exc:
                if exc.status.code == 404:
                    return False
                raise
            return True

        try:
            return self._call(f"delete {ref}", remove, write=True)
        finally:
            self._wrote(ref, exists=False)

    def list(self, api_version: str, kind: str, *, namespace: str | None = None,
             labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Objects of a kind (in ``namespace``, or ALL_NAMESPACES); remembered like get()."""
        key = (api_version, kind, namespace, ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())))
        known = self._list_memo.get(key)
        if known is not None:
            return copy.deepcopy(known)
        res = self.resource(api_version, kind)
        forgets = self._forgets[0]

        def fetch() -> list[dict[str, Any]]:
            items = self._client.list(res, namespace=namespace, labels=labels)  # type: ignore[arg-type]
            found = [_as_dict(i) for i in items]
            # filter again on our side: harmless on a real server, needed on simple emulators
            return [o for o in found if _labels_match(o, labels or {})]

        found = self._call(f"list {kind} in {namespace or 'all namespaces'}", fetch, write=False)
        with self._lock:
            if self._remember and forgets == self._forgets[0]:
                self._list_memo[key] = copy.deepcopy(found)
        return found


    def pod_log(self, namespace: str, name: str, *, container: str | None = None, follow: bool = False,
                tail_lines: int | None = None, since_seconds: int | None = None) -> Iterator[str]:
        """A Pod's log lines (the ``log`` subresource); with ``follow`` the stream stays open."""
        self.counters.reads += 1
        try:
            yield from self._client.log(name, namespace=namespace, container=container, follow=follow,
                                        tail_lines=tail_lines, since=since_seconds)
        except ApiError as exc:
            if exc.status.code in (400, 404):  # container not started yet / pod gone: nothing to read
                return
            raise PermanentError(f"logs of pod {namespace}/{name}: {exc.status.message}",
                                 resolution=_resolution_for(int(exc.status.code or 0))) from exc
        except httpx2.TransportError as exc:
            raise TemporaryError(f"logs of pod {namespace}/{name}: cannot reach the API server: {exc}") from exc

    def service_proxy(self, method: str, namespace: str, service: str, path: str, *, body: bytes = b"",
                      headers: dict[str, str] | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
        """An HTTP request to a cluster Service through the API server's service proxy
        (``/api/v1/namespaces/NS/services/NAME[:PORT]/proxy/PATH``); returns (status, body)."""
        url = f"/api/v1/namespaces/{namespace}/services/{service}/proxy/{path.lstrip('/')}"

        def call() -> tuple[int, bytes]:
            with adapter_client(self._config, ConnectionParams(trust_env=False)) as http:
                resp = http.request(method, url, content=body, headers=headers or {}, timeout=timeout)
                return resp.status_code, resp.content

        self.counters.writes += 1
        try:
            return call()
        except httpx2.TransportError as exc:
            raise TemporaryError(f"{method} {url}: cannot reach the API server at {self.server}: {exc}") from exc


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return dict(obj)
    result: dict[str, Any] = obj.to_dict()
    return result


def _labels_match(obj: dict[str, Any], labels: dict[str, str]) -> bool:
    have = (obj.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())


def _resolution_for(code: int) -> str:
    if code in (401, 403):
        return "the kubeconfig's user lacks permission; use MicroK8s's admin config (run with sudo)"
    if code == 404:
        return "a namespace or CRD it needs is missing; run `sudo hybrid-knative repair` to apply the steps in order"
    if code == 422:
        return "the object was rejected as invalid; please report this as a hybrid-knative bug"
    return "see the message above"
