"""Applying a step's objects: rank order, record-driven skips, typed retries."""

from __future__ import annotations

from collections.abc import Iterable

from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.objects import Manifest, checksum, ref_of, sort_for_apply
from hybrid_knative.kube.wait import retry
from hybrid_knative.manifests import with_labels
from hybrid_knative.platform.component import MANAGED_BY, MANAGER, platform_labels
from hybrid_knative.platform.context import Context
from hybrid_knative.platform.record import Entry

_MANAGED = {MANAGED_BY: MANAGER}  # every object enable applies carries it: one LIST per kind finds them all


def apply_objects(ctx: Context, step: str, objs: Iterable[Manifest]) -> int:
    """Apply server-side; returns how many objects were written (0 on a no-op re-run).

    An object is skipped when the record has it with the same checksum and it still exists with our
    labels; existence comes from one LIST per kind (KubeApi.present), not one GET per object."""
    written = 0
    ordered = sort_for_apply(objs)
    for index, obj in enumerate(ordered, start=1):
        obj = with_labels(obj, platform_labels(ctx.component or MANAGER))
        ref = ref_of(obj)
        digest = checksum(obj)
        entry = ctx.record.get(ref)
        if entry is not None and entry.sha256 == digest and ctx.kube.present(ref, labels=_MANAGED):
            ctx.status.detail(f"unchanged {ref}")
            continue
        ctx.status.note(f"applying {index}/{len(ordered)}: {ref}")
        retry(lambda obj=obj: ctx.kube.apply(obj), policy=ctx.waits, what=f"apply {ref}",  # type: ignore[misc]
              stats=ctx.stats)
        plural, namespaced = ctx.kube.resource_info(ref.api_version, ref.kind)
        ctx.record.put(Entry(ref=ref, sha256=digest, step=step, plural=plural, namespaced=namespaced,
                            component=ctx.component))
        ctx.status.detail(f"applied {ref}")
        written += 1
    return written


def merge_config_maps(ctx: Context, objs: Iterable[Manifest]) -> int:
    """Merge our keys into ConfigMaps an earlier step applied (e.g. Knative's config-*); a key that
    already has our value is not written again. Returns how many ConfigMaps were patched."""
    patched = 0
    for obj in objs:
        ref = ref_of(obj)
        live = ctx.kube.get(ref)
        if live is None:
            raise PermanentError(f"{ref} is missing", resolution="run `sudo hybrid-knative repair`: an earlier step "
                                 "creates it")
        want = obj.get("data") or {}
        have = live.get("data") or {}
        if all(have.get(k) == v for k, v in want.items()):
            ctx.status.detail(f"unchanged {ref}")
            continue
        retry(lambda ref=ref, want=want: ctx.kube.merge_patch(ref, {"data": want}),  # type: ignore[misc]
              policy=ctx.waits, what=f"patch {ref}", stats=ctx.stats)
        ctx.status.detail(f"patched {ref}: {', '.join(want)}")
        patched += 1
    return patched
