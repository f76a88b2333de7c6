"""plan(config) -> ordered steps: pure, the table of contents of an install, derived from the registry."""

from __future__ import annotations

import dataclasses

from hybrid_knative import components
from hybrid_knative.config import Config
from hybrid_knative.install.profiles import apply_profile
from hybrid_knative.install.steps import import_images, mark_enabled
from hybrid_knative.kube.objects import Manifest, ref_of
from hybrid_knative.manifests import with_labels
from hybrid_knative.platform.component import Step, platform_labels
from hybrid_knative.platform.context import HostFacts, RenderContext

__all__ = ["RenderedStep", "Step", "plan", "render_plan"]

INSTALLER = "hybrid-knative"  # the component label of the framing steps (bundle import, the marker)


def plan(config: Config, host: HostFacts | None = None) -> list[Step]:
    """The steps of `enable` for this configuration (and what preflight found on the host), in order:
    the bundle's images first (air-gap), then every enabled component's steps, then the marker."""
    host = host or HostFacts()
    first = [Step.of(import_images)] if config.bundle is not None else []
    return [*(dataclasses.replace(s, component=INSTALLER) for s in first),
            *components.plan_steps(config, host),
            dataclasses.replace(Step.of(mark_enabled), component=INSTALLER)]


@dataclasses.dataclass(frozen=True)
class RenderedStep:
    step: Step
    objects: list[Manifest]


def render_plan(steps: list[Step], rc: RenderContext) -> list[RenderedStep]:
    """Render every step before anything is applied (a bad upstream file stops us before any write).

    An object rendered by an earlier step is dropped from later ones, so each object has one owner.
    Objects a step applies carry the platform labels (managed-by, component); patches do not.
    """
    seen: set[object] = set()
    rendered = []
    for step in steps:
        objs = apply_profile(step.render(rc), rc.config.profile)
        if step.applies:
            kept = []
            for obj in objs:
                ref = ref_of(obj)
                if ref not in seen:
                    seen.add(ref)
                    kept.append(with_labels(obj, platform_labels(step.component or INSTALLER)))
            objs = kept
        rendered.append(RenderedStep(step, objs))
    return rendered
