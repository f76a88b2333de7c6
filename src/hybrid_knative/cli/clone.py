"""`hybrid-knative clone --to CONTEXT`: copy your Knative setup (objects and images) to another cluster."""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from hybrid_knative import addon
from hybrid_knative.cli.common import build_config, cluster_options, handle_errors, make_status, verbosity_options
from hybrid_knative.clone.run import CloneOptions, CloneReport, human_size
from hybrid_knative.clone.run import clone as run_clone
from hybrid_knative.clone.select import parse_selector
from hybrid_knative.config import Config
from hybrid_knative.errors import ConfigError, PermanentError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.options import DomainMode
from hybrid_knative.progress import Status
from hybrid_knative.system.http import HostProbes
from hybrid_knative.system.image_registry import ImageRegistry
from hybrid_knative.system.runner import Runner


def _default_target_kubeconfig(source: Path | None) -> Path:
    env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    for candidate in (Path(env) if env else None, Path.home() / ".kube" / "config", source):
        if candidate is not None and candidate.is_file():
            return candidate
    raise ConfigError("no kubeconfig with the target's context was found",
                      resolution="pass --to-kubeconfig PATH (e.g. the file `gcloud container clusters "
                      "get-credentials` wrote), or set KUBECONFIG")


def _probes(ingress_address: str | None) -> HostProbes:
    if not ingress_address:
        return HostProbes()
    host, port = ingress_address, None
    match = re.fullmatch(r"\[?([0-9a-fA-F:.]+?)\]?(?::(\d{1,5}))?", ingress_address)
    if match and match.group(2) and ("." in match.group(1) or ingress_address.startswith("[")):
        host, port = match.group(1), int(match.group(2))
    try:  # loopback is fine here: e.g. `kubectl -n kourier-system port-forward svc/kourier 8080:80`
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        raise ConfigError(f"--ingress-address {ingress_address!r} is not IP[:PORT]",
                          resolution="e.g. --ingress-address 34.90.1.2 or --ingress-address 127.0.0.1:8080") from None
    return HostProbes(resolve=lambda _name: [ip], http_port=port)


