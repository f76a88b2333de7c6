"""Users' objects of hybrid-knative's CRDs (KServices, Brokers, Triggers, …) and what `disable` does with them.

Deleting a CRD deletes every object of its kind, so `disable` first lists the objects of the CRDs it
recorded that are not platform objects (not labelled ``app.kubernetes.io/managed-by: hybrid-knative``
and not in the record) and refuses unless the user said what to do:

- ``destroy`` (``--destroy-user-objects``): delete them first, while their controllers still run so
  that their finalizers (routes, ingresses, subscriptions) are handled, and wait — with a deadline —
  until they are gone; then the usual teardown;
- ``keep`` (``--keep-user-objects``): keep the CRDs (and so every object of them); everything else
  goes. The CRDs stay in the record: a later enable brings their controllers back, a later
  ``disable --destroy-user-objects`` removes them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hybrid_knative.errors import ConfigError, DeadlineExceeded
from hybrid_knative.kube import ready
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.wait import WaitPolicy, WaitStats, retry, wait_all
from hybrid_knative.platform.record import Entry, Record
from hybrid_knative.progress import Status

MANAGED_BY = "app.kubernetes.io/managed-by"
DESTROY = "destroy"
KEEP = "keep"
CHOICES = (DESTROY, KEEP)
SHOWN = 20  # objects named in the refusal; the rest are counted


@dataclasses.dataclass(frozen=True)
class CrdKind:
    crd: ObjectRef
    api_version: str
    kind: str
    plural: str
    namespaced: bool


def crd_kinds(kube: KubeApi, record: Record) -> list[CrdKind]:
    """The kinds of the CRDs hybrid-knative recorded, read from the live CRDs (served, storage version)."""
    kinds = []
    for entry in record.entries:
        if entry.ref.kind != "CustomResourceDefinition":
            continue
        live = kube.get(entry.ref)
        if live is None:
            continue
        spec: dict[str, Any] = live.get("spec") or {}
        versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
        if not versions:
            continue
        version = next((v for v in versions if v.get("storage")), versions[0])
        names = spec.get("names") or {}
        kinds.append(CrdKind(entry.ref, f"{spec['group']}/{version['name']}", str(names["kind"]),
                             str(names["plural"]), spec.get("scope", "Namespaced") == "Namespaced"))
    return kinds


def find(kube: KubeApi, record: Record) -> list[ObjectRef]:
    """Objects of our CRDs that are not hybrid-knative's own (not managed-by hybrid-knative, not recorded)."""
    found = []
    for k in crd_kinds(kube, record):
        kube.register_kind(k.api_version, k.kind, k.plural, namespaced=k.namespaced)
        for obj in kube.list(k.api_version, k.kind):
            meta = obj.get("metadata") or {}
            ref = ObjectRef(k.api_version, k.kind, meta.get("namespace") if k.namespaced else None, meta["name"])
            if (meta.get("labels") or {}).get(MANAGED_BY) == "hybrid-knative":
                continue
            if record.get(ref) is not None:
                continue
            if meta.get("ownerReferences"):  # a Revision, Route, … of a KService: goes with its owner
                continue
            found.append(ref)
    return sorted(found, key=lambda r: (r.kind, r.namespace or "", r.name))


def describe(refs: list[ObjectRef]) -> str:
    lines = [f"{r.kind} {r.namespace + '/' if r.namespace else ''}{r.name}" for r in refs[:SHOWN]]
    if len(refs) > SHOWN:
        lines.append(f"… and {len(refs) - SHOWN} more")
    return "\n".join(lines)


def check(kube: KubeApi, record: Record, choice: str | None) -> list[ObjectRef]:
    """The users' objects; a ConfigError (before anything is changed) when there are some and no choice."""
    if choice is not None and choice not in CHOICES:
        raise ConfigError(f"unknown choice for users' objects: {choice!r}", resolution="use destroy or keep")
    users = find(kube, record)
    if users and choice is None:
        counts: dict[str, int] = {}
        for ref in users:
            counts[ref.kind] = counts.get(ref.kind, 0) + 1
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        raise ConfigError(
            f"disable would delete {len(users)} objects that are not hybrid-knative's (yours or your users': "
            f"{kinds}) with the CRDs they need: nothing was changed",
            details=describe(users),
            resolution="say what to do with them: --destroy-user-objects deletes them (and hybrid-knative's CRDs); "
            "--keep-user-objects keeps them and the CRDs they need and removes everything else "
            "(--delete-user-models is the same as --destroy-user-objects; models in the store are kept either way) "
            "(through MicroK8s: `sudo microk8s disable hybrid-knative --keep-user-objects`)")
    return users


def destroy(kube: KubeApi, refs: list[ObjectRef], *, status: Status, policy: WaitPolicy, stats: WaitStats) -> None:
    """Delete users' objects while their controllers still run (finalizers), and wait until they are gone."""
    if not refs:
        return
    with status.step(f"Delete {len(refs)} users' objects of hybrid-knative's CRDs (--destroy-user-objects)"):
        for index, ref in enumerate(refs, start=1):
            status.note(f"deleting {index}/{len(refs)}: {ref}")
            retry(lambda r=ref: kube.delete(r), policy=policy, what=f"delete {ref}", stats=stats)  # type: ignore[misc]
        try:
            wait_all({str(ref): ready.gone(kube, ref) for ref in refs}, policy=policy, stats=stats,
                     on_progress=status.note, resolution="a finalizer is not being handled")
        except DeadlineExceeded as exc:
            raise DeadlineExceeded("users' objects were not gone before the deadline (their finalizers did not "
                                   "finish)", details=exc.details,
                                   resolution="see `microk8s kubectl get ksvc,broker,trigger -A`; their controllers "
                                   "still run, so re-running the same disable waits again") from None


def kept(entries: list[Entry], choice: str | None) -> list[Entry]:
    """The recorded objects `disable` leaves in place: with ``keep``, the CRDs."""
    if choice != KEEP:
        return []
    return [e for e in entries if e.ref.kind == "CustomResourceDefinition"]
