"""The per-component health table of `status`: Ready or not, version, and what the platform serves."""

from __future__ import annotations

import dataclasses

from hybrid_knative.catalog import Release
from hybrid_knative.dns import ingress
from hybrid_knative.errors import HybridError
from hybrid_knative.install.record import Record
from hybrid_knative.kube import ready
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.knative import knative_ready
from hybrid_knative.kube.objects import ObjectRef

# which step's objects belong to which catalog component
COMPONENT_OF_STEP = {
    "install_serving_crds": "knative-serving", "install_serving_core": "knative-serving",
    "install_kourier": "net-kourier",
    "install_eventing_crds": "knative-eventing", "install_eventing_core": "knative-eventing",
    "install_in_memory_channel": "knative-eventing", "install_mt_channel_broker": "knative-eventing",
}
CUSTOM_ROWS = {("Broker", "create_default_broker"): "broker", ("Service", "verify_smoke_service"): "smoke service"}


@dataclasses.dataclass(frozen=True)
class ComponentRow:
    name: str
    ready: bool
    version: str
    detail: str


def component_rows(kube: KubeApi, record: Record, release: Release | None) -> list[ComponentRow]:
    deployments: dict[str, list[ObjectRef]] = {}
    rows: list[ComponentRow] = []
    for entry in record.entries:
        comp = COMPONENT_OF_STEP.get(entry.step)
        if comp is not None and entry.ref.kind == "Deployment":
            deployments.setdefault(comp, []).append(entry.ref)
    for comp, refs in deployments.items():
        bad = []
        for ref in refs:
            reason = ready.deployment_available(kube, ref.namespace or "", ref.name)()
            if reason is not None:
                bad.append(f"{ref.name}: {reason}")
        version = release.components[comp].version if release is not None and comp in release.components else "-"
        detail = f"{len(refs) - len(bad)}/{len(refs)} Deployments Available" + (f" ({'; '.join(bad)})" if bad else "")
        rows.append(ComponentRow(comp, not bad, version, detail))
    for entry in record.entries:
        label = CUSTOM_ROWS.get((entry.ref.kind, entry.step))
        if label is None:
            continue
        kube.register_kind(entry.ref.api_version, entry.ref.kind, entry.plural, namespaced=entry.namespaced)
        reason = knative_ready(kube, entry.ref)()
        obj = kube.get(entry.ref) if reason is None else None
        url = str(((obj or {}).get("status") or {}).get("url") or "")
        rows.append(ComponentRow(f"{label} {entry.ref.namespace}/{entry.ref.name}", reason is None, "-",
                                 reason or (url or "Ready")))
    return rows


def knative_domain(kube: KubeApi) -> str | None:
    cm = kube.get(ObjectRef("v1", "ConfigMap", "knative-serving", "config-domain"))
    domains = [k for k in ((cm or {}).get("data") or {}) if k != "_example"]
    return domains[0] if domains else None


def ingress_ip(kube: KubeApi) -> str | None:
    try:
        return ingress.current(kube)
    except HybridError:
        return None
