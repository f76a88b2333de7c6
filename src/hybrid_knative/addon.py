"""What `enable`, `disable`, `status` and `plan` do — the one code path behind the CLI and the
MicroK8s addon shims (which hand their arguments to the CLI)."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import yaml

from hybrid_knative.airgap.bundle import read_manifest as read_bundle_manifest
from hybrid_knative.airgap.bundle import unpack as unpack_bundle
from hybrid_knative.catalog import Catalog, Release, load_catalog
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.dns import check as dns_check
from hybrid_knative.dns import state as dns_state
from hybrid_knative.errors import ConfigError
from hybrid_knative.install import gpu
from hybrid_knative.install import user_objects as user_objects_mod
from hybrid_knative.install.context import Context, HostFacts, RenderContext
from hybrid_knative.install.gpu import choose_vendor
from hybrid_knative.install.plan import RenderedStep, plan, render_plan
from hybrid_knative.install.record import Record, record_path
from hybrid_knative.install.status import ComponentRow, component_rows, ingress_ip, knative_domain
from hybrid_knative.install.steps import enable_nvidia_addon, verify_smoke_service
from hybrid_knative.install.undo_dns import undo_dns
from hybrid_knative.kube import ready
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.wait import WaitPolicy, WaitStats, retry, wait_all
from hybrid_knative.progress import Status
from hybrid_knative.smoke import smoke_data
from hybrid_knative.system import marker
from hybrid_knative.system.gpu import detect as detect_gpu
from hybrid_knative.system.http import HostProbes
from hybrid_knative.system.runner import Runner
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR, UpstreamStore, http_fetch

PLAN_MARKER = ".hybrid-knative-plan"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a command did, for the CLI to print and for tests/benchmarks to inspect."""

    release: Release | None = None
    written: int = 0
    stats: WaitStats = dataclasses.field(default_factory=WaitStats)
    kube: KubeApi | None = None
    smoke_url: str | None = None  # the verified smoke service's URL (enable with verify)


def _store(config: Config) -> UpstreamStore:
    if config.bundle is not None:  # air-gap: the bundle's verified files first, and never the network
        bundle_dir = unpack_bundle(config.bundle, config.effective_state_dir / "bundles").upstream_dir
        return UpstreamStore(search_dirs=(bundle_dir, *config.upstream_dirs, PACKAGE_VENDOR_DIR),
                             cache_dir=config.effective_state_dir / "upstream-cache", fetch=None)
    return UpstreamStore(
        search_dirs=(*config.upstream_dirs, PACKAGE_VENDOR_DIR),
        cache_dir=config.effective_state_dir / "upstream-cache",
        fetch=None if config.offline else http_fetch,
    )


def _policy(config: Config) -> WaitPolicy:
    return WaitPolicy(timeout=config.wait_timeout, interval=config.poll_interval,
                      max_interval=max(config.poll_interval, min(5.0, config.wait_timeout / 10)))


def connect(config: Config) -> KubeApi:
    return KubeApi.connect(config.effective_kubeconfig, config.context)


def choose_release(catalog: Catalog, version: KubeVersion, config: Config, status: Status) -> Release:
    requested = config.knative
    if requested is None and config.bundle is not None:  # the release line the bundle carries
        lines = read_bundle_manifest(config.bundle).knative
        requested = lines[0] if len(lines) == 1 else None
    release = catalog.choose(version, requested)
    if (version.major, version.minor) > (catalog.max_tested_kubernetes.major, catalog.max_tested_kubernetes.minor):
        status.warn(f"Kubernetes {version.minor_version} is newer than the newest tested "
                    f"({catalog.max_tested_kubernetes.minor_version}); installing Knative {release.line}")
    return release


def render_context(config: Config, version: KubeVersion, status: Status,
                   host: HostFacts | None = None) -> RenderContext:
    release = choose_release(load_catalog(), version, config, status)
    return RenderContext(config=config, release=release, kube_version=version, store=_store(config),
                         host=host or HostFacts())


def render(config: Config, version: KubeVersion, status: Status,
           host: HostFacts | None = None) -> tuple[Release, list[RenderedStep]]:
    rc = render_context(config, version, status, host)
    return rc.release, render_plan(plan(config, rc.host), rc)


