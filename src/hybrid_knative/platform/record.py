"""The record of what enable applied: object refs + content checksums, saved after every write.

It makes a re-run skip unchanged objects (no write requests) and lets ``disable`` remove exactly
what ``enable`` created, in reverse rank order, even after an enable that stopped half-way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.objects import ObjectRef, rank
from hybrid_knative.system.files import atomic_write

FORMAT = 1


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


@dataclasses.dataclass(frozen=True)
class Undo:
    """A change to an object hybrid-knative does not own (a label on a Node, a block in CoreDNS's
    Corefile): ``disable`` applies ``patch`` (a JSON merge patch) to ``ref`` to take it back."""

    ref: ObjectRef
    key: str  # what the change is, unique per ref (e.g. "labels", "corefile")
    patch: dict[str, Any]
    plural: str
    namespaced: bool

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref.to_dict(), "key": self.key, "patch": self.patch, "plural": self.plural,
                "namespaced": self.namespaced}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Undo:
        return cls(ObjectRef.from_dict(d["ref"]), str(d["key"]), dict(d["patch"]), str(d["plural"]),
                   bool(d["namespaced"]))


def record_path(state_dir: Path, server: str, context: str) -> Path:
    """One record per cluster (API server URL + kubeconfig context)."""
    key = hashlib.sha256(f"{server}\n{context}".encode()).hexdigest()[:16]
    return state_dir / f"record-{key}.json"


class Record:
    def __init__(self, path: Path, *, server: str, entries: list[Entry] | None = None,
                 release: str | None = None, undos: list[Undo] | None = None) -> None:
        self.path = path
        self.server = server
        self.release = release
        self._entries: dict[ObjectRef, Entry] = {e.ref: e for e in entries or []}
        self._undos: dict[tuple[ObjectRef, str], Undo] = {(u.ref, u.key): u for u in undos or []}

    @classmethod
    def load(cls, path: Path, *, server: str) -> Record:
        if not path.exists():
            return cls(path, server=server)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown record format {doc.get('format')!r}")
            entries = [Entry.from_dict(e) for e in doc["objects"]]
            undos = [Undo.from_dict(u) for u in doc.get("undo", [])]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PermanentError(
                f"the install record {path} is unreadable: {exc}",
                resolution="move it aside; enable will re-apply everything and rebuild it",
            ) from None
        return cls(path, server=server, entries=entries, release=doc.get("release"), undos=undos)

    def get(self, ref: ObjectRef) -> Entry | None:
        return self._entries.get(ref)

    def __len__(self) -> int:
        return len(self._entries) + len(self._undos)

    @property
    def entries(self) -> list[Entry]:
        """In apply order."""
        return list(self._entries.values())

    def put(self, entry: Entry) -> None:
        self._entries.pop(entry.ref, None)  # re-applied objects move to the end (apply order)
        self._entries[entry.ref] = entry
        self.save()

    def remove(self, ref: ObjectRef) -> None:
        if self._entries.pop(ref, None) is not None:
            self.save()

    def put_undo(self, undo: Undo) -> None:
        """Remember how to take a change back. The first undo for a (ref, key) wins: it restores the
        state from before hybrid-knative touched it, however often enable re-runs."""
        if (undo.ref, undo.key) not in self._undos:
            self._undos[(undo.ref, undo.key)] = undo
            self.save()

    def undo(self, ref: ObjectRef, key: str) -> Undo | None:
        return self._undos.get((ref, key))

    @property
    def undos(self) -> list[Undo]:
        """Newest first: the order in which disable takes them back."""
        return list(reversed(self._undos.values()))

    def remove_undo(self, ref: ObjectRef, key: str) -> None:
        if self._undos.pop((ref, key), None) is not None:
            self.save()

    def delete_order(self) -> list[Entry]:
        """Reverse rank order; within a rank, reverse apply order."""
        indexed = list(enumerate(self._entries.values()))
        indexed.sort(key=lambda ie: (rank(ie[1].ref.kind), ie[0]), reverse=True)
        return [e for _, e in indexed]

    def save(self) -> None:
        if not self._entries and not self._undos:
            self.path.unlink(missing_ok=True)
            return
        doc = {"format": FORMAT, "server": self.server, "release": self.release,
               "objects": [e.to_dict() for e in self._entries.values()],
               "undo": [u.to_dict() for u in self._undos.values()]}
        atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n", mode=0o600)
