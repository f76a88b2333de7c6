"""Knative Serving: CRDs, then the core (controller, activator, autoscaler, webhook)."""

from __future__ import annotations

from hybrid_knative.components.knative_serving import install_serving_core, install_serving_crds
from hybrid_knative.platform.component import Component, NamespaceCheck, Step, WebhookCheck

COMPONENT = Component(
    name="knative-serving",
    title="Knative Serving",
    steps=(Step.of(install_serving_crds), Step.of(install_serving_core)),
    namespaces=(NamespaceCheck("knative-serving", "Knative Serving"),),
    webhooks=(WebhookCheck("knative-serving", "webhook"),),
)
