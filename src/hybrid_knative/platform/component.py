"""The declaration of a component: what `plan`, `enable`, `status`, `doctor` and `bundle create` need
to know about it. One ``COMPONENT = Component(...)`` in ``components/<folder>/__init__.py``, beside its
step modules, its ``component.yaml`` (pinned upstream files) and its ``templates/``. See
docs/adding-a-component.md for a worked example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Protocol

from hybrid_knative.config import Config
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.platform.context import Context, HostFacts, RenderContext
from hybrid_knative.platform.preview import Change

LAST = "*"  # in ``after``: run after every component that does not itself say "*" (e.g. the smoke test)

MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "hybrid-knative"
COMPONENT_LABEL = "hybrid-knative.dev/component"


def platform_labels(component: str) -> dict[str, str]:
    """The labels every object `enable` applies carries (agreed across the project)."""
    return {MANAGED_BY: MANAGER, COMPONENT_LABEL: component}


class StepModule(Protocol):
    """What a step module (``verb_object.py``) provides."""

    NAME: str
    TITLE: str

    def render(self, rc: RenderContext) -> list[Manifest]: ...

    def run(self, ctx: Context, objs: list[Manifest]) -> None: ...


# A step module may also define ``preview(rc, kube) -> list[Change]`` (platform/preview.py): patches to
# objects it does not own, host files with their content, commands — whatever `plan` must show.


@dataclasses.dataclass(frozen=True)
class Step:
    """One install step: ``render`` is pure (plan shows its objects), ``run`` acts through the Context."""

    name: str  # verb_object, unique across components
    title: str
    render: Callable[[RenderContext], list[Manifest]]
    run: Callable[[Context, list[Manifest]], None]
    applies: bool = True  # False: its objects are patches onto objects it does not own (shown, never recorded)
    component: str = ""  # filled in by the registry
    # optional: what `plan` shows besides the rendered objects (host files, commands, live patches)
    preview: Callable[[RenderContext, KubeApi | None], list[Change]] | None = None

    @classmethod
    def of(cls, module: ModuleType | StepModule, *, applies: bool = True) -> Step:
        return cls(module.NAME, module.TITLE, module.render, module.run, applies,
                   preview=getattr(module, "preview", None))


@dataclasses.dataclass(frozen=True)
class NamespaceCheck:
    """`doctor`: every Deployment in ``namespace`` must be Available; with ``required``, an empty
    namespace is reported as "not installed"."""

    namespace: str
    title: str
    required: bool = True


@dataclasses.dataclass(frozen=True)
class WebhookCheck:
    """`doctor`: the admission webhook Service must have a ready endpoint (skipped when absent)."""

    namespace: str
    service: str


@dataclasses.dataclass(frozen=True)
class StatusObject:
    """`status`: one row per recorded object of ``kind`` (Knative's Ready condition), named
    ``"<label> <namespace>/<name>"`` and showing its URL."""

    kind: str
    label: str


def always(config: Config, host: HostFacts) -> bool:
    return True


StepsFn = Callable[[Config, HostFacts], Sequence[Step]]


@dataclasses.dataclass(frozen=True)
class Component:
    """A component, declared once.

    - ``name``: the component label value (``hybrid-knative.dev/component``) and its `status` row.
    - ``enabled(config, host)``: whether `enable` installs it for this Config and host facts.
    - ``steps``: its steps in order (or a function of Config and host facts choosing them).
    - ``after``: names of components whose steps must come first when they are enabled (``"*"``: last).
    - ``needs``: the components it really depends on (default: ``after``). `enable` installs components
      that need nothing of each other side by side (install/run.py); ``after`` still fixes the order of
      `plan` and of ``enable --no-overlap``.
    - ``upstream``: the name in its ``component.yaml`` when it differs from ``name`` (status shows the
      version the chosen Knative release pins; bundles carry its files).
    - ``namespaces``, ``webhooks``: what `doctor` checks without a service named.
    - ``status_objects``: extra `status` rows for recorded objects with a Ready condition.
    - ``bundle_images``: images a bundle carries beyond those its rendered objects reference.
    - ``bundle_option``: `bundle create --with NAME` adds a component that is not enabled by default.
    - ``bundle_always``: a bundle always carries its upstream files and ``bundle_images`` (MicroK8s's own).
    - ``bundle_requires``: other bundle options its ``bundle_option`` implies (``ml-rocm`` → ``ml``).
    - ``bundle_arches``: the only architectures its ``bundle_images`` exist for (None: every ``--arch``).
    """

    name: str
    title: str
    steps: Sequence[Step] | StepsFn = ()
    enabled: Callable[[Config, HostFacts], bool] = always
    after: tuple[str, ...] = ()
    needs: tuple[str, ...] | None = None
    upstream: str | None = None
    namespaces: tuple[NamespaceCheck, ...] = ()
    webhooks: tuple[WebhookCheck, ...] = ()
    status_objects: tuple[StatusObject, ...] = ()
    bundle_images: Callable[[RenderContext], Sequence[str]] | None = None
    bundle_option: str | None = None
    bundle_always: bool = False
    bundle_requires: tuple[str, ...] = ()
    bundle_arches: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or not self.name.replace("-", "").isalnum():
            raise ValueError(f"component name {self.name!r}: lower-case letters, digits and '-' only")

    @property
    def dependencies(self) -> tuple[str, ...]:
        """What it must come after in any order `enable` may choose: ``needs``, else ``after`` (without "*")."""
        return tuple(n for n in (self.after if self.needs is None else self.needs) if n != LAST)

    @property
    def catalog_name(self) -> str:
        """The name in its ``component.yaml`` (the upstream file set, e.g. ``knative-serving``)."""
        return self.upstream or self.name

    def steps_for(self, config: Config, host: HostFacts) -> list[Step]:
        """Its steps for this Config and host, each tagged with the component's name."""
        chosen = self.steps(config, host) if callable(self.steps) else self.steps
        return [dataclasses.replace(s, component=self.name) for s in chosen]
