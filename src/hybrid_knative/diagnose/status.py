"""The per-component health table of `status`: Ready or not, version, and what the platform serves."""

from __future__ import annotations

import dataclasses

from hybrid_knative import components
from hybrid_knative.catalog import Release, load_catalog
from hybrid_knative.config import ClusterTarget
from hybrid_knative.diagnose import dns_check
from hybrid_knative.dns import ingress
from hybrid_knative.errors import HybridError
from hybrid_knative.kube import ready
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.knative import knative_ready
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.platform.record import CorefileBlock, HostFile, Record, load_record
from hybrid_knative.smoke import smoke_data
from hybrid_knative.system import marker
from hybrid_knative.system.network import hostname


@dataclasses.dataclass(frozen=True)
class ComponentRow:
    name: str
    ready: bool
    version: str
    detail: str


def component_rows(kube: KubeApi, record: Record, release: Release | None) -> list[ComponentRow]:
    """One row per component with recorded Deployments (all Available?), then one per recorded object a
    component lists in ``status_objects`` (its Ready condition and URL) — all from the registry."""
    known = {c.name: c for c in components.all_components()}
    deployments: dict[str, list[ObjectRef]] = {}
    rows: list[ComponentRow] = []
    for entry in record.entries:
        comp = entry.component or _component_of_step(entry.step)
        if comp in known and entry.ref.kind == "Deployment":
            deployments.setdefault(comp, []).append(entry.ref)
    for comp, refs in deployments.items():
        bad = []
        for ref in refs:
            reason = ready.deployment_available(kube, ref.namespace or "", ref.name)()
            if reason is not None:
                bad.append(f"{ref.name}: {reason}")
        upstream = known[comp].catalog_name
        version = release.components[upstream].version if release is not None and upstream in release.components \
            else "-"
        detail = f"{len(refs) - len(bad)}/{len(refs)} Deployments Available" + (f" ({'; '.join(bad)})" if bad else "")
        rows.append(ComponentRow(comp, not bad, version, detail))
    for entry in record.entries:
        component = known.get(entry.component or _component_of_step(entry.step))
        label = next((s.label for s in component.status_objects if s.kind == entry.ref.kind), None) \
            if component is not None else None
        if label is None:
            continue
        kube.register_kind(entry.ref.api_version, entry.ref.kind, entry.plural, namespaced=entry.namespaced)
        reason = knative_ready(kube, entry.ref)()
        obj = kube.get(entry.ref) if reason is None else None
        url = str(((obj or {}).get("status") or {}).get("url") or "")
        rows.append(ComponentRow(f"{label} {entry.ref.namespace}/{entry.ref.name}", reason is None, "-",
                                 reason or (url or "Ready")))
    return rows


def _component_of_step(step: str) -> str:
    """Records written before entries named their component: the component that declares the step."""
    for component in components.all_components():
        if not callable(component.steps) and any(s.name == step for s in component.steps):
            return component.name
    return ""


def knative_domain(kube: KubeApi) -> str | None:
    cm = kube.get(ObjectRef("v1", "ConfigMap", "knative-serving", "config-domain"))
    domains = [k for k in ((cm or {}).get("data") or {}) if k != "_example"]
    return domains[0] if domains else None


def ingress_ip(kube: KubeApi) -> str | None:
    try:
        return ingress.current(kube)
    except HybridError:
        return None


@dataclasses.dataclass(frozen=True)
class ComponentHealth:
    name: str
    ready: bool
    detail: str


@dataclasses.dataclass(frozen=True)
class Health:
    enabled: bool  # the marker exists (MicroK8s shows the addon enabled)
    release: str | None
    components: list[ComponentHealth]  # one per recorded Deployment
    table: list[ComponentRow] = dataclasses.field(default_factory=list)  # one per component (status table)
    domain: str | None = None
    ingress_ip: str | None = None
    state: str | None = None  # the marker's: incomplete, unverified, enabled; None without a marker
    dns: list[dns_check.DnsCheck] = dataclasses.field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return (self.state in (marker.ENABLED, marker.UNVERIFIED) and all(c.ready for c in self.components)
                and all(r.ready for r in self.table) and all(d.ok for d in self.dns))


def host_dns_mode(record: Record) -> str | None:
    """How this host resolves the zone, from the record's undo entries: the host file's mode (resolved,
    nm-dnsmasq), ``manual`` in local mode without one (plain resolv.conf: nothing was changed), None
    outside local mode (no CoreDNS block)."""
    if not any(isinstance(u.action, CorefileBlock) for u in record.undos):
        return None
    here = hostname()
    for u in record.undos:
        if isinstance(u.action, HostFile) and u.action.host == here:
            return u.action.mode
    return "manual"


def dns_checks(config: ClusterTarget, kube: KubeApi, *, lookup: dns_check.Lookup | None = None,
               record: Record | None = None) -> list[dns_check.DnsCheck]:
    """The CoreDNS block (local mode) and a service host from this host."""
    record = record if record is not None else load_record(config, kube)
    domain = knative_domain(kube) if len(record) else None
    if domain is None:
        return []
    mode = host_dns_mode(record)
    checks = [dns_check.corefile_block(kube, domain)] if mode is not None else []
    data = smoke_data()
    host = f"{data.name}-{data.namespace}.{domain}"
    if mode == "manual":  # nothing on this host can resolve the zone: not a fault
        checks.append(dns_check.DnsCheck("dns-host", True, f"{host} is not resolved on this host (plain "
                                         "resolv.conf: see the lines enable printed, docs/dns.md).",
                                         "host DNS: manual", info=True))
    else:
        checks.append(dns_check.host_resolves(host, lookup or dns_check.system_lookup, ingress_ip(kube),
                                              host_dns=mode))
    return checks


def health(config: ClusterTarget, *, kube: KubeApi | None = None, lookup: dns_check.Lookup | None = None) -> Health:
    kube = kube or KubeApi.connect(config.effective_kubeconfig, config.context)
    kube.server_version()
    record = load_record(config, kube)
    comps = []
    for entry in record.entries:
        if entry.ref.kind != "Deployment" or entry.ref.namespace is None:
            continue
        reason = ready.deployment_available(kube, entry.ref.namespace, entry.ref.name)()
        comps.append(ComponentHealth(f"{entry.ref.namespace}/{entry.ref.name}", reason is None, reason or "Available"))
    release = next((r for r in load_catalog().releases if r.line == record.release), None)
    state = marker.read(config.effective_marker)
    return Health(enabled=state is not None, state=state, release=record.release, components=comps,
                  dns=dns_checks(config, kube, lookup=lookup, record=record) if len(record) else [],
                  table=component_rows(kube, record, release) if len(record) else [],
                  domain=knative_domain(kube) if len(record) else None,
                  ingress_ip=ingress_ip(kube) if len(record) else None)
