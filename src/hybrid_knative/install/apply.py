"""Applying a step's objects: rank order, record-driven skips, typed retries."""

from __future__ import annotations

from collections.abc import Iterable

from hybrid_knative.install.context import Context
from hybrid_knative.install.record import Entry
from hybrid_knative.kube.objects import Manifest, checksum, ref_of, sort_for_apply
from hybrid_knative.kube.wait import retry


def apply_objects(ctx: Context, step: str, objs: Iterable[Manifest]) -> int:
    """Apply server-side; returns how many objects were written (0 on a no-op re-run)."""
    written = 0
    ordered = sort_for_apply(objs)
    for index, obj in enumerate(ordered, start=1):
        ref = ref_of(obj)
        digest = checksum(obj)
        entry = ctx.record.get(ref)
        if entry is not None and entry.sha256 == digest and ctx.kube.get(ref) is not None:
            ctx.status.detail(f"unchanged {ref}")
            continue
        ctx.status.note(f"applying {index}/{len(ordered)}: {ref}")
        retry(lambda obj=obj: ctx.kube.apply(obj), policy=ctx.waits, what=f"apply {ref}",  # type: ignore[misc]
              stats=ctx.stats)
        plural, namespaced = ctx.kube.resource_info(ref.api_version, ref.kind)
        ctx.record.put(Entry(ref=ref, sha256=digest, step=step, plural=plural, namespaced=namespaced))
        ctx.status.detail(f"applied {ref}")
        written += 1
    return written
