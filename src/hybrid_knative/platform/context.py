"""The one explicit Context every step receives. Steps read nothing else (no os.environ, no globals)."""

from __future__ import annotations

import dataclasses

from hybrid_knative.catalog import Release
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.wait import WaitPolicy, WaitStats
from hybrid_knative.platform.record import Record
from hybrid_knative.progress import Status
from hybrid_knative.system.gpu import GpuReport
from hybrid_knative.system.http import HostProbes
from hybrid_knative.system.runner import Runner
from hybrid_knative.upstream import UpstreamStore


@dataclasses.dataclass(frozen=True)
class HostFacts:
    """What read-only preflight probes found on this host (inputs to planning, never re-probed by steps).

    Add a field per probe; keep defaults so that `plan` without a host (a dry run) works.
    """

    gpu: GpuReport | None = None
    node_name: str | None = None


@dataclasses.dataclass(frozen=True)
class RenderContext:
    """What rendering needs: pure inputs, no cluster."""

    config: Config
    release: Release
    kube_version: KubeVersion
    store: UpstreamStore
    host: HostFacts = dataclasses.field(default_factory=HostFacts)


@dataclasses.dataclass(frozen=True)
class Context:
    render: RenderContext
    kube: KubeApi
    record: Record
    status: Status
    runner: Runner
    waits: WaitPolicy
    stats: WaitStats = dataclasses.field(default_factory=WaitStats)
    probes: HostProbes = dataclasses.field(default_factory=HostProbes)  # host-side DNS + HTTP (verify)
    component: str = ""  # the component whose step runs (its objects get its label); set by install/run
    step: str = ""  # the step that runs (undo entries and record entries name it)
    writes_before: int = 0  # kube.counters.writes when this enable began (verify: did anything change?)

    @property
    def config(self) -> Config:
        return self.render.config
