"""The emulator's object storage and the apiserver's write semantics.

``ObjectDB`` keeps the objects indexed by resource, then by (namespace, name), plus a uid index
(for garbage collection), and implements what a real apiserver does on every write: defaulting,
validation (``admission``), managed fields (``fields``), resourceVersion/generation, finalizers,
and the built-in controllers of kube-controller-manager and the apiextensions server that the
project depends on (run by ``system_reconcile`` before each request):

* namespace deletion: ``Terminating`` while ``spec.finalizers`` holds ``kubernetes``; the namespace
  controller deletes every object inside (respecting their finalizers), then finalizes it;
* CRD deletion: the ``customresourcecleanup.apiextensions.k8s.io`` finalizer deletes every custom
  resource of the CRD first;
* background garbage collection: an object whose owners (``ownerReferences``, by uid) are all gone
  is deleted.

``Store`` is the synchronous façade used by the fake controller, hooks and ``ApiServer``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import kmock

from tests.harness.emulator import admission, fields
from tests.harness.emulator.common import (
    _CRD_CLEANUP_FINALIZER,
    _CRD_RESOURCE,
    _DEPLOYMENTS,
    _NAMESPACE_FINALIZER,
    _NAMESPACES,
    _SERVICE_CIDR_PREFIX,
    _SERVICES,
    K8sRequest,
    _already_exists,
    _api_version_of,
    _bad_request,
    _copy,
    _Info,
    _invalid,
    _merge_patch,
    _meta,
    _namespace_not_found,
    _namespace_terminating,
    _not_found,
    _now,
    _qualified,
    _res,
    _suffix,
    _without,
)
from tests.harness.emulator.selectors import _Selectors, parse_label_selector

if TYPE_CHECKING:
    from tests.harness.emulator.server import KubernetesApiEmulator

Key = tuple[str | None, str]


@attrs.define
class _Watcher:
    res: kmock.resource
    namespace: str | None
    selectors: _Selectors
    queue: asyncio.Queue[dict[str, Any] | None]


@attrs.define(kw_only=True)
class Writer:
    """Who writes: the field manager (None: not tracked, a test backdoor) and the subresource."""

    manager: str | None = None
    subresource: str | None = None


_BACKDOOR = Writer()


class ObjectDB:
    """Objects by resource and (namespace, name); every method runs inside the emulator's loop."""

    def __init__(self) -> None:
        self.objects: dict[kmock.resource, dict[Key, dict[str, Any]]] = {}
        self.uids: dict[str, tuple[kmock.resource, str | None, str]] = {}
        self.rv = 0
        self.uid_counter = 0
        self.cluster_ips = 0
        self.crd_version = 0  # bumped whenever a CRD changes (the emulator caches CRD-served resources)
        self.watchers: list[_Watcher] = []
        self._gc_pending = False  # something was removed: owners may be gone
        self._terminating: set[tuple[kmock.resource, str]] = set()  # namespaces and CRDs being deleted

    # -- reading --------------------------------------------------------------------------------

    def iter(self, res: kmock.resource, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """The stored objects themselves (not copies; callers must not modify them), etcd order."""
        bucket = self.objects.get(res)
        if not bucket:
            return iter(())
        keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
        return (bucket[k] for k in keys)

    def alive(self, res: kmock.resource, namespace: str | None = None) -> list[dict[str, Any]]:
        return [_copy(obj) for obj in self.iter(res, namespace)]

    def peek(self, res: kmock.resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get(res, {}).get((namespace, name))

    def lookup(self, res: kmock.resource, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self.peek(res, namespace, name)
        return None if obj is None else _copy(obj)

    def resources(self) -> list[kmock.resource]:
        return [res for res, bucket in self.objects.items() if bucket]

    # -- low level --------------------------------------------------------------------------------

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _next_uid(self) -> str:
        self.uid_counter += 1
        return str(uuid.UUID(int=self.uid_counter, version=4))

    def notify(self, event: str, res: kmock.resource, obj: Mapping[str, Any]) -> None:
        if not self.watchers:
            return
        namespace = _meta(obj).get("namespace")
        for watcher in list(self.watchers):
            if watcher.res != res or (watcher.namespace is not None and watcher.namespace != namespace):
                continue
            if watcher.selectors.match(obj):
                watcher.queue.put_nowait({"type": event, "object": _copy(obj)})

    def _store(self, res: kmock.resource, namespace: str | None, name: str, obj: dict[str, Any]) -> None:
        self.objects.setdefault(res, {})[namespace, name] = _copy(obj)
        uid = _meta(obj).get("uid")
        if uid:
            self.uids[uid] = (res, namespace, name)
        if res == _CRD_RESOURCE:
            self.crd_version += 1
        if _meta(obj).get("deletionTimestamp") and res in (_NAMESPACES, _CRD_RESOURCE):
            self._terminating.add((res, name))

    def remove(self, res: kmock.resource, namespace: str | None, name: str) -> None:
        last = self.objects.get(res, {}).pop((namespace, name), None)
        if last is None:
            return
        self.uids.pop(_meta(last).get("uid", ""), None)
        if res == _CRD_RESOURCE:
            self.crd_version += 1
        self._terminating.discard((res, name))
        self._gc_pending = True
        self.notify("DELETED", res, last)

    # -- the write semantics --------------------------------------------------------------------

    def _apply_create_defaults(self, res: kmock.resource, obj: dict[str, Any]) -> None:
        """Defaulting that a real apiserver does itself (not a controller)."""
        meta = obj["metadata"]
        spec = obj.get("spec")
        if res == _NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", [_NAMESPACE_FINALIZER])
            obj["status"] = {"phase": "Active"}
        elif res == _CRD_RESOURCE:
            finalizers = meta.setdefault("finalizers", [])
            if _CRD_CLEANUP_FINALIZER not in finalizers:
                finalizers.append(_CRD_CLEANUP_FINALIZER)
        elif res == _SERVICES and isinstance(spec, dict):
            spec.setdefault("type", "ClusterIP")
            if spec["type"] != "ExternalName" and not spec.get("clusterIP"):
                self.cluster_ips += 1
                ip = f"{_SERVICE_CIDR_PREFIX}{(self.cluster_ips % 250) + 2}"
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
        elif res == _DEPLOYMENTS and isinstance(spec, dict):
            spec.setdefault("replicas", 1)

    def _check_namespace(self, res: kmock.resource, name: str, namespace: str | None) -> None:
        if namespace is None:
            return
        ns = self.peek(_NAMESPACES, None, namespace)
        if ns is None:
            raise _namespace_not_found(namespace)
        if _meta(ns).get("deletionTimestamp"):
            raise _namespace_terminating(res, name, namespace)

    def create(
        self,
        res: kmock.resource,
        info: _Info,
        namespace: str | None,
        body: Any,
        *,
        reset_status: bool,
        dry_run: bool = False,
        writer: Writer = _BACKDOOR,
        strict: bool = True,
        builtin: bool = True,
        apply: bool = False,
        force: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _bad_request("the object to create must be a JSON/YAML mapping")
        obj = _copy(body)
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
            meta["name"] = meta["generateName"] + _suffix(f"{namespace}/{meta['generateName']}/{self.rv}")
        name = meta["name"]
        if self.peek(res, namespace, name) is not None:
            raise _already_exists(res, name)
        if strict:
            self._check_namespace(res, name, namespace)
        obj.setdefault("apiVersion", _api_version_of(res))
        obj.setdefault("kind", info.kind)
        if reset_status and info.status_subresource:
            obj.pop("status", None)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "resourceVersion", "uid"):
            meta.pop(key, None)
        self._apply_create_defaults(res, obj)
        if strict:
            admission.validate(res, info.kind, obj, None)
        if writer.manager is not None:
            status_separate = info.status_subresource
            if apply:
                fresh = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": {}}
                applied = fields.server_side_apply(
                    res, name, fresh, body, manager=writer.manager, force=force, builtin=builtin,
                    subresource=None, status_separate=status_separate,
                )
                meta["managedFields"] = applied["metadata"]["managedFields"]
            else:
                fields.track_update(None, obj, manager=writer.manager, builtin=builtin, subresource=None,
                                    status_separate=status_separate)
        meta["uid"] = str(uuid.UUID(int=self.uid_counter + 1, version=4)) if dry_run else self._next_uid()
        meta["resourceVersion"] = str(self.rv + 1) if dry_run else self.next_rv()
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        if not dry_run:
            self._store(res, namespace, name, obj)
            self.notify("ADDED", res, obj)
        return obj

    def update(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        old: dict[str, Any],
        new: Any,
        *,
        dry_run: bool = False,
        info: _Info | None = None,
        writer: Writer = _BACKDOOR,
        builtin: bool = True,
        strict: bool = True,
    ) -> dict[str, Any]:
        """Store a new full state of an existing object (after the verb-specific merging)."""
        if not isinstance(new, dict):
            raise _bad_request("the object must be a JSON/YAML mapping")
        new = _copy(new)
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
        if "managedFields" not in meta and "managedFields" in old_meta:
            meta["managedFields"] = old_meta["managedFields"]
        new.setdefault("apiVersion", old.get("apiVersion", _api_version_of(res)))
        new.setdefault("kind", old.get("kind"))
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise _invalid(res, name, f"metadata.finalizers: Forbidden: no new finalizers can be added if the "
                               f"object is being deleted, found new finalizers {sorted(added)}")
        if strict and info is not None:
            admission.validate(res, info.kind, new, old)
        if writer.manager is not None and info is not None:
            fields.track_update(old, new, manager=writer.manager, builtin=builtin, subresource=writer.subresource,
                                status_separate=info.status_subresource)
        if new == {**old, "metadata": _without(old_meta, "resourceVersion")}:
            return old  # a no-op write: a real apiserver keeps the resourceVersion
        if _without(new, "metadata", "status") != _without(old, "metadata", "status"):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        meta["resourceVersion"] = str(self.rv + 1) if dry_run else self.next_rv()
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not self._spec_finalizers(res, new):
            self._store(res, namespace, name, new)
            self.remove(res, namespace, name)
            return new
        self._store(res, namespace, name, new)
        self.notify("MODIFIED", res, new)
        return new

    @staticmethod
    def _spec_finalizers(res: kmock.resource, obj: Mapping[str, Any]) -> list[str]:
        if res != _NAMESPACES:
            return []
        return list((obj.get("spec") or {}).get("finalizers") or [])

    def delete(
        self, res: kmock.resource, namespace: str | None, name: str, *, dry_run: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """Delete (or mark for deletion if finalizers exist); returns (object, removed_now)."""
        obj = self.lookup(res, namespace, name)
        if obj is None:
            raise _not_found(res, name)
        meta = obj["metadata"]
        if meta.get("finalizers") or self._spec_finalizers(res, obj) or res == _CRD_RESOURCE:
            if meta.get("deletionTimestamp") or dry_run:
                return obj, False
            meta["deletionTimestamp"] = _now()
            meta["deletionGracePeriodSeconds"] = 0
            if res == _NAMESPACES:
                obj["status"] = {
                    "phase": "Terminating",
                    "conditions": [
                        {
                            "type": "NamespaceDeletionContentFailure",
                            "status": "False",
                            "reason": "ContentDeleted",
                            "message": "All content successfully deleted, may be waiting on finalization",
                            "lastTransitionTime": meta["deletionTimestamp"],
                        }
                    ],
                }
            meta["resourceVersion"] = self.next_rv()
            self._store(res, namespace, name, obj)
            self.notify("MODIFIED", res, obj)
            return obj, False
        if not dry_run:
            self.remove(res, namespace, name)
        return obj, True

    # -- kube-controller-manager / apiextensions built-ins ---------------------------------------

    def system_reconcile(self) -> None:
        """The namespace controller, the CRD finalizer and the garbage collector, run to completion."""
        for _ in range(10):  # bounded: each pass can unblock the next (GC after a namespace is gone)
            changed = False
            for res, name in sorted(self._terminating, key=lambda t: (str(t[0].plural), t[1])):
                if res == _NAMESPACES:
                    changed |= self._finish_namespace(name)
                else:
                    changed |= self._finish_crd(name)
            if self._gc_pending:
                self._gc_pending = False
                changed |= self._collect_garbage()
            if not changed:
                return

    def _delete_all(self, targets: list[tuple[kmock.resource, str | None, str]]) -> tuple[bool, int]:
        """Delete these objects; returns (anything changed, how many remain)."""
        changed, remaining = False, 0
        for res, namespace, name in targets:
            obj = self.peek(res, namespace, name)
            if obj is None:
                continue
            if _meta(obj).get("deletionTimestamp"):
                remaining += 1
                continue
            _, removed = self.delete(res, namespace, name)
            changed = True
            remaining += 0 if removed else 1
        return changed, remaining

    def _finish_namespace(self, name: str) -> bool:
        targets = [
            (res, key[0], key[1])
            for res, bucket in self.objects.items()
            if res != _NAMESPACES
            for key in list(bucket)
            if key[0] == name
        ]
        changed, remaining = self._delete_all(targets)
        if remaining:
            return changed
        ns = self.lookup(_NAMESPACES, None, name)
        if ns is None:
            return changed
        finalizers = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != _NAMESPACE_FINALIZER]
        if finalizers == (ns.get("spec") or {}).get("finalizers"):
            return changed
        ns.setdefault("spec", {})["finalizers"] = finalizers
        self.update(_NAMESPACES, None, name, self.lookup(_NAMESPACES, None, name) or ns, ns, strict=False)
        return True

    def _finish_crd(self, name: str) -> bool:
        crd = self.lookup(_CRD_RESOURCE, None, name)
        if crd is None:
            return False
        spec = crd.get("spec") or {}
        group, plural = spec.get("group"), (spec.get("names") or {}).get("plural")
        targets = [
            (res, key[0], key[1])
            for res, bucket in self.objects.items()
            if res.group == group and res.plural == plural
            for key in list(bucket)
        ]
        changed, remaining = self._delete_all(targets)
        if remaining:
            return changed
        finalizers = [f for f in crd["metadata"].get("finalizers") or [] if f != _CRD_CLEANUP_FINALIZER]
        if finalizers == crd["metadata"].get("finalizers"):
            if not finalizers:
                self.remove(_CRD_RESOURCE, None, name)
                return True
            return changed
        crd["metadata"]["finalizers"] = finalizers
        self.update(_CRD_RESOURCE, None, name, self.lookup(_CRD_RESOURCE, None, name) or crd, crd, strict=False)
        return True

    def _collect_garbage(self) -> bool:
        orphans = []
        for res, bucket in self.objects.items():
            for (namespace, name), obj in bucket.items():
                owners = _meta(obj).get("ownerReferences") or []
                if (
                    owners
                    and not _meta(obj).get("deletionTimestamp")
                    and not any(o.get("uid") in self.uids for o in owners if isinstance(o, Mapping))
                ):
                    orphans.append((res, namespace, name))
        changed, _ = self._delete_all(orphans)
        return changed


class Store:
    """Direct access to the emulator's objects, bypassing HTTP (no request is recorded).

    Must be used inside the emulator's loop (controller and hooks are); ``ApiServer``'s own
    accessors marshal their calls there. All returned objects are deep copies. Writes are a test
    backdoor: no validation, no namespace check, no managed fields unless ``manager`` is given.
    """

    def __init__(self, emulator: KubernetesApiEmulator, request: K8sRequest | None = None) -> None:
        self.emulator = emulator
        self.request = request  # the request about to be served (None when run explicitly)

    @property
    def db(self) -> ObjectDB:
        return self.emulator.db

    def _info(self, res: kmock.resource, obj: Mapping[str, Any] | None = None) -> _Info:
        info = self.emulator._info(res)
        if info is not None:
            return info
        kind = (obj or {}).get("kind") or str(res.plural).capitalize()
        return _Info(str(kind), None, False)

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.db.lookup(_res(api_version, plural), namespace, name)

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
        return [_copy(o) for o in self.db.iter(_res(api_version, plural), namespace) if selectors.match(o)]

    def peek(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The stored object itself, without a copy: read it, never modify it."""
        return self.db.peek(_res(api_version, plural), namespace, name)

    def view(self, api_version: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """The stored objects themselves, without copies: read them, never modify them."""
        return list(self.db.iter(_res(api_version, plural), namespace))

    def put(
        self, api_version: str, plural: str, obj: Mapping[str, Any], *, manager: str | None = None
    ) -> dict[str, Any]:
        """Create or fully replace an object (status included: this is a test-setup backdoor).

        With ``manager``, the write is recorded in managedFields as that manager's Update (like
        ``kubectl create``/``kubectl apply`` (client-side) do on a real cluster).
        """
        res = _res(api_version, plural)
        body = _copy(dict(obj))
        body.setdefault("apiVersion", api_version)
        info = self._info(res, body)
        meta = _meta(body)
        if not meta.get("name"):
            raise ValueError(f"the object has no metadata.name: {obj!r}")
        namespace = meta.get("namespace") if info.namespaced is not False else None
        if info.namespaced and not namespace:
            raise ValueError(f"{_qualified(res)} is namespaced, but the object has no metadata.namespace")
        old = self.db.lookup(res, namespace, meta["name"])
        writer = Writer(manager=manager)
        builtin = self.emulator.is_builtin(res)
        if old is None:
            return self.db.create(res, info, namespace, body, reset_status=False, strict=False, writer=writer,
                                  builtin=builtin)
        return self.db.update(res, namespace, meta["name"], old, body, strict=False, writer=writer, info=info,
                              builtin=builtin)

    def patch(
        self, api_version: str, plural: str, name: str, namespace: str | None, patch: Mapping[str, Any]
    ) -> dict[str, Any]:
        """JSON-merge-patch an existing object (status included)."""
        res = _res(api_version, plural)
        old = self.db.lookup(res, namespace, name)
        if old is None:
            raise KeyError(f"{_qualified(res)} {namespace}/{name} does not exist")
        return self.db.update(res, namespace, name, old, _merge_patch(old, patch), strict=False)

    def set_status(
        self, api_version: str, plural: str, name: str, namespace: str | None, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace the whole status (a no-op, without a new resourceVersion, if unchanged)."""
        res = _res(api_version, plural)
        old = self.db.peek(res, namespace, name)
        if old is None:
            raise KeyError(f"{_qualified(res)} {namespace}/{name} does not exist")
        if old.get("status") == status:
            return _copy(old)
        old = _copy(old)
        return self.db.update(res, namespace, name, old, {**old, "status": _copy(dict(status))}, strict=False)

    def delete(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> bool:
        """Delete (finalizers respected); False if the object did not exist."""
        res = _res(api_version, plural)
        try:
            self.db.delete(res, namespace, name)
        except kmock.KubernetesError:
            return False
        return True
