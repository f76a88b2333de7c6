"""Is DNS for the Knative zone really working? Shared by `status` and `doctor`.

- the CoreDNS block: `microk8s enable dns` (re-)applies its stock Corefile and drops our zone block —
  then every name in the zone stops resolving inside the cluster (and on the host, whose split DNS
  asks CoreDNS);
- a service host name from this host, telling a DNS timeout (no server answered) from a name that
  does not exist.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable

from hybrid_knative.dns import corefile
from hybrid_knative.errors import HybridError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef

# a host lookup: (addresses, outcome) with outcome ok | nxdomain | noanswer | timeout | error
Lookup = Callable[[str], tuple[list[str], str]]
COREDNS = ObjectRef("v1", "ConfigMap", "kube-system", "coredns")


@dataclasses.dataclass(frozen=True)
class DnsCheck:
    name: str
    ok: bool
    cause: str
    evidence: str
    fix: str = ""
    info: bool = False  # nothing to check here (e.g. host DNS left to the user): shown as "–", not ✓


def corefile_block(kube: KubeApi, zone: str) -> DnsCheck:
    """Our server block for ``zone`` is in kube-system/coredns."""
    cm = kube.get(COREDNS)
    text = str(((cm or {}).get("data") or {}).get("Corefile", ""))
    if cm is None or not text:
        return DnsCheck("dns-corefile", False, "The cluster DNS (CoreDNS) has no Corefile.",
                        "kube-system/coredns is missing or has no Corefile key",
                        "Run `sudo microk8s enable dns`, then `sudo hybrid-knative repair`.")
    try:
        zones = [z for block in corefile.parse(text).ours for z, _port in block.zones]
    except HybridError as exc:
        return DnsCheck("dns-corefile", False, "The CoreDNS Corefile cannot be read.", exc.brief,
                        "Fix the Corefile (`microk8s kubectl -n kube-system edit cm coredns`), then "
                        "`sudo hybrid-knative repair`.")
    if zone.rstrip(".") not in [z.rstrip(".") for z in zones]:
        return DnsCheck("dns-corefile", False, f"CoreDNS does not carry the Knative zone {zone}: names in it do not "
                        "resolve (re-running `microk8s enable dns` rewrites the Corefile and drops the block).",
                        f"no '{corefile.MARKER}' block for {zone} in kube-system/coredns"
                        + (f" (blocks for: {', '.join(zones)})" if zones else ""),
                        "Run `sudo hybrid-knative repair` (it puts the block back and changes nothing else).")
    return DnsCheck("dns-corefile", True, f"CoreDNS carries the Knative zone {zone}.",
                    f"'{corefile.MARKER}' block in kube-system/coredns")


def system_lookup(host: str) -> tuple[list[str], str]:
    """The host's resolver (getaddrinfo): a temporary failure (EAI_AGAIN) is a timeout, not a missing name."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:
            return [], "timeout"
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return [], "nxdomain"
        return [], "error"
    except UnicodeError:
        return [], "error"
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen, "ok" if seen else "noanswer"


def host_resolves(host: str, lookup: Lookup, ingress_ip: str | None, *, host_dns: str | None = None) -> DnsCheck:
    """``host`` resolves from this host (to the ingress address when one is known)."""
    addresses, outcome = lookup(host)
    manual = host_dns == "manual"
    if not addresses:
        if outcome == "timeout":
            return DnsCheck("dns-host", False, f"Resolving {host} on this host timed out: no DNS server answered.",
                            f"DNS timeout for {host}",
                            "Check that the cluster DNS runs (`microk8s kubectl -n kube-system get pods -l "
                            "k8s-app=kube-dns`) and that this host's resolver reaches it "
                            "(`resolvectl query " + host + "`).")
        why = {"nxdomain": "the name does not exist (NXDOMAIN)", "noanswer": "no A/AAAA answer"}.get(
            outcome, "the lookup failed")
        fix = ("This host's resolver cannot be pointed at the zone automatically (plain resolv.conf): add the "
               "line enable printed (/etc/hosts or a local dnsmasq; see docs/dns.md) — never `nameserver "
               "<cluster DNS>`." if manual else
               "Set up split DNS for the Knative zone (`sudo hybrid-knative repair` does it with systemd-resolved "
               "or NetworkManager's dnsmasq; see docs/dns.md), or use `--domain-mode magic`.")
        return DnsCheck("dns-host", manual, f"{host} does not resolve on this host"
                        + (" (expected here: no resolver to configure)." if manual else "."), why, fix)
    if ingress_ip is not None and ingress_ip not in addresses:
        return DnsCheck("dns-host", False, f"{host} resolves on this host, but not to the ingress address.",
                        f"answers {', '.join(addresses)}; the ingress is {ingress_ip}",
                        "Fix the DNS record (custom domain) or run `sudo hybrid-knative repair` to rewrite the zone.")
    return DnsCheck("dns-host", True, f"{host} resolves on this host.", f"answers {', '.join(addresses)}")
