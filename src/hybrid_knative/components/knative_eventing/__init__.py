"""Knative Eventing: CRDs, core, the in-memory channel, the MT channel-based Broker and a default Broker.

eventing-post-install.yaml is not applied: its storage-version-migration Job only rewrites objects
stored under older CRD versions, and a fresh install has none (docs/eventing-and-verify.md).
"""

from __future__ import annotations

from hybrid_knative.components.knative_eventing import (
    create_default_broker,
    install_eventing_core,
    install_eventing_crds,
    install_in_memory_channel,
    install_mt_channel_broker,
)
from hybrid_knative.config import Config
from hybrid_knative.platform.component import Component, NamespaceCheck, StatusObject, Step, WebhookCheck
from hybrid_knative.platform.context import HostFacts


def enabled(config: Config, host: HostFacts) -> bool:
    return config.eventing


COMPONENT = Component(
    name="knative-eventing",
    title="Knative Eventing",
    steps=(Step.of(install_eventing_crds), Step.of(install_eventing_core), Step.of(install_in_memory_channel),
           Step.of(install_mt_channel_broker), Step.of(create_default_broker)),
    enabled=enabled,
    after=("dns",),  # the order of `plan` and of `enable --no-overlap`
    needs=(),  # its steps need only the CRDs of its own files: `enable` installs it beside Serving
    namespaces=(NamespaceCheck("knative-eventing", "Knative Eventing", required=False),),
    webhooks=(WebhookCheck("knative-eventing", "eventing-webhook"),),
    status_objects=(StatusObject("Broker", "broker"),),
)