def host_facts(config: Config, kube: KubeApi | None, status: Status) -> HostFacts:
    """Read-only probes of this host that decide the plan (today: its GPUs, and which Node it is)."""
    if config.gpu == "none":
        return HostFacts()
    report = detect_gpu(config.host_root)
    status.detail(f"GPU probe: {report.reason}")
    vendor = choose_vendor(config.gpu, report)  # --gpu amd without a usable AMD GPU stops here
    if vendor is None:
        status.info(f"No usable GPU on this node ({report.reason}): nothing GPU-related is installed")
    node = _local_node_name(kube) if kube is not None and vendor == "amd" else socket.gethostname().lower()
    return HostFacts(gpu=report, node_name=node)


def _local_node_name(kube: KubeApi) -> str:
    nodes = [n["metadata"]["name"] for n in kube.list("v1", "Node")]
    if len(nodes) == 1:
        return str(nodes[0])
    hostname = socket.gethostname().lower()
    for candidate in (hostname, hostname.split(".")[0]):
        if candidate in nodes:
            return candidate
    raise ConfigError(f"cannot tell which of the {len(nodes)} nodes is this host ({hostname})",
                      details=f"nodes: {', '.join(sorted(nodes)) or 'none'}",
                      resolution="run enable on a control-plane node whose Node name is its hostname, "
                      "or pass --gpu none and label GPU nodes through `hybrid-knative join`")


def _check_conflicts(kube: KubeApi, record: Record, config: Config) -> None:
    """Refuse to take over a Knative that someone else installed (e.g. the community addon)."""
    if len(record) or config.adopt:
        return
    if kube.get(ObjectRef("v1", "Namespace", None, "knative-serving")) is not None:
        raise ConfigError(
            "Knative Serving is already installed on this cluster, but not by hybrid-knative",
            details="the namespace knative-serving exists and there is no hybrid-knative record of it",
            resolution="remove the other install first (the community addon: `sudo microk8s disable knative`), "
            "or pass --adopt to let hybrid-knative take it over",
        )


def _record(config: Config, kube: KubeApi) -> Record:
    path = record_path(config.effective_state_dir, kube.server, kube.context)
    return Record.load(path, server=kube.server)


def enable(config: Config, status: Status, *, kube: KubeApi | None = None, probes: HostProbes | None = None,
           runner: Runner | None = None) -> Outcome:
    kube = kube or connect(config)
    version = kube.server_version()  # read-only preflight: nothing is written before this passes
    status.detail(f"API server {kube.server} runs Kubernetes {version}")
    rc = render_context(config, version, status, host_facts(config, kube, status))
    release, rendered = rc.release, render_plan(plan(config, rc.host), rc)
    status.info(f"Installing Knative {release.line} (Kubernetes {version.minor_version})")
    record = _record(config, kube)
    _check_conflicts(kube, record, config)
    record.release = release.line
    for r in rendered:  # CRD kinds must be known before their objects can be applied
        kube.register_crds(o for o in r.objects if o["kind"] == "CustomResourceDefinition")
    ctx = Context(render=rc, kube=kube, record=record, status=status, runner=runner or Runner(), waits=_policy(config),
                  probes=probes or HostProbes())
    writes_before = kube.counters.writes
    # hybrid-knative/host: the marker exists from the first change on, as "incomplete" (system/marker.py)
    marker.write(config.effective_marker, marker.INCOMPLETE, release.line)
    for r in rendered:
        with status.step(r.step.title):
            r.step.run(ctx, r.objects)
    return Outcome(release=release, written=kube.counters.writes - writes_before, stats=ctx.stats, kube=kube,
                   smoke_url=verify_smoke_service.smoke_url(kube) if config.verify else None)


