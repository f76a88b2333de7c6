"""plan(config) -> ordered steps: pure, the table of contents of an install."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType

from hybrid_knative.config import Config
from hybrid_knative.install.context import Context, RenderContext
from hybrid_knative.install.steps import (
    configure_serving,
    install_kourier,
    install_serving_core,
    install_serving_crds,
    mark_enabled,
)
from hybrid_knative.kube.objects import Manifest, ref_of


@dataclasses.dataclass(frozen=True)
class Step:
    name: str  # verb_object
    title: str
    render: Callable[[RenderContext], list[Manifest]]
    run: Callable[[Context, list[Manifest]], None]
    applies: bool = True  # False: its objects are patches onto objects of earlier steps

    @classmethod
    def of(cls, module: ModuleType, *, applies: bool = True) -> Step:
        return cls(module.NAME, module.TITLE, module.render, module.run, applies)


def plan(config: Config) -> list[Step]:
    """The steps of `enable` for this configuration, in order."""
    return [
        Step.of(install_serving_crds),
        Step.of(install_serving_core),
        Step.of(install_kourier),
        Step.of(configure_serving, applies=False),
        Step.of(mark_enabled),
    ]


@dataclasses.dataclass(frozen=True)
class RenderedStep:
    step: Step
    objects: list[Manifest]


def render_plan(steps: list[Step], rc: RenderContext) -> list[RenderedStep]:
    """Render every step before anything is applied (a bad upstream file stops us before any write).

    An object rendered by an earlier step is dropped from later ones, so each object has one owner.
    """
    seen: set[object] = set()
    rendered = []
    for step in steps:
        objs = step.render(rc)
        if step.applies:
            kept = []
            for obj in objs:
                ref = ref_of(obj)
                if ref not in seen:
                    seen.add(ref)
                    kept.append(obj)
            objs = kept
        rendered.append(RenderedStep(step, objs))
    return rendered
