"""plan(config) -> ordered steps: pure, the table of contents of an install."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType

from hybrid_knative.config import Config
from hybrid_knative.install import gpu
from hybrid_knative.install.context import Context, HostFacts, RenderContext
from hybrid_knative.install.profiles import apply_profile
from hybrid_knative.install.steps import (
    configure_cluster_dns,
    configure_domain,
    configure_gpu_features,
    configure_host_dns,
    configure_ingress_address,
    configure_serving,
    create_default_broker,
    enable_nvidia_addon,
    import_images,
    install_eventing_core,
    install_eventing_crds,
    install_in_memory_channel,
    install_kourier,
    install_mt_channel_broker,
    install_rocm_device_plugin,
    install_serving_core,
    install_serving_crds,
    label_gpu_nodes,
    mark_enabled,
    verify_smoke_service,
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


def plan(config: Config, host: HostFacts | None = None) -> list[Step]:
    """The steps of `enable` for this configuration (and what preflight found on the host), in order."""
    return [
        *([Step.of(import_images)] if config.bundle is not None else []),
        Step.of(install_serving_crds),
        Step.of(install_serving_core),
        Step.of(install_kourier),
        Step.of(configure_serving, applies=False),
        Step.of(configure_ingress_address, applies=False),
        Step.of(configure_domain, applies=False),
        Step.of(configure_cluster_dns, applies=False),
        Step.of(configure_host_dns, applies=False),
        *gpu_steps(config, host or HostFacts()),
        *(eventing_steps() if config.eventing else []),
        *([Step.of(verify_smoke_service)] if config.verify else []),
        Step.of(mark_enabled),
    ]


def gpu_steps(config: Config, host: HostFacts) -> list[Step]:
    vendor = gpu.choose_vendor(config.gpu, host.gpu)
    if vendor == "amd":
        return [Step.of(label_gpu_nodes, applies=False), Step.of(install_rocm_device_plugin),
                Step.of(configure_gpu_features, applies=False)]
    if vendor == "nvidia":
        return [Step.of(enable_nvidia_addon)]
    return []


def eventing_steps() -> list[Step]:
    # eventing-post-install.yaml is not applied: its storage-version-migration Job (generateName) only
    # rewrites objects stored under older CRD versions, and a fresh install has none (docs/eventing-and-verify.md)
    return [Step.of(install_eventing_crds), Step.of(install_eventing_core), Step.of(install_in_memory_channel),
            Step.of(install_mt_channel_broker), Step.of(create_default_broker)]


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
        objs = apply_profile(step.render(rc), rc.config.profile)
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
