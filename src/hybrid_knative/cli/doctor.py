"""`hybrid-knative doctor [KSVC] [-n NS]`: cause, evidence and fix, one sentence each."""

from __future__ import annotations

import sys
from typing import Any

import click

from hybrid_knative import addon
from hybrid_knative.cli.common import build_target, cluster_options, handle_errors, verbosity_options
from hybrid_knative.diagnose import doctor as diagnosis
from hybrid_knative.diagnose.dns_check import Lookup, system_lookup
from hybrid_knative.dns.resolve import DnsClient, split_server
from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.wait import WaitPolicy
from hybrid_knative.system.http import HostProbes, system_resolve
from hybrid_knative.wiring.ros2 import bridges_health, doctor_lines


def _probes(dns_server: str | None) -> HostProbes:
    if dns_server is None:
        return HostProbes(resolve=system_resolve, outcome=lambda name: system_lookup(name)[1])
    try:
        split_server(dns_server)
    except ConfigError as exc:
        raise click.BadParameter(exc.brief, param_hint="--dns-server") from None
    client = DnsClient((dns_server,))
    return HostProbes(resolve=lambda name: list(client.addresses(name).addresses),
                      outcome=lambda name: client.addresses(name).outcome)


def _lookup(dns_server: str | None) -> Lookup:
    """(addresses, outcome): a DNS timeout stays a timeout (not "no answer")."""
    if dns_server is None:
        return system_lookup
    client = DnsClient((dns_server,))

    def lookup(name: str) -> tuple[list[str], str]:
        answer = client.addresses(name)
        return list(answer.addresses), answer.outcome

    return lookup


@click.command("doctor")
@click.argument("ksvc", required=False)
@click.option("-n", "--namespace", default="default", show_default=True, help="Namespace of the Knative Service.")
@click.option("--no-pod-check", is_flag=True, help="Do not start a Job to check DNS from inside the cluster.")
@click.option("--dns-server", help="Resolve host names with this DNS server (IP or IP:PORT) instead of the host's "
              "resolver.")
@cluster_options
@verbosity_options
@handle_errors
def doctor(verbose: int, quiet: bool, ksvc: str | None, namespace: str, no_pod_check: bool, dns_server: str | None,
           **cluster: Any) -> None:
    """Say why a Knative Service does not come up (or, without KSVC, what is wrong with the platform).

    \b
    Walks KService → Configuration → Revision → Deployment → Pods/Events and names the cause,
    the evidence and the fix. For a Ready service it checks its host name resolves from this host
    and from a pod. Exit 0 when healthy, 3 when a problem was found.
    """
    config = build_target(**cluster)
    if ksvc is not None and not diagnosis_name_ok(ksvc):
        raise click.BadParameter(f"{ksvc!r} is not a valid Knative Service name (an RFC 1123 label)",
                                 param_hint="KSVC")
    if not diagnosis_name_ok(namespace):
        raise click.BadParameter(f"{namespace!r} is not a valid namespace name", param_hint="--namespace")
    probes = _probes(dns_server)
    kube = addon.connect(config)
    waits = WaitPolicy(timeout=config.wait_timeout, interval=config.poll_interval,
                       max_interval=max(config.poll_interval, min(5.0, config.wait_timeout / 10)))
    if ksvc is None:
        report = diagnosis.diagnose_platform(kube)
        # hybrid-knative/host: DNS of the zone — the CoreDNS block, a service host from this host and a pod
        report = diagnosis.with_dns(report, addon.dns_checks(config, kube, lookup=_lookup(dns_server)), kube,
                                    waits=waits, pod_check=not no_pod_check)
    else:
        report = diagnosis.diagnose_service(kube, ksvc, namespace, probes=probes, waits=waits,
                                            pod_check=not no_pod_check)
    click.echo(f"doctor: {report.subject}")
    for f in report.findings:
        if f.ok:
            if not quiet:
                click.echo(f"{'–' if f.info else '✓'} {f.check}: {f.cause} ({f.evidence})")
            continue
        click.echo(f"✗ {f.check}")
        click.echo(f"  cause:    {f.cause}")
        click.echo(f"  evidence: {f.evidence}")
        if f.fix:
            click.echo(f"  fix:      {f.fix}")
    healthy = report.healthy
    if ksvc is None:  # the platform view also covers the ROS 2 bridges of every namespace
        found = bridges_health(kube)
        for line in doctor_lines(found):
            if not (quiet and line.startswith("✓")):
                click.echo(line)
        healthy = healthy and all(h.healthy for h in found)
    click.echo("healthy" if healthy else "problems found")
    sys.exit(0 if healthy else 3)


def diagnosis_name_ok(name: str) -> bool:
    return diagnosis.is_label(name)
