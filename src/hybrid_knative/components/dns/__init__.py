"""Names that resolve: Knative's domain, the local zone in CoreDNS and split DNS on this host."""

from __future__ import annotations

from hybrid_knative.components.dns import configure_cluster_dns, configure_domain, configure_host_dns
from hybrid_knative.platform.component import Component, Step

COMPONENT = Component(
    name="dns",
    title="Service DNS",
    steps=(Step.of(configure_domain, applies=False), Step.of(configure_cluster_dns, applies=False),
           Step.of(configure_host_dns, applies=False)),
    after=("net-kourier",),
)
