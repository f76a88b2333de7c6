"""`clone --to CONTEXT`: copy the user's Knative objects and their images to another cluster.

Read-only first (both clusters, the registries), then images, then the target's platform when it has
no Knative, then objects in dependency order, then an HTTP request to every cloned service. Nothing is
ever written to the source. The Knative install itself is injected (``Installer``): clone is a use
case and does not import the install engine (layering); the CLI hands it ``addon.enable``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybrid_knative.clone import apply as applying
from hybrid_knative.clone import images as imaging
from hybrid_knative.clone import select as selecting
from hybrid_knative.clone import transform as transforming
from hybrid_knative.clone import verify as verifying
from hybrid_knative.config import KubeVersion
from hybrid_knative.errors import ConfigError, PermanentError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest, ObjectRef
from hybrid_knative.kube.wait import WaitPolicy, WaitStats
from hybrid_knative.options import DomainMode
from hybrid_knative.progress import Status
from hybrid_knative.system.http import HostProbes
from hybrid_knative.system.image_registry import ImageRegistry, registry_host

SERVING_CRD = "services.serving.knative.dev"
CONFIG_DOMAIN = ObjectRef("v1", "ConfigMap", "knative-serving", "config-domain")
_REGISTRY = re.compile(r"^[a-z0-9.-]+(:[0-9]{1,5})?(/[a-z0-9._/-]+)?$")
_SUFFIX = re.compile(r"[^a-z0-9-]+")
_MODEL_URI = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s]+$")

# (target API, options, status) -> the Knative release line it installed there
Installer = Callable[[KubeApi, "CloneOptions", Status], str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CloneOptions:
    registry: str | None = None  # where the target's nodes pull from, e.g. europe-docker.pkg.dev/acme/fns
    registry_authfile: Path | None = None
    domain: str | None = None  # the target's Knative domain (default: what the target has)
    domain_mode: DomainMode = "custom"  # custom | magic, for a Knative install on the target
    namespaces: tuple[str, ...] = ()
    selector: dict[str, str] = dataclasses.field(default_factory=dict)
    secrets: str = "skip"
    dry_run: bool = False
    install: bool = True
    overwrite: bool = False
    verify: bool = True
    cluster_suffix: str | None = None  # Kafka consumer groups; default: the target's context name
    include_bridges: bool = False  # ROS 2 bridges too (a target with robots); default: left out, named
    model_uris: tuple[tuple[str, str], ...] = ()  # InferenceService storageUri rewrites, (from prefix, to prefix)
    model_service_account: str | None = None  # replaces hk-model-store on models moved off the local store
    skip_local_models: bool = False  # leave out InferenceServices whose model only the local cluster can read
    wait_timeout: float = 600.0
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        from hybrid_knative.dns.names import validate_domain

        if self.registry is not None:
            reg = self.registry.strip().rstrip("/")
            if not _REGISTRY.match(reg) or "//" in reg:
                raise ConfigError(f"--registry {self.registry!r} is not a registry path",
                                  resolution="use HOST[:PORT][/PATH], e.g. europe-docker.pkg.dev/acme/fns")
            object.__setattr__(self, "registry", reg)
        if self.registry_authfile is not None and not self.registry_authfile.is_file():
            raise ConfigError(f"--registry-authfile {self.registry_authfile} not found",
                              resolution="write one with `skopeo login --authfile FILE HOST` "
                              "(see docs/hybrid-cloud.md)")
        if self.domain is not None:
            object.__setattr__(self, "domain", validate_domain(self.domain))
        if self.domain_mode not in ("custom", "magic"):
            raise ConfigError(f"unknown domain mode {self.domain_mode!r} for a cloud cluster",
                              resolution="use custom (your wildcard domain) or magic (<ip>.sslip.io)")
        if self.secrets not in transforming.SECRET_POLICIES:
            raise ConfigError(f"unknown --secrets {self.secrets!r}", resolution="use skip or copy")
        for ns in self.namespaces:
            if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", ns):
                raise ConfigError(f"--namespace {ns!r} is not a namespace name")
        for old, new in self.model_uris:
            if not _MODEL_URI.match(old) or not _MODEL_URI.match(new):
                raise ConfigError(f"--model-uri {old}={new}: both sides must be storage URI prefixes",
                                  resolution="e.g. --model-uri s3://models/=s3://acme-models/serving/ "
                                  "(SCHEME://BUCKET-OR-HOST/[PATH])")
            if transforming.local_model_reason({}, "predictor", new):
                raise ConfigError(f"--model-uri {old}={new}: {new} is not reachable from another cluster",
                                  resolution="rewrite to your cloud's object store (gs://, s3://, https://, hf://…)")
        if self.model_service_account is not None and not re.fullmatch(
                r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", self.model_service_account):
            raise ConfigError(f"--model-service-account {self.model_service_account!r} is not a ServiceAccount name")


@dataclasses.dataclass
class CloneReport:
    knative: str | None = None  # the target's release line
    installed: bool = False
    domain: str | None = None
    objects: list[applying.Change] = dataclasses.field(default_factory=list)
    applied: applying.ApplyReport = dataclasses.field(default_factory=applying.ApplyReport)
    images: imaging.ImageReport = dataclasses.field(default_factory=imaging.ImageReport)
    answers: list[verifying.Answer] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    diffs: list[str] = dataclasses.field(default_factory=list)  # dry run
    bridges: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # ns/bridge → parts left out


def _release_line(version: str | None) -> str | None:
    match = re.match(r"^v?(\d+)\.(\d+)", version or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _line_tuple(line: str) -> tuple[int, int]:
    major, minor = line.split(".")
    return int(major), int(minor)


def knative_release(kube: KubeApi) -> str | None:
    """The Knative release line a cluster runs (None: no Knative Serving)."""
    crd = kube.get(ObjectRef(selecting.CRD, "CustomResourceDefinition", None, SERVING_CRD))
    if crd is None:
        return None
    labels = (crd.get("metadata") or {}).get("labels") or {}
    return _release_line(labels.get("app.kubernetes.io/version")) or "unknown"


def knative_domain(kube: KubeApi) -> str | None:
    cm = kube.get(CONFIG_DOMAIN)
    keys = [k for k in ((cm or {}).get("data") or {}) if not k.startswith("_")]
    return keys[0] if keys else None


def target_pull_auth(authfile: Path | None, registry: str | None) -> dict[str, Any] | None:
    """The authfile's entry for the target registry, as a dockerconfigjson (None without one)."""
    if authfile is None or registry is None:
        return None
    try:
        data = json.loads(authfile.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read --registry-authfile {authfile}: {exc}") from None
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        raise ConfigError(f"--registry-authfile {authfile} has no \"auths\" section",
                          resolution="write it with `skopeo login --authfile FILE HOST`")
    host = registry_host(registry + "/x")
    for key in (registry, host, f"https://{host}"):
        entry = auths.get(key)
        if isinstance(entry, dict) and entry.get("auth"):
            base64.b64decode(str(entry["auth"]), validate=True)
            return {"auths": {host: {"auth": entry["auth"]}}}
    return None


def _check_kinds(target: KubeApi, objs: list[Manifest]) -> None:
    """Refuse (before any write) when the target cannot store what is being cloned."""
    served = {(k.api_version, k.kind) for k in selecting.served_kinds(target)}
    missing = sorted({f"{o['kind']} ({o['apiVersion']})" for o in objs
                      if (str(o["apiVersion"]), str(o["kind"])) not in served})
    if missing:
        raise PermanentError("the target cluster cannot run what is being cloned",
                             details="not served there: " + ", ".join(missing),
                             resolution="install the matching component on the target (KafkaSource: Knative's "
                             "eventing-kafka; InferenceService: KServe), or leave those objects out with "
                             "--namespace/--selector")


def clone(source: KubeApi, target: KubeApi, options: CloneOptions, status: Status, *,
          skopeo: ImageRegistry, installer: Installer | None, probes: HostProbes | None = None) -> CloneReport:
    report = CloneReport()
    policy = WaitPolicy(timeout=options.wait_timeout, interval=options.poll_interval,
                        max_interval=max(options.poll_interval, min(5.0, options.wait_timeout / 10)))
    stats = WaitStats()
    if (source.server, source.context) == (target.server, target.context):
        raise ConfigError("the source and the target are the same cluster",
                          resolution="pass --to with the kubeconfig context of another cluster")

    with status.step("Read the source and the target (no changes)"):
        src_version = source.server_version()
        tgt_version = target.server_version()
        status.detail(f"source {source.server} Kubernetes {src_version}; target {target.server} {tgt_version}")
        kinds = selecting.served_kinds(source)
        selection = selecting.Selection(namespaces=options.namespaces, labels=options.selector)
        objs = selecting.select(source, kinds, selection)
        if not options.include_bridges:
            objs, report.bridges = selecting.split_bridges(objs)
        objs, local_models = _local_models(objs, options)
        services = [o for o in objs if o["kind"] == "Service" and o["apiVersion"].startswith("serving.knative.dev/")]
        revisions = selecting.revisions_of(source, {str(o["metadata"]["namespace"]) for o in services})
        src_line = knative_release(source)
        zone = knative_domain(source) if src_line else None
        tgt_line = knative_release(target)
        if tgt_line and src_line and tgt_line != "unknown" and src_line != "unknown" \
                and _line_tuple(tgt_line) < _line_tuple(src_line):
            raise PermanentError(f"the target runs Knative {tgt_line}, older than the source's {src_line}",
                                 details="objects written for a newer Knative may use fields the older one rejects",
                                 resolution="upgrade Knative on the target (`hybrid-knative enable --context TARGET` "
                                 "installs the newest its Kubernetes supports), then re-run clone")
        if tgt_line is None and not options.install:
            raise ConfigError(f"the target {target.context} has no Knative Serving, and --no-install was given",
                              resolution="drop --no-install to install Knative there (cloud profile), or install it "
                              "yourself first")
        if tgt_line is None:
            _check_installable(tgt_version)
        domain = options.domain or (knative_domain(target) if tgt_line else None)
        if domain is None and not (tgt_line is None and options.domain_mode == "magic"):
            raise ConfigError("the target's Knative domain is unknown",
                              resolution="pass --domain with the wildcard domain the target serves, "
                              "e.g. --domain fns.acme.com")
        if tgt_line:
            _check_kinds(target, objs)
        if options.include_bridges:
            report.warnings += _bridge_nodes(target, objs)
        status.info(f"Source: {len(objs)} objects of yours ({len(services)} services) on {source.context}")

    suffix = _SUFFIX.sub("-", (options.cluster_suffix or target.context).lower()).strip("-")[:40] or "target"
    plan = transforming.Plan(source_zone=zone, target_domain=domain, cluster_suffix=suffix, secrets=options.secrets,
                             public_services={(str(o["metadata"]["namespace"]), str(o["metadata"]["name"]))
                                              for o in services if transforming.is_public(o)},
                             pull_secret=target_pull_auth(options.registry_authfile, options.registry),
                             model_uris=options.model_uris, model_service_account=options.model_service_account,
                             warnings=list(report.warnings), skipped=local_models)
    for where, parts in sorted(report.bridges.items()):
        plan.skipped.append(f"ROS 2 bridge {where} ({', '.join(parts)}): it runs on a robot's node (hostNetwork, "
                            "DDS multicast), which the target does not have; its topic Triggers are copied "
                            "(--include-bridges copies the bridge too, for a target with robots)")
    if options.registry_authfile is not None and plan.pull_secret is None:
        plan.warnings.append(f"the authfile has no entry for {options.registry}: pull secrets are not re-created "
                             "(the target's nodes need pull access of their own)")

    with status.step("Copy images by digest" if not options.dry_run else "Check images"):
        digests = imaging.resolve(objs, revisions, skopeo.digest_of)
        if digests and options.registry is None:
            raise ConfigError("--registry is needed: the cloned workloads have images",
                              resolution="pass the registry the target's nodes pull from, e.g. "
                              "--registry europe-docker.pkg.dev/acme/fns")
        copies = imaging.plan_copies(digests, options.registry or "", imaging.source_tags(objs, digests))
        report.images = imaging.copy_all(copies, skopeo, dry_run=options.dry_run, on_progress=status.note)
        plan.pins = imaging.pins(digests, copies)
        verb = "to copy" if options.dry_run else "copied by digest"
        status.info(f"Images: {len(report.images.copied)} {verb} ({human_size(report.images.bytes_copied)}), "
                    f"{len(report.images.present)} already there")

    if tgt_line is None:
        if options.dry_run:
            status.info(f"Platform on {target.context}: no Knative — clone would install it (cloud profile, "
                        f"{options.domain_mode} domain {domain or ''})")
        else:
            assert installer is not None, "an installer is needed to install Knative on the target"
            with status.step(f"Install Knative on {target.context} (cloud profile)"):
                tgt_line = installer(target, dataclasses.replace(options, domain=domain), status)
                report.installed = True
            domain = domain or knative_domain(target)
            plan.target_domain = domain
            _check_kinds(target, objs)
    report.knative, report.domain = tgt_line, domain
    if tgt_line:
        status.info(f"Platform on {target.context}: Knative {tgt_line}"
                    f"{' (installed)' if report.installed else ''}, domain {domain}")

    pull_refs = {(str(o["metadata"].get("namespace")), name) for o in objs
                 for name in transforming.pull_secret_names(o)}
    wanted = []
    for obj in objs:
        out = transforming.transform(obj, plan, pull_secrets=pull_refs)
        if out is not None:
            wanted.append(applying.stamp(out, source.context))
    have = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in wanted if o["kind"] == "Secret"}
    if plan.pull_secret is not None:
        for ns, name in sorted(pull_refs - have):  # referenced, but not found among the source's secrets
            wanted.append(applying.stamp(transforming.pull_secret(name, ns, plan), source.context))
    report.warnings, report.skipped = plan.warnings, plan.skipped
    for warning in plan.warnings:
        status.warn(warning)
    for skipped in plan.skipped:
        status.detail(f"not copied: {skipped}")

    if options.dry_run and tgt_line is None:
        report.objects = [applying.Change(o, "create", None) for o in sorted(wanted, key=selecting.sort_key)]
        report.diffs = [applying.diff(c) for c in report.objects]
        return report
    with status.step(f"Compare {len(wanted)} objects with the target"):
        report.objects = applying.compare(target, wanted, overwrite=options.overwrite)
    if options.dry_run:
        report.diffs = [applying.diff(c) for c in report.objects if c.action != "unchanged"]
        return report
    with status.step("Apply objects in dependency order (Ready gates)"):
        report.applied = applying.apply_all(target, report.objects, policy=policy, stats=stats,
                                            on_progress=status.note)
    if options.verify:
        refs = [selecting.ref(o) for o in wanted if (o["kind"] == "Service"
                and o["apiVersion"].startswith("serving.knative.dev/") and transforming.is_public(o))
                or transforming.is_public_model(o)]
        with status.step(f"Invoke {len(refs)} cloned services through their new URLs"):
            # bounded on its own: a missing DNS record should not hold the command for --timeout per service
            quick = dataclasses.replace(policy, timeout=min(policy.timeout, 60.0))
            report.answers = verifying.invoke(target, refs, probes or HostProbes(), quick)
    return report


