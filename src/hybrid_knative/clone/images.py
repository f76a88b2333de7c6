"""Images: the digest each container actually runs, copied once to the target registry, by digest.

A KService's digest comes from its ready Revision (``status.containerStatuses[].imageDigest``: what
Knative resolved and the nodes pulled), other workloads' from the source registry. Each digest is
copied with ``skopeo copy --all --preserve-digests`` (every platform, no manifest conversion, so the
digest stays the same) unless the target registry already has it; shared layers cross once because
the registry answers "already have it" for blobs it holds.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Callable

from hybrid_knative.clone.transform import images_of
from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.system.image_registry import ImageRegistry, registry_host, split_reference

Key = tuple[str, str, str, str]  # (kind, namespace, name, container key)


@dataclasses.dataclass(frozen=True)
class ImageCopy:
    source: str  # repo@sha256:… on the source registry
    target: str  # registry/path@sha256:… on the target registry
    tag: str  # the tag it is stored under there (keeps it from garbage collection)

    @property
    def digest(self) -> str:
        return self.target.split("@", 1)[1]


@dataclasses.dataclass
class ImageReport:
    copied: list[ImageCopy] = dataclasses.field(default_factory=list)
    present: list[ImageCopy] = dataclasses.field(default_factory=list)
    bytes_copied: int = 0  # unique blob bytes of the copied images


def _path(repository: str) -> str:
    host = registry_host(repository)
    if repository.startswith(host + "/"):
        return repository[len(host) + 1:]
    return repository


def target_reference(source_digest_ref: str, registry: str) -> str:
    repo, _, digest = split_reference(source_digest_ref)
    assert digest is not None
    return f"{registry.rstrip('/')}/{_path(repo)}@{digest}"


def _revision_digests(obj: Manifest, revisions: dict[tuple[str, str], Manifest]) -> dict[str, str]:
    """container name (or ``#index``) → imageDigest of the KService's latest ready Revision."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    name = status.get("latestReadyRevisionName")
    rev = revisions.get((str(meta.get("namespace")), str(name))) if name else None
    found: dict[str, str] = {}
    for index, cs in enumerate(((rev or {}).get("status") or {}).get("containerStatuses") or []):
        if isinstance(cs, dict) and cs.get("imageDigest"):
            found[f"#{index}"] = str(cs["imageDigest"])
            if cs.get("name"):
                found[str(cs["name"])] = str(cs["imageDigest"])
    return found


def resolve(objs: list[Manifest], revisions: dict[tuple[str, str], Manifest],
            lookup: Callable[[str], str | None]) -> dict[Key, str]:
    """Key → ``repo@sha256:…`` on the source, for every container of every object."""
    digests: dict[Key, str] = {}
    for obj in objs:
        meta = obj.get("metadata") or {}
        kind, ns, name = str(obj.get("kind")), str(meta.get("namespace")), str(meta.get("name"))
        running = _revision_digests(obj, revisions) if kind == "Service" else {}
        for index, (key, image, cname) in enumerate(images_of(obj)):
            repo, _, digest = split_reference(image)
            if digest:
                digests[(kind, ns, name, key)] = f"{repo}@{digest}"
                continue
            ran = running.get(cname) or running.get(f"#{index}")
            if ran:
                run_repo, _, run_digest = split_reference(ran)
                digests[(kind, ns, name, key)] = f"{run_repo}@{run_digest}"
                continue
            found = lookup(image)
            if found is None:
                raise PermanentError(f"{kind} {ns}/{name}: image {image} is not in its registry",
                                     resolution="push the image again (or fix the reference), then re-run clone")
            digests[(kind, ns, name, key)] = f"{repo}@{found}"
    return digests


def plan_copies(digests: dict[Key, str], registry: str, tags: dict[str, str]) -> dict[str, ImageCopy]:
    """source digest ref → its copy (one per digest, whatever number of containers use it)."""
    copies: dict[str, ImageCopy] = {}
    for source in sorted(set(digests.values())):
        target = target_reference(source, registry)
        digest = source.split("@", 1)[1]
        tag = tags.get(source) or f"clone-{digest.split(':', 1)[1][:12]}"
        copies[source] = ImageCopy(source, target, tag)
    return copies


def source_tags(objs: list[Manifest], digests: dict[Key, str]) -> dict[str, str]:
    """source digest ref → the tag the user deployed it as (kept on the target, for humans)."""
    tags: dict[str, str] = {}
    for obj in objs:
        meta = obj.get("metadata") or {}
        for key, image, _ in images_of(obj):
            ref = digests.get((str(obj.get("kind")), str(meta.get("namespace")), str(meta.get("name")), key))
            _, tag, _ = split_reference(image)
            if ref and tag:
                tags.setdefault(ref, tag)
    return tags


def copy_all(copies: dict[str, ImageCopy], skopeo: ImageRegistry, *, dry_run: bool,
             on_progress: Callable[[str], None]) -> ImageReport:
    """Copy what the target lacks. The registry reads (is it there? which blobs, how big?) run on one worker
    thread ahead of the copies, so they overlap the skopeo processes instead of adding to them."""
    report = ImageReport()
    seen_blobs: set[str] = set()
    items = list(copies.values())

    def look(item: ImageCopy) -> dict[str, int] | None:
        """None: already in the target registry; else the blobs the copy moves."""
        if skopeo.manifest(item.target) is not None:
            return None
        return skopeo.blob_sizes(item.source)

    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="clone-images") as pool:
        ahead = [pool.submit(look, item) for item in items]  # one worker: in order, one session, no burst
        try:
            for index, (item, future) in enumerate(zip(items, ahead, strict=True), start=1):
                sizes = future.result()
                if sizes is None:
                    report.present.append(item)
                    continue
                report.copied.append(item)
                report.bytes_copied += sum(size for digest, size in sizes.items() if digest not in seen_blobs)
                seen_blobs.update(sizes)
                if dry_run:
                    continue
                on_progress(f"copying {index}/{len(copies)}: {item.source}")
                repo, _, _ = split_reference(item.target)
                skopeo.copy(item.source, f"{repo}:{item.tag}")  # --preserve-digests: skopeo fails rather than convert
        finally:
            for future in ahead:
                future.cancel()
    return report


def pins(digests: dict[Key, str], copies: dict[str, ImageCopy]) -> dict[Key, str]:
    return {key: copies[source].target for key, source in digests.items()}
