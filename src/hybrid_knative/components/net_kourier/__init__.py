"""Kourier, Knative's networking layer: the gateway, Serving configured for it, a reachable address."""

from __future__ import annotations

from hybrid_knative.components.net_kourier import configure_ingress_address, configure_serving, install_kourier
from hybrid_knative.platform.component import Component, NamespaceCheck, Step

COMPONENT = Component(
    name="net-kourier",
    title="Kourier",
    steps=(Step.of(install_kourier), Step.of(configure_serving, applies=False),
           Step.of(configure_ingress_address, applies=False)),
    after=("knative-serving",),
    namespaces=(NamespaceCheck("kourier-system", "Kourier gateway"),),
)