def _local_models(objs: list[Manifest], options: CloneOptions) -> tuple[list[Manifest], list[str]]:
    """Refuse (before any write) InferenceServices whose model only the source cluster can read, unless
    ``--model-uri`` moves them or ``--skip-local-models`` leaves them out (then noted as not copied)."""
    probe = transforming.Plan(source_zone=None, target_domain=None, cluster_suffix="", model_uris=options.model_uris)
    local: dict[str, list[str]] = {}
    for obj in objs:
        found = transforming.local_models(obj, probe)
        if found:
            local[str(selecting.ref(obj))] = found
    if not local:
        return objs, []
    lines = [f"{where}: {', '.join(uris)}" for where, uris in sorted(local.items())]
    if not options.skip_local_models:
        raise ConfigError(f"{len(local)} InferenceService(s) read their model from storage only this cluster "
                          "reaches; copied as they are they would never become Ready on the target",
                          details="\n".join(lines),
                          resolution="copy the model files to an object store the target reaches, then pass "
                          "--model-uri LOCAL_PREFIX=CLOUD_PREFIX (e.g. --model-uri s3://models/=s3://acme-models/"
                          "serving/, and --model-service-account NAME for its credentials there); or leave these "
                          "out with --skip-local-models")
    kept = [o for o in objs if str(selecting.ref(o)) not in local]
    return kept, [f"{line} — a model only this cluster can read (--skip-local-models)" for line in lines]


