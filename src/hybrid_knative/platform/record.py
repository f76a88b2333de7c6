"""The install record: what enable applied (object refs + content checksums) and how to take back every
change to something hybrid-knative does not own (typed undo entries).

The record lives in the cluster — ConfigMap ``hybrid-knative-system/hybrid-knative-record`` — so any
control-plane node can re-run or disable; a local file beside the state is only a cache (and the
fallback for a record made by an older version). It is saved once per step (install/run.py), and
undo entries are saved at once, *before* the change they undo. A re-run skips unchanged objects;
``disable`` takes the undo entries back newest first, then deletes the objects in reverse rank order.

Overlapped installs (install/run.py) put and save from several threads: every change and every save holds
the record's lock, and ``overlapping()`` gives the entries and undo entries made meanwhile the order a
one-after-the-other run gives them (by step, in install order) when the overlap ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.objects import Manifest, ObjectRef, rank
from hybrid_knative.system.files import atomic_write

if TYPE_CHECKING:
    from hybrid_knative.config import ClusterTarget
    from hybrid_knative.kube.api import KubeApi

FORMAT = 2
NAMESPACE = "hybrid-knative-system"
CONFIGMAP = "hybrid-knative-record"
DATA_KEY = "record.json"
RECORD_REF = ObjectRef("v1", "ConfigMap", NAMESPACE, CONFIGMAP)
NAMESPACE_REF = ObjectRef("v1", "Namespace", None, NAMESPACE)
_LABELS = {"app.kubernetes.io/managed-by": "hybrid-knative", "hybrid-knative.dev/component": "hybrid-knative"}


@dataclasses.dataclass(frozen=True)
class Entry:
    ref: ObjectRef
    sha256: str
    step: str
    plural: str
    namespaced: bool
    component: str = ""  # the registry component whose step applied it

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref.to_dict(), "sha256": self.sha256, "step": self.step,
                "plural": self.plural, "namespaced": self.namespaced, "component": self.component}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(ObjectRef.from_dict(d["ref"]), str(d["sha256"]), str(d["step"]),
                   str(d["plural"]), bool(d["namespaced"]), str(d.get("component", "")))


# --- typed undo actions: one per kind of change to something we do not own --------------------------

@dataclasses.dataclass(frozen=True)
class MergePatch:
    """Put back fields of an object we do not own (e.g. Kourier's ``externalIPs``): a JSON merge patch."""

    kind: ClassVar[str] = "merge-patch"
    ref: ObjectRef
    patch: dict[str, Any]
    plural: str
    namespaced: bool


@dataclasses.dataclass(frozen=True)
class NodeLabels:
    """Labels/annotations we set on a Node, with their values from before (None: absent before)."""

    kind: ClassVar[str] = "node-labels"
    node: str
    labels: dict[str, str | None]
    annotations: dict[str, str | None] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class CorefileBlock:
    """Our server block in CoreDNS's Corefile (recognised by its marker comment): cut out again."""

    kind: ClassVar[str] = "corefile-block"
    namespace: str = "kube-system"
    name: str = "coredns"


@dataclasses.dataclass(frozen=True)
class HostFile:
    """A file we wrote on a host (the systemd-resolved drop-in, NetworkManager's dnsmasq file): removed
    there, then the resolver reloaded (``reload``: the command; default: restart systemd-resolved).

    ``reload_pending``: the file was written (or removed) but its reload has not succeeded yet — the next
    enable or disable runs it again (dns/hostdns.py retries it 3 times per run)."""

    kind: ClassVar[str] = "host-file"
    host: str
    path: str
    restart_resolved: bool = False
    reload: tuple[str, ...] = ()
    reload_pending: bool = False
    mode: str = "resolved"

    def __post_init__(self) -> None:
        object.__setattr__(self, "reload", tuple(str(a) for a in self.reload))  # JSON gives a list


@dataclasses.dataclass(frozen=True)
class MicroK8sAddon:
    """A MicroK8s addon we enabled on the user's behalf (nvidia): left enabled — other workloads may use
    it — and disable says how to turn it off."""

    kind: ClassVar[str] = "microk8s-addon"
    addon: str


UndoAction = MergePatch | NodeLabels | CorefileBlock | HostFile | MicroK8sAddon
_ACTIONS: dict[str, type[UndoAction]] = {a.kind: a for a in (MergePatch, NodeLabels, CorefileBlock, HostFile,
                                                             MicroK8sAddon)}


def _action_to_dict(action: UndoAction) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": action.kind}
    for field in dataclasses.fields(action):
        value = getattr(action, field.name)
        out[field.name] = value.to_dict() if isinstance(value, ObjectRef) else value
    return out


def _action_from_dict(d: dict[str, Any]) -> UndoAction:
    cls = _ACTIONS.get(str(d.get("kind")))
    if cls is None:
        raise ValueError(f"unknown undo kind {d.get('kind')!r}")
    values = {k: v for k, v in d.items() if k != "kind"}
    if "ref" in values:
        values["ref"] = ObjectRef.from_dict(values["ref"])
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class Undo:
    """How to take one change back. ``key`` names the change (unique in a record)."""

    key: str
    action: UndoAction
    step: str = ""
    component: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "step": self.step, "component": self.component,
                "action": _action_to_dict(self.action)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Undo:
        if "action" not in d:  # format 1: a merge patch of (ref, key)
            ref = ObjectRef.from_dict(d["ref"])
            action: UndoAction = MergePatch(ref, dict(d["patch"]), str(d["plural"]), bool(d["namespaced"]))
            return cls(key=f"{d['key']} {ref}", action=action)
        return cls(key=str(d["key"]), action=_action_from_dict(dict(d["action"])), step=str(d.get("step", "")),
                   component=str(d.get("component", "")))


# --- where the record is kept -----------------------------------------------------------------------

class ClusterStore(Protocol):
    """The verbs the record needs from the cluster (KubeApi has them)."""

    def get(self, ref: ObjectRef) -> dict[str, Any] | None: ...

    def apply(self, obj: Manifest) -> None: ...

    def delete(self, ref: ObjectRef) -> bool: ...


def record_path(state_dir: Path, server: str, context: str) -> Path:
    """The local cache of one cluster's record (API server URL + kubeconfig context)."""
    key = hashlib.sha256(f"{server}\n{context}".encode()).hexdigest()[:16]
    return state_dir / f"record-{key}.json"


def _parse(text: str, source: str) -> tuple[list[Entry], list[Undo], str | None, bool]:
    try:
        doc = json.loads(text)
        if doc.get("format") not in (1, FORMAT):
            raise ValueError(f"unknown record format {doc.get('format')!r}")
        entries = [Entry.from_dict(e) for e in doc["objects"]]
        undos = [Undo.from_dict(u) for u in doc.get("undo", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PermanentError(
            f"the install record {source} is unreadable: {exc}",
            resolution="move it aside (`microk8s kubectl -n hybrid-knative-system delete configmap "
            "hybrid-knative-record`, or the local file); enable will re-apply everything and rebuild it",
        ) from None
    release = doc.get("release")
    return entries, undos, str(release) if release is not None else None, doc.get("verified") is True


class Record:
    def __init__(self, path: Path, *, server: str, entries: list[Entry] | None = None,
                 release: str | None = None, undos: list[Undo] | None = None,
                 cluster: ClusterStore | None = None, verified: bool = False) -> None:
        self.path = path  # the local cache
        self.server = server
        self.release = release
        self.verified = verified  # the smoke test passed after the last change (enable re-runs skip it)
        self.cluster = cluster  # None: a local record only (tests, plan)
        self._entries: dict[ObjectRef, Entry] = {e.ref: e for e in entries or []}
        self._undos: dict[str, Undo] = {u.key: u for u in undos or []}
        self._saved = self._document() if (entries or undos) else None
        self.saves = 0  # how often the record was written to the cluster (benchmarks, tests)
        self._lock = threading.RLock()  # overlapped installs put and save from several threads
        self._touched: set[ObjectRef] | None = None  # entries put inside overlapping()
        self._touched_undos: set[str] | None = None

    @classmethod
    def load(cls, path: Path, *, server: str, cluster: ClusterStore | None = None) -> Record:
        """The cluster's record when there is one, else the local cache (a record of an older version)."""
        if cluster is not None:
            live = cluster.get(RECORD_REF)
            text = ((live or {}).get("data") or {}).get(DATA_KEY)
            if isinstance(text, str):
                entries, undos, release, verified = _parse(text, f"ConfigMap {NAMESPACE}/{CONFIGMAP}")
                return cls(path, server=server, entries=entries, release=release, undos=undos, cluster=cluster,
                           verified=verified)
        if not path.exists():
            return cls(path, server=server, cluster=cluster)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PermanentError(f"the install record {path} is unreadable: {exc}",
                                 resolution="move it aside; enable will re-apply everything and rebuild it") from None
        entries, undos, release, verified = _parse(text, str(path))
        record = cls(path, server=server, entries=entries, release=release, undos=undos, cluster=cluster,
                     verified=verified)
        record._saved = None  # not in the cluster yet: the next save puts it there
        return record

    # --- objects -----------------------------------------------------------------------------------

    def get(self, ref: ObjectRef) -> Entry | None:
        return self._entries.get(ref)

    def __len__(self) -> int:
        return len(self._entries) + len(self._undos)

    @property
    def entries(self) -> list[Entry]:
        """In apply order."""
        return list(self._entries.values())

    def put(self, entry: Entry) -> None:
        """Remember an applied object (saved with the step). A changed object moves to the end (apply order)."""
        with self._lock:
            if self._entries.get(entry.ref) == entry:
                return
            self._entries.pop(entry.ref, None)
            self._entries[entry.ref] = entry
            if self._touched is not None:
                self._touched.add(entry.ref)

    def remove(self, ref: ObjectRef) -> None:
        with self._lock:
            self._entries.pop(ref, None)

    def delete_order(self) -> list[Entry]:
        """Reverse rank order; within a rank, reverse apply order."""
        indexed = list(enumerate(self._entries.values()))
        indexed.sort(key=lambda ie: (rank(ie[1].ref.kind), ie[0]), reverse=True)
        return [e for _, e in indexed]

    # --- undo entries ------------------------------------------------------------------------------

    def put_undo(self, undo: Undo) -> None:
        """Remember how to take a change back, and save at once — call it BEFORE making the change. The
        first undo for a key wins: it restores the state from before hybrid-knative touched it."""
        with self._lock:
            if undo.key not in self._undos:
                self._undos[undo.key] = undo
                if self._touched_undos is not None:
                    self._touched_undos.add(undo.key)
                self.save()

    def replace_undo(self, undo: Undo) -> None:
        """Update an undo entry's bookkeeping (e.g. a reload still owed) and save at once when it changed.
        Unlike put_undo the latest wins: use it only for state that is not "how it was before"."""
        with self._lock:
            if self._undos.get(undo.key) != undo:
                self._undos[undo.key] = undo
                self.save()

    def undo(self, key: str) -> Undo | None:
        return self._undos.get(key)

    @property
    def undos(self) -> list[Undo]:
        """Newest first: the order in which disable takes them back."""
        return list(reversed(self._undos.values()))

    def remove_undo(self, key: str) -> None:
        with self._lock:
            self._undos.pop(key, None)

    # --- overlapped installs -----------------------------------------------------------------------

    @contextlib.contextmanager
    def overlapping(self, step_order: Mapping[str, int]) -> Iterator[None]:
        """Steps of independent components run side by side inside this block; at its end (also on
        failure) what they put is ordered as a one-after-the-other run orders it: untouched entries as
        they were, then the touched ones by ``step_order`` (the steps' install order; within a step, the
        order it put them — one thread). Then saved (only when that changed the document)."""
        with self._lock:
            self._touched, self._touched_undos = set(), set()
        try:
            yield
        finally:
            with self._lock:
                touched, touched_undos = self._touched or set(), self._touched_undos or set()
                self._touched = self._touched_undos = None
                last = len(step_order)
                entries = list(self._entries.values())
                moved = sorted((e for e in entries if e.ref in touched), key=lambda e: step_order.get(e.step, last))
                self._entries = {e.ref: e for e in [*(e for e in entries if e.ref not in touched), *moved]}
                undos = list(self._undos.values())
                later = sorted((u for u in undos if u.key in touched_undos),
                               key=lambda u: step_order.get(u.step, last))
                self._undos = {u.key: u for u in [*(u for u in undos if u.key not in touched_undos), *later]}
                self.save()

    # --- persistence -------------------------------------------------------------------------------

    def _document(self) -> str:
        doc = {"format": FORMAT, "server": self.server, "release": self.release, "verified": self.verified,
               "objects": [e.to_dict() for e in self._entries.values()],
               "undo": [u.to_dict() for u in self._undos.values()]}
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    def save(self) -> None:
        """Write the record to the cluster (and the local cache) when it changed since the last save."""
        with self._lock:
            self._save()

    def _save(self) -> None:
        if not self._entries and not self._undos:
            if self._saved is not None:
                self._clear()
            return
        text = self._document()
        if text == self._saved:
            return
        if self.cluster is not None:
            if self._saved is None and self.cluster.get(NAMESPACE_REF) is None:
                self.cluster.apply({"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": NAMESPACE, "labels": dict(_LABELS)}})
            self.cluster.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE, "labels": dict(_LABELS)},
                                "data": {DATA_KEY: text}})
            self.saves += 1
        atomic_write(self.path, text, mode=0o600)
        self._saved = text

    def clear(self) -> None:
        """Forget everything: the record in the cluster, its namespace, and the local cache."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._entries.clear()
        self._undos.clear()
        if self.cluster is not None and (self._saved is not None or self.cluster.get(RECORD_REF) is not None):
            self.cluster.delete(RECORD_REF)
            self.cluster.delete(NAMESPACE_REF)
        self.path.unlink(missing_ok=True)
        self._saved = None


def load_record(config: ClusterTarget, kube: KubeApi) -> Record:
    """The cluster's record (ConfigMap hybrid-knative-system/hybrid-knative-record); the local file is a cache."""
    path = record_path(config.effective_state_dir, kube.server, kube.context)
    return Record.load(path, server=kube.server, cluster=kube)
