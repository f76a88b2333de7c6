"""What an air-gap bundle must carry, from the registry: the images of every object the plan renders,
the images components list (MicroK8s's own), ``--with`` components' images, and the upstream files."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from hybrid_knative import components
from hybrid_knative.catalog import Catalog, Release, UpstreamFile, load_catalog
from hybrid_knative.config import Config
from hybrid_knative.errors import ConfigError, PermanentError
from hybrid_knative.install.plan import plan, render_plan
from hybrid_knative.install.preflight import render_context
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.manifests.images import ImageRef, images_in, parse_image_list, read_image_list, unlisted
from hybrid_knative.platform.component import Component
from hybrid_knative.platform.context import HostFacts, RenderContext
from hybrid_knative.progress import Status
from hybrid_knative.upstream import UpstreamStore


def bundle_options() -> dict[str, Component]:
    """``bundle create --with NAME`` → the component it adds (declared by ``bundle_option``)."""
    return {c.bundle_option: c for c in components.all_components() if c.bundle_option}


@dataclasses.dataclass(frozen=True)
class BundleContents:
    """What `bundle create` puts in a bundle: the images to pull and the pinned upstream files."""

    release: Release
    images: tuple[ImageRef, ...]  # sorted, de-duplicated
    files: tuple[UpstreamFile, ...]
    components: dict[str, str]  # upstream component -> version (recorded in bundle.json)
    only_on: dict[ImageRef, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # arch-pinned images


def derive_images(config: Config, status: Status, *, store: UpstreamStore | None = None
                  ) -> tuple[list[ImageRef], Release, RenderContext]:
    """Every image the rendered objects of ``config`` reference (all steps), checked complete."""
    catalog = load_catalog()
    rc = render_context(config, catalog.max_tested_kubernetes, status)
    if store is not None:
        rc = dataclasses.replace(rc, store=store)
    rendered = render_plan(plan(config, rc.host), rc)
    objs = [o for r in rendered for o in r.objects]
    extra = [i for c in components.enabled_components(config, rc.host) if c.bundle_images
             for i in c.bundle_images(rc)]
    found = sorted({*images_in(objs), *parse_image_list("\n".join(extra), source="components")}, key=str)
    missing = unlisted(objs, found)
    if missing:  # cannot happen unless images_in and unlisted disagree; never ship an incomplete bundle
        raise PermanentError("the image list misses images the rendered objects use",
                             details="\n".join(f"{w}: {i}" for w, i in missing))
    return found, rc.release, rc


def component_objects(component: Component, rc: RenderContext) -> list[Manifest]:
    """The objects of a component's steps, as `enable` would render them (for a component not enabled)."""
    return [o for step in component.steps_for(rc.config, HostFacts()) for o in step.render(rc)]


def arch_pinned(objs: Sequence[Manifest]) -> dict[ImageRef, tuple[str, ...]]:
    """Images of pods that a ``kubernetes.io/arch`` node selector keeps on one architecture."""
    out: dict[ImageRef, tuple[str, ...]] = {}
    for obj in objs:
        pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        arch = (pod.get("nodeSelector") or {}).get("kubernetes.io/arch")
        if isinstance(arch, str):
            out.update({image: (arch,) for image in images_in([obj])})
    return out


def _upstream_files(catalog: Catalog, release: Release, comps: Sequence[Component]) -> list[UpstreamFile]:
    out = [f for comp in release.components.values() for f in comp.files.values()]
    extras = {c.component for c in catalog.extras}
    for c in comps:
        if c.catalog_name in extras:
            out.extend(catalog.extra_component(c.catalog_name).files.values())
    return out


def bundle_contents(config: Config, extras: Sequence[str] = (), *, store: UpstreamStore, status: Status,
                    images_from: Path | None = None) -> BundleContents:
    """The image list (derived from the rendered objects + components' own lists + ``--with`` extras, or
    exactly ``images_from``) and the upstream files of ``config``'s release and those components."""
    options = bundle_options()
    unknown = [name for name in extras if name not in options]
    if unknown:
        raise ConfigError(f"unknown --with {unknown[0]!r}", resolution=f"choose from {', '.join(sorted(options))}")
    if images_from is not None and not images_from.is_file():
        raise ConfigError(f"image list not found: {str(images_from)[:200]}",
                          resolution="pass --images-from with an existing file")
    listed_images = read_image_list(images_from) if images_from is not None else None  # bad input fails early
    catalog = load_catalog()
    names = list(dict.fromkeys(extras))
    for name in list(names):  # an option implies others (ml-rocm → ml)
        names += [r for r in options[name].bundle_requires if r not in names]
    chosen = [options[name] for name in names]
    always = [c for c in components.all_components() if c.bundle_always and c not in chosen]
    derived, release, rc = derive_images(config, status, store=store)
    rc = dataclasses.replace(rc, kube_version=release.min_kubernetes)
    if images_from is not None:
        wanted = listed_images or []
        only_on = {}
    else:
        own_text = "\n".join(i for c in always if c.bundle_images for i in c.bundle_images(rc))
        own = parse_image_list(own_text, source="components")
        objs = [o for c in chosen for o in component_objects(c, rc)]
        listed = [i for c in chosen if c.bundle_images for i in c.bundle_images(rc)]
        added = {*images_in(objs), *parse_image_list("\n".join(listed), source="components")}
        wanted = sorted({*derived, *own, *added}, key=str)  # key: tag or digest may be None
        pinned = arch_pinned(objs)
        for c in chosen:
            if c.bundle_images and c.bundle_arches:
                pinned.update({i: c.bundle_arches for i in parse_image_list("\n".join(c.bundle_images(rc)),
                                                                            source=c.name)})
        only_on = {image: arches for image, arches in pinned.items() if image not in {*derived, *own}}
    files = _upstream_files(catalog, release, [*always, *chosen])
    versions = {name: c.version for name, c in release.components.items()}
    extra_names = {c.component for c in catalog.extras}
    versions.update({c.catalog_name: catalog.extra_component(c.catalog_name).version
                     for c in (*always, *chosen) if c.catalog_name in extra_names})
    return BundleContents(release=release, images=tuple(wanted), files=tuple(files), components=versions,
                          only_on=only_on)