def _bridge_nodes(target: KubeApi, objs: list[Manifest]) -> list[str]:
    """Warnings for bridge Deployments pinned to nodes the target does not have (their pods stay Pending)."""
    bridges = [o for o in objs if o["kind"] == "Deployment" and selecting.is_bridge_part(o)]
    if not bridges:
        return []
    nodes = [((n.get("metadata") or {}).get("labels") or {}) for n in target.list("v1", "Node")]
    found = []
    for dep in bridges:
        pod = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
        wanted = {str(k): str(v) for k, v in (pod.get("nodeSelector") or {}).items()}
        if not any(all(labels.get(k) == v for k, v in wanted.items()) for labels in nodes):
            meta = dep["metadata"]
            found.append(f"ROS 2 bridge {meta.get('namespace')}/{meta['name']} is pinned to a node with "
                         f"{', '.join(f'{k}={v}' for k, v in sorted(wanted.items()))}, which the target does not "
                         "have: its pod stays Pending until that robot joins the target")
    return found


def _check_installable(version: KubeVersion) -> None:
    from hybrid_knative.catalog import load_catalog

    catalog = load_catalog()
    try:
        catalog.choose(version, None)
    except (ConfigError, PermanentError) as exc:
        raise PermanentError(f"the target's Kubernetes {version.minor_version} cannot run Knative",
                             details=f"{exc.brief} {exc.details or ''}".strip(),
                             resolution=exc.resolution or "upgrade the target cluster") from None


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
