"""Kubeflow Training Operator v1.9.4 standalone (PyTorchJob…) for `--with ml`, webhook certificate from our PKI."""

from __future__ import annotations

from hybrid_knative.components.training_operator import install_training_operator, install_training_operator_crds
from hybrid_knative.config import Config
from hybrid_knative.platform.component import Component, NamespaceCheck, Step, WebhookCheck
from hybrid_knative.platform.context import HostFacts


def enabled(config: Config, host: HostFacts) -> bool:
    return config.has("ml")


COMPONENT = Component(
    name="training-operator",
    title="Kubeflow Training Operator",
    steps=(Step.of(install_training_operator_crds), Step.of(install_training_operator)),
    enabled=enabled,
    after=("kserve",),
    namespaces=(NamespaceCheck("kubeflow", "Training Operator", required=False),),
    webhooks=(WebhookCheck("kubeflow", "training-operator"),),
)
