"""KServe v0.20 in Knative mode on Kourier (`--with ml`): CRDs, controller with our webhook PKI, the
Knative features it needs, the CPU runtimes (and the ROCm ones on AMD GPU hosts). See docs/ml.md."""

from __future__ import annotations

from hybrid_knative.components.kserve import (
    configure_kserve_features,
    install_kserve,
    install_kserve_crds,
    install_kserve_runtimes,
)
from hybrid_knative.config import Config
from hybrid_knative.ml import images
from hybrid_knative.platform.component import Component, NamespaceCheck, Step, WebhookCheck
from hybrid_knative.platform.context import HostFacts


def enabled(config: Config, host: HostFacts) -> bool:
    return config.has("ml")


COMPONENT = Component(
    name="kserve",
    title="KServe (model serving)",
    steps=(Step.of(install_kserve_crds), Step.of(install_kserve), Step.of(configure_kserve_features, applies=False),
           Step.of(install_kserve_runtimes)),
    enabled=enabled,
    after=("knative-serving", "net-kourier", "gpu-amd"),
    namespaces=(NamespaceCheck("kserve", "KServe", required=False),),
    webhooks=(WebhookCheck("kserve", "kserve-webhook-server-service"),),
    bundle_images=lambda rc: images.ml_images(rc.store),
    bundle_option="ml",
)