def _model_uri(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise ConfigError(f"--model-uri {text!r} is not FROM=TO",
                          resolution="e.g. --model-uri s3://models/=s3://acme-models/serving/")
    return old.strip(), new.strip()


def make_installer(*, kubeconfig: Path, state_dir: Path, upstream_dirs: tuple[Path, ...], offline: bool,
                   wait_timeout: float, poll_interval: float, dns_servers: tuple[str, ...]) -> Any:
    """The enable engine, in the cloud profile: no host DNS, a load-balancer ingress, custom or magic domain."""

    def install(target: KubeApi, options: CloneOptions, status: Status) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", target.context)
        config = Config(kubeconfig=kubeconfig, context=target.context, state_dir=state_dir,
                        marker=state_dir / f"clone-target-{safe}.enabled", wait_timeout=wait_timeout,
                        poll_interval=poll_interval, upstream_dirs=upstream_dirs, offline=offline,
                        domain_mode=options.domain_mode,
                        domain=options.domain if options.domain_mode == "custom" else None,
                        ingress_mode="loadbalancer", gpu="none", verify=False, dns_servers=dns_servers)
        outcome = addon.enable(config, status, kube=target)
        if outcome.release is None:
            raise PermanentError("the install on the target did not report a Knative release")
        return outcome.release.line

    return install


@click.command()
@click.option("--to", "to_context", required=True, help="Kubeconfig context of the target cluster (GKE, EKS, AKS, "
              "another MicroK8s…).")
@click.option("--to-kubeconfig", type=click.Path(path_type=Path, dir_okay=False),
              help="Kubeconfig holding the --to context. Default: $KUBECONFIG, else ~/.kube/config.")
@click.option("--registry", help="Registry the target's nodes pull from (HOST[:PORT][/PATH]); images are copied "
              "there by digest, e.g. europe-docker.pkg.dev/acme/fns.")
@click.option("--registry-authfile", type=click.Path(path_type=Path, dir_okay=False),
              help="Credentials for --registry (containers auth.json: `skopeo login --authfile F HOST`); also "
              "used to re-create image pull secrets on the target.")
@click.option("--domain", help="The target's wildcard domain for Knative services (default: what the target "
              "already has).")
@click.option("--domain-mode", type=click.Choice(["custom", "magic"]), default="custom", show_default=True,
              help="When Knative is installed on the target: your own domain, or <ip>.sslip.io.")
@click.option("-n", "--namespace", "namespaces", multiple=True, help="Clone only these namespaces (repeatable). "
              "Default: every namespace that is not the system's.")
@click.option("-l", "--selector", help="Clone only objects with these labels (key=value,…).")
@click.option("--secrets", type=click.Choice(["skip", "copy"]), default="skip", show_default=True,
              help="Secrets are copied only when asked; service-account tokens and Knative's TLS never are.")
@click.option("--dry-run", is_flag=True, help="Show what would change on the target (a diff) and which images "
              "would be copied; writes nothing anywhere.")
@click.option("--install/--no-install", default=True, show_default=True,
              help="Install Knative on the target when it has none (cloud profile).")
@click.option("--overwrite", is_flag=True, help="Replace objects on the target that clone did not make.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Finish by invoking every cloned service through its new URL.")
@click.option("--ingress-address", help="Send those requests to this IP[:PORT] instead of resolving the service "
              "names (before the wildcard DNS record exists).")
@click.option("--cluster-suffix", help="Appended to Kafka consumer groups. Default: the target's context name.")
@click.option("--model-uri", "model_uris", multiple=True, metavar="FROM=TO",
              help="Rewrite InferenceService storage URIs starting with FROM to start with TO (repeatable), e.g. "
              "s3://models/=s3://acme-models/serving/ after copying the model files there. Models in the local "
              "model store, on PVCs or in GridFS are refused without it.")
@click.option("--model-service-account", metavar="NAME",
              help="ServiceAccount (on the target) that reads the rewritten models; replaces the local store's.")
@click.option("--skip-local-models", is_flag=True,
              help="Leave out InferenceServices whose model only this cluster can read, instead of refusing.")
@click.option("--include-bridges", is_flag=True,
              help="Also copy ROS 2 bridges (Deployment on the robot's node, its Service, ConfigMap, reply "
              "Trigger): only for a target that has the robots. Default: left out, and named.")
@click.option("--upstream-dir", "upstream_dirs", multiple=True, type=click.Path(path_type=Path, file_okay=False),
              help="Pinned upstream files for the install on the target (e.g. a mirror). Repeatable.")
@click.option("--offline", is_flag=True, help="Never download upstream files for the install.")
@click.option("--dns-server", "dns_servers", multiple=True, hidden=True)
@cluster_options
@verbosity_options
@handle_errors
def clone(verbose: int, quiet: bool, to_context: str, to_kubeconfig: Path | None, registry: str | None,
          registry_authfile: Path | None, domain: str | None, domain_mode: DomainMode, namespaces: tuple[str, ...],
          selector: str | None, secrets: str, dry_run: bool, install: bool, overwrite: bool, verify: bool,
          ingress_address: str | None, cluster_suffix: str | None, model_uris: tuple[str, ...],
          model_service_account: str | None, skip_local_models: bool, include_bridges: bool,
          upstream_dirs: tuple[Path, ...], offline: bool, dns_servers: tuple[str, ...], **cluster: Any) -> None:
    """Copy your Knative objects and their images from this cluster to another one.

    \b
    Selects your objects (not the platform's), pins every container to the digest that runs, copies
    the images by digest to --registry, rewrites domains to the target's, and applies everything in
    dependency order, waiting for each Broker and Service to be Ready. Installs Knative on the target
    first when it has none. Re-running copies only what changed. Nothing on the source is modified.

    \b
      hybrid-knative clone --to gke_prod --registry europe-docker.pkg.dev/acme/fns --domain fns.acme.com --dry-run
      hybrid-knative clone --to gke_prod --registry europe-docker.pkg.dev/acme/fns --domain fns.acme.com
    """
    config = build_config(**cluster)
    options = CloneOptions(registry=registry, registry_authfile=registry_authfile, domain=domain,
                           domain_mode=domain_mode, namespaces=namespaces, selector=parse_selector(selector),
                           secrets=secrets, dry_run=dry_run, install=install, overwrite=overwrite, verify=verify,
                           cluster_suffix=cluster_suffix, wait_timeout=config.wait_timeout,
                           poll_interval=config.poll_interval, include_bridges=include_bridges,
                           model_uris=tuple(_model_uri(m) for m in model_uris),
                           model_service_account=model_service_account, skip_local_models=skip_local_models)
    target_kubeconfig = to_kubeconfig or _default_target_kubeconfig(config.kubeconfig)
    if not target_kubeconfig.is_file():
        raise ConfigError(f"--to-kubeconfig {target_kubeconfig} not found")
    probes = _probes(ingress_address)
    status = make_status(verbose, quiet)
    source = addon.connect(config)
    target = KubeApi.connect(target_kubeconfig, to_context, context_flag="--to")
    installer = make_installer(kubeconfig=target_kubeconfig, state_dir=config.effective_state_dir,
                               upstream_dirs=upstream_dirs, offline=offline, wait_timeout=config.wait_timeout,
                               poll_interval=config.poll_interval, dns_servers=dns_servers)
    report = run_clone(source, target, options, status, skopeo=ImageRegistry(Runner(), authfile=registry_authfile),
                       installer=installer, probes=probes)
    sys.exit(print_report(report, target.context, dry_run=dry_run))


def print_report(report: CloneReport, context: str, *, dry_run: bool) -> int:
    for where, parts in sorted(report.bridges.items()):
        click.echo(f"- ROS 2 bridge {where} not copied ({', '.join(parts)}): it belongs on a robot's node; "
                   f"its topic Triggers were kept. --include-bridges copies it for a {context} with robots.")
    if dry_run:
        for text in report.diffs:
            click.echo(text)
        actions = {a: sum(1 for c in report.objects if c.action == a) for a in ("create", "update", "unchanged")}
        click.echo(f"Dry run: {actions['create']} to create, {actions['update']} to update, "
                   f"{actions['unchanged']} unchanged; {len(report.images.copied)} images to copy, "
                   f"{len(report.images.present)} already there. Nothing was written.")
        return 0
    click.echo(f"✓ Platform on {context}: Knative {report.knative}{' (installed)' if report.installed else ''}, "
               f"domain {report.domain}")
    click.echo(f"✓ Images: {len(report.images.copied)} copied by digest ({human_size(report.images.bytes_copied)}), "
               f"{len(report.images.present)} already there")
    a = report.applied
    click.echo(f"✓ Objects: {a.created} created, {a.updated} updated, {a.unchanged} unchanged"
               f"{f', {len(report.skipped)} not copied (-v: why)' if report.skipped else ''}")
    failed = 0
    for answer in report.answers:
        mark = "✓" if answer.ok else "✗"
        failed += 0 if answer.ok else 1
        click.echo(f"{mark} {answer.namespace}/{answer.name}  {answer.url or '-'}  {answer.detail}")
    if failed:
        click.echo(f"{failed} cloned service(s) did not answer; the objects are in place — check DNS for the "
                   "domain (or pass --ingress-address) and `hybrid-knative doctor --context TARGET`", err=True)
        return 3
    return 0