def disable(config: Config, status: Status, *, kube: KubeApi | None = None, runner: Runner | None = None,
            user_objects: str | None = None) -> Outcome:
    kube = kube or connect(config)
    record = _record(config, kube)
    # hybrid-knative/host: users' objects of our CRDs — refuse (before any change) unless told destroy/keep
    users = user_objects_mod.check(kube, record, user_objects)
    # hybrid-knative/host: "incomplete" until the teardown is done, so `microk8s disable` can be re-run
    if marker.read(config.effective_marker) is not None:
        marker.write(config.effective_marker, marker.INCOMPLETE, record.release)
    undo_dns(kube, record.path, status, runner=runner or Runner(), policy=_policy(config), stats=WaitStats())
    if not len(record):
        status.info("Nothing recorded for this cluster: nothing to remove")
        marker.remove(config.effective_marker)
        return Outcome(kube=kube)
    policy = _policy(config)
    stats = WaitStats()
    writes_before = kube.counters.writes
    if user_objects == user_objects_mod.DESTROY:  # hybrid-knative/host: before their controllers go
        user_objects_mod.destroy(kube, users, status=status, policy=policy, stats=stats)
    keep = user_objects_mod.kept(record.delete_order(), user_objects)
    entries = [e for e in record.delete_order() if e not in keep]
    if record.undos:
        with status.step(f"Take back {len(record.undos)} changes to objects hybrid-knative does not own"):
            for undo in record.undos:
                kube.register_kind(undo.ref.api_version, undo.ref.kind, undo.plural, namespaced=undo.namespaced)
                if kube.get(undo.ref) is not None:
                    retry(lambda u=undo: kube.merge_patch(u.ref, u.patch), policy=policy,  # type: ignore[misc]
                          what=f"restore {undo.ref} ({undo.key})", stats=stats)
                record.remove_undo(undo.ref, undo.key)
                status.detail(f"restored {undo.ref} ({undo.key})")
    with status.step(f"Remove {len(entries)} objects hybrid-knative created"):
        awaited: list[ObjectRef] = []
        for index, entry in enumerate(entries, start=1):
            kube.register_kind(entry.ref.api_version, entry.ref.kind, entry.plural, namespaced=entry.namespaced)
            status.note(f"deleting {index}/{len(entries)}: {entry.ref}")
            retry(lambda ref=entry.ref: kube.delete(ref), policy=policy, what=f"delete {entry.ref}",  # type: ignore[misc]
                  stats=stats)
            if entry.ref.kind in ("Namespace", "CustomResourceDefinition"):
                awaited.append(entry.ref)
            record.remove(entry.ref)
            status.detail(f"deleted {entry.ref}")
    if awaited:
        with status.step("Wait for namespaces and CRDs to be gone"):
            wait_all({str(ref): ready.gone(kube, ref) for ref in awaited}, policy=policy, stats=stats,
                     on_progress=status.note,
                     resolution="something holds a finalizer; see `microk8s kubectl get ns` and "
                     "`microk8s kubectl get crd | grep knative`")
    nvidia = config.effective_state_dir / enable_nvidia_addon.MARKER
    if nvidia.exists():
        status.info("NVIDIA support came from MicroK8s's nvidia addon and is left enabled (other workloads may "
                    "use it); to remove it too: sudo microk8s disable nvidia")
        nvidia.unlink()
    if keep:
        status.info(f"Kept {len(keep)} CRDs and every object of them (--keep-user-objects); "
                    "`hybrid-knative enable` brings their controllers back")
    with status.step("Mark hybrid-knative disabled"):
        marker.remove(config.effective_marker)  # last: until here `microk8s disable` must still run our script
    return Outcome(written=kube.counters.writes - writes_before, stats=stats, kube=kube)


@dataclasses.dataclass(frozen=True)
class ComponentHealth:
    name: str
    ready: bool
    detail: str


@dataclasses.dataclass(frozen=True)
class Health:
    enabled: bool
    state: str | None  # the marker's: incomplete, unverified, enabled; None without a marker
    release: str | None
    components: list[ComponentHealth]  # one per recorded Deployment
    table: list[ComponentRow] = dataclasses.field(default_factory=list)  # one per component (status table)
    domain: str | None = None
    ingress_ip: str | None = None
    dns: list[dns_check.DnsCheck] = dataclasses.field(default_factory=list)  # hybrid-knative/host

    @property
    def healthy(self) -> bool:
        return (self.state in (marker.ENABLED, marker.UNVERIFIED) and all(c.ready for c in self.components)
                and all(r.ready for r in self.table) and all(d.ok for d in self.dns))


