"""The smoke test: a Knative Service that must answer from this host and from a pod, last of all."""

from __future__ import annotations

from hybrid_knative.components.smoke import verify_smoke_service
from hybrid_knative.config import Config
from hybrid_knative.platform.component import LAST, Component, StatusObject, Step
from hybrid_knative.platform.context import HostFacts


def enabled(config: Config, host: HostFacts) -> bool:
    return config.verify


COMPONENT = Component(
    name="smoke",
    title="Smoke test",
    steps=(Step.of(verify_smoke_service),),
    enabled=enabled,
    after=(LAST,),
    status_objects=(StatusObject("Service", "smoke service"),),
)
