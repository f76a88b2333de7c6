"""Apply the transformed objects to the target: in dependency order, server-side with our field
manager, each gated on its readiness when later objects depend on it; unchanged objects are skipped.

Every applied object carries ``hybrid-knative.dev/clone-checksum`` (of what clone wants it to be): a
re-run compares it with the target's and writes only what changed (a sync, not a second copy), and an
interrupted clone simply continues. Objects that exist on the target without it were not made by
clone: they are the target's, and clone refuses to overwrite them unless told to (``--overwrite``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from collections.abc import Callable
from typing import Any

import yaml

from hybrid_knative.clone.select import KIND_OF, ref, sort_key
from hybrid_knative.clone.transform import CHECKSUM, CLONED_FROM, strip_knative_bookkeeping, strip_server_fields
from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.knative import knative_ready
from hybrid_knative.kube.objects import Manifest, checksum
from hybrid_knative.kube.wait import WaitPolicy, WaitStats, retry, wait_all

REDACTED = "<redacted>"


@dataclasses.dataclass(frozen=True)
class Change:
    obj: Manifest  # what the target gets (with the checksum annotation)
    action: str  # create | update | unchanged
    live: Manifest | None  # the target's object now

    @property
    def ref_text(self) -> str:
        return str(ref(self.obj))


def stamp(obj: Manifest, source: str) -> Manifest:
    out = copy.deepcopy(obj)
    annotations = out["metadata"].setdefault("annotations", {})
    annotations.pop(CHECKSUM, None)
    annotations[CLONED_FROM] = source
    annotations[CHECKSUM] = checksum(out)
    return out


def compare(kube: KubeApi, objs: list[Manifest], *, overwrite: bool) -> list[Change]:
    """One GET per object; refuses (before any write) to take over objects clone did not make."""
    changes = []
    foreign = []
    for obj in sorted(objs, key=sort_key):
        live = kube.get(ref(obj))
        want = obj["metadata"]["annotations"][CHECKSUM]
        if live is None:
            changes.append(Change(obj, "create", None))
            continue
        have = ((live.get("metadata") or {}).get("annotations") or {}).get(CHECKSUM)
        if have is None and not overwrite and obj["kind"] != "Namespace":
            foreign.append(str(ref(obj)))
        changes.append(Change(obj, "unchanged" if have == want else "update", live))
    if foreign:
        raise ConfigError(f"{len(foreign)} object(s) already exist on the target and were not made by clone",
                          details="\n".join(foreign[:20]),
                          resolution="pass --overwrite to replace them with the source's, or choose other "
                          "namespaces (--namespace)")
    return changes


def _redact(obj: Manifest) -> Manifest:
    if obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = {k: REDACTED for k in out[key]}
    return out


def diff(change: Change) -> str:
    """A unified diff of the target's object (without server fields) against what clone would apply."""
    want = yaml.safe_dump(_redact(change.obj), sort_keys=True).splitlines()
    have: list[str] = []
    if change.live is not None:
        live = strip_knative_bookkeeping(strip_server_fields(change.live))
        annotations = (change.live.get("metadata") or {}).get("annotations") or {}
        for key in (CHECKSUM, CLONED_FROM):  # keep ours: they are part of what is compared
            if key in annotations:
                live["metadata"].setdefault("annotations", {})[key] = annotations[key]
        have = yaml.safe_dump(_redact(live), sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(have, want, f"target/{change.ref_text}", f"clone/{change.ref_text}",
                                          lineterm="", n=2))


@dataclasses.dataclass
class ApplyReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def apply_all(kube: KubeApi, changes: list[Change], *, policy: WaitPolicy, stats: WaitStats,
              on_progress: Callable[[str], None]) -> ApplyReport:
    """Apply in order; before the first object of a later kind, wait for the gated kinds before it."""
    report = ApplyReport()
    pending_gates: dict[str, Any] = {}
    last_kind: tuple[str, str] | None = None
    for index, change in enumerate(changes, start=1):
        key = (str(change.obj["apiVersion"]), str(change.obj["kind"]))
        if key != last_kind and pending_gates:
            _wait(pending_gates, policy=policy, stats=stats, on_progress=on_progress)
            pending_gates = {}
        last_kind = key
        if change.action == "unchanged":
            report.unchanged += 1
        else:
            on_progress(f"applying {index}/{len(changes)}: {change.ref_text}")
            retry(lambda c=change: kube.apply(c.obj), policy=policy,  # type: ignore[misc]
                  what=f"apply {change.ref_text}", stats=stats)
            if change.action == "create":
                report.created += 1
            else:
                report.updated += 1
        kind = KIND_OF.get(key)
        if kind is not None and kind.gate:
            pending_gates[change.ref_text] = knative_ready(kube, ref(change.obj))
    if pending_gates:
        _wait(pending_gates, policy=policy, stats=stats, on_progress=on_progress)
    return report


def _wait(checks: dict[str, Any], *, policy: WaitPolicy, stats: WaitStats, on_progress: Callable[[str], None]) -> None:
    wait_all(checks, policy=policy, stats=stats, on_progress=on_progress,
             resolution="see why on the target (`kubectl describe` the object, or `hybrid-knative doctor "
             "--context TARGET`); fix it there or on the source, then re-run clone: it continues where it stopped")