def dns_checks(config: Config, kube: KubeApi, *, lookup: dns_check.Lookup | None = None) -> list[dns_check.DnsCheck]:
    """hybrid-knative/host: the CoreDNS block (local mode) and a service host from this host."""
    record = _record(config, kube)
    domain = knative_domain(kube) if len(record) else None
    if domain is None:
        return []
    current = dns_state.load(dns_state.state_path(record.path))
    checks = [dns_check.corefile_block(kube, domain)] if current.corefile else []
    data = smoke_data()
    host = f"{data.name}-{data.namespace}.{domain}"
    if current.host_mode == "manual":  # nothing on this host can resolve the zone: not a fault
        checks.append(dns_check.DnsCheck("dns-host", True, f"{host} is not resolved on this host (plain "
                                         "resolv.conf: see the lines enable printed, docs/dns.md).",
                                         "host DNS: manual"))
    else:
        checks.append(dns_check.host_resolves(host, lookup or dns_check.system_lookup, ingress_ip(kube),
                                              host_dns=current.host_mode))
    return checks


def health(config: Config, *, kube: KubeApi | None = None, lookup: dns_check.Lookup | None = None) -> Health:
    kube = kube or connect(config)
    kube.server_version()
    record = _record(config, kube)
    comps = []
    for entry in record.entries:
        if entry.ref.kind != "Deployment" or entry.ref.namespace is None:
            continue
        reason = ready.deployment_available(kube, entry.ref.namespace, entry.ref.name)()
        comps.append(ComponentHealth(f"{entry.ref.namespace}/{entry.ref.name}", reason is None, reason or "Available"))
    release = next((r for r in load_catalog().releases if r.line == record.release), None)
    state = marker.read(config.effective_marker)
    return Health(enabled=state is not None, state=state, release=record.release, components=comps,
                  dns=dns_checks(config, kube, lookup=lookup) if len(record) else [],
                  table=component_rows(kube, record, release) if len(record) else [],
                  domain=knative_domain(kube) if len(record) else None,
                  ingress_ip=ingress_ip(kube) if len(record) else None)


def write_plan(config: Config, version: KubeVersion, output: Path,
               status: Status) -> tuple[Release, list[RenderedStep], list[Path]]:
    """The dry run: render every step and write its objects to ``output``; touches no cluster."""
    release, rendered = render(config, version, status, host_facts(config, None, status))
    if output.exists() and any(output.iterdir()) and not (output / PLAN_MARKER).exists():
        raise ConfigError(f"{output} is not empty and was not written by `hybrid-knative plan`",
                          resolution="choose a new or empty folder for --output")
    output.mkdir(parents=True, exist_ok=True)
    for old in output.glob("[0-9][0-9]-*.yaml"):
        old.unlink()
    (output / PLAN_MARKER).write_text(f"knative {release.line} for Kubernetes {version.minor_version}\n")
    written = []
    for index, r in enumerate(rendered, start=1):
        path = output / f"{index:02d}-{r.step.name}.yaml"
        header = f"# step {index}: {r.step.title} ({r.step.name})\n"
        if not r.step.applies:
            header += "# merge patches onto objects applied by earlier steps\n"
        if not r.objects:
            header += "# (no objects: this step acts outside the cluster)\n"
        path.write_text(header + yaml.safe_dump_all(r.objects, sort_keys=False), encoding="utf-8")
        written.append(path)
    written.extend(_write_examples(rendered, output))
    return release, rendered, written


def _write_examples(rendered: list[RenderedStep], output: Path) -> list[Path]:
    """Example workloads for what this plan installs (today: PyTorch on ROCm when AMD GPUs are set up)."""
    examples = output / "examples"
    for old in examples.glob("*.yaml"):
        old.unlink()
    labels = next((r.objects[0]["metadata"] for r in rendered if r.step.name == "label_gpu_nodes"), None)
    if labels is None:
        return []
    gid = (labels.get("annotations") or {}).get(gpu.RENDER_GID_ANNOTATION)
    examples.mkdir(exist_ok=True)
    paths = []
    for kind in ("ksvc", "pod"):
        objs = gpu.render_pytorch(kind=kind, render_gid=int(gid) if gid else None)
        path = examples / f"pytorch-rocm-{kind}.yaml"
        path.write_text("# PyTorch on ROCm: one AMD GPU, memory-backed /dev/shm, seccomp Unconfined, render group\n"
                        + yaml.safe_dump_all(objs, sort_keys=False), encoding="utf-8")
        paths.append(path)
    return paths
