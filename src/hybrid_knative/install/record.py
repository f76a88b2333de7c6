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

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref.to_dict(), "sha256": self.sha256, "step": self.step,
                "plural": self.plural, "namespaced": self.namespaced}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(ObjectRef.from_dict(d["ref"]), str(d["sha256"]), str(d["step"]),
                   str(d["plural"]), bool(d["namespaced"]))


def record_path(state_dir: Path, server: str, context: str) -> Path:
    """One record per cluster (API server URL + kubeconfig context)."""
    key = hashlib.sha256(f"{server}\n{context}".encode()).hexdigest()[:16]
    return state_dir / f"record-{key}.json"


class Record:
    def __init__(self, path: Path, *, server: str, entries: list[Entry] | None = None,
                 release: str | None = None) -> None:
        self.path = path
        self.server = server
        self.release = release
        self._entries: dict[ObjectRef, Entry] = {e.ref: e for e in entries or []}

    @classmethod
    def load(cls, path: Path, *, server: str) -> Record:
        if not path.exists():
            return cls(path, server=server)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown record format {doc.get('format')!r}")
            entries = [Entry.from_dict(e) for e in doc["objects"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PermanentError(
                f"the install record {path} is unreadable: {exc}",
                resolution="move it aside; enable will re-apply everything and rebuild it",
            ) from None
        return cls(path, server=server, entries=entries, release=doc.get("release"))

    def get(self, ref: ObjectRef) -> Entry | None:
        return self._entries.get(ref)

    def __len__(self) -> int:
        return len(self._entries)

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

    def delete_order(self) -> list[Entry]:
        """Reverse rank order; within a rank, reverse apply order."""
        indexed = list(enumerate(self._entries.values()))
        indexed.sort(key=lambda ie: (rank(ie[1].ref.kind), ie[0]), reverse=True)
        return [e for _, e in indexed]

    def save(self) -> None:
        if not self._entries:
            self.path.unlink(missing_ok=True)
            return
        doc = {"format": FORMAT, "server": self.server, "release": self.release,
               "objects": [e.to_dict() for e in self._entries.values()]}
        atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n", mode=0o600)
