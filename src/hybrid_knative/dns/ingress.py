"""A node-reachable address for Kourier's gateway Service, and conflicts on ports 80/443.

Kourier's ``kourier`` Service (kourier-system) is a LoadBalancer. When a load balancer (e.g. the
MetalLB addon) already gave it an address, that address is used as is. Otherwise the node's address
becomes the Service's ``externalIPs``, so kube-proxy sends node:80/443 to the Kourier gateway.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef

KOURIER = ObjectRef("v1", "Service", "kourier-system", "kourier")
INGRESS_DAEMONSET = ObjectRef("apps/v1", "DaemonSet", "ingress", "nginx-ingress-microk8s-controller")
KUBE_DNS = ObjectRef("v1", "Service", "kube-system", "kube-dns")
COREDNS = ObjectRef("v1", "ConfigMap", "kube-system", "coredns")


@dataclasses.dataclass(frozen=True)
class IngressAddress:
    ip: str
    source: str  # "--ingress-ip", "load balancer", "node InternalIP", "externalIPs"

    @property
    def needs_external_ip(self) -> bool:
        return self.source != "load balancer"


def node_addresses(nodes: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Node name → its InternalIP/ExternalIP addresses (InternalIP first)."""
    found: dict[str, list[str]] = {}
    for node in nodes:
        name = str((node.get("metadata") or {}).get("name", ""))
        addrs = (node.get("status") or {}).get("addresses") or []
        ordered = [a for a in addrs if a.get("type") == "InternalIP"] + [
            a for a in addrs if a.get("type") == "ExternalIP"]
        found[name] = [str(a["address"]) for a in ordered if _is_ip(str(a.get("address", "")))]
    return found


def node_ip(nodes: list[dict[str, Any]], hostname: str | None) -> str | None:
    """The InternalIP of this node: the only node, or the one named like this host."""
    addrs = node_addresses(nodes)
    if hostname and addrs.get(hostname.lower()):
        return addrs[hostname.lower()][0]
    if len(addrs) == 1:
        only = next(iter(addrs.values()))
        return only[0] if only else None
    return None


def load_balancer_ip(service: dict[str, Any]) -> str | None:
    for item in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if _is_ip(str(item.get("ip", ""))):
            return str(item["ip"])
    return None


def current(kube: KubeApi) -> str | None:
    """The ingress address as the cluster has it now (externalIPs we set, or a load balancer's)."""
    svc = kube.get(KOURIER)
    if svc is None:
        return None
    external = (svc.get("spec") or {}).get("externalIPs") or []
    if external:
        return str(external[0])
    return load_balancer_ip(svc)


def choose(kube: KubeApi, *, override: str | None, hostname: str | None) -> IngressAddress:
    svc = kube.get(KOURIER)
    if svc is None:
        raise PermanentError("Service kourier-system/kourier is missing",
                             resolution="run `sudo hybrid-knative repair`: the Kourier step creates it")
    if override:
        return IngressAddress(override, "--ingress-ip")
    lb = load_balancer_ip(svc)
    if lb and lb not in ((svc.get("spec") or {}).get("externalIPs") or []):
        return IngressAddress(lb, "load balancer")
    nodes = kube.list("v1", "Node")
    ip = node_ip(nodes, hostname)
    if ip is None:
        raise PermanentError(
            "cannot tell which address of this node should carry the Knative ingress",
            details=f"{len(nodes)} node(s); none is named {hostname!r} with an InternalIP, or there are several",
            resolution="pass --ingress-ip with this node's LAN address, e.g. --ingress-ip 192.168.1.20",
        )
    return IngressAddress(ip, "node InternalIP")


def check_port_conflict(kube: KubeApi, address: IngressAddress) -> None:
    """MicroK8s's ingress addon holds hostPorts 80/443 on every node: the same node address cannot
    also carry Kourier (whichever DNAT rule comes first would win, at random after a reboot)."""
    if not address.needs_external_ip or kube.get(INGRESS_DAEMONSET) is None:
        return
    nodes = node_addresses(kube.list("v1", "Node"))
    node_ips = {ip for ips in nodes.values() for ip in ips}
    if address.ip in node_ips:
        raise PermanentError(
            f"MicroK8s's ingress addon already serves ports 80/443 on {address.ip}",
            details="DaemonSet ingress/nginx-ingress-microk8s-controller uses hostPorts 80 and 443 on every "
            "node; Kourier cannot take the same ports on the same address",
            resolution="disable it (`sudo microk8s disable ingress`) if Knative is all you serve, or give Kourier "
            "an address of its own: a second IP on this node or a load balancer "
            "(`sudo microk8s enable metallb:<ip>-<ip>`) and --ingress-ip <that ip>",
        )


def cluster_dns_ip(kube: KubeApi) -> str:
    svc = kube.get(KUBE_DNS)
    ip = str(((svc or {}).get("spec") or {}).get("clusterIP") or "")
    if not _is_ip(ip):
        raise PermanentError("the cluster DNS (Service kube-system/kube-dns) is missing or has no cluster IP",
                             resolution="enable MicroK8s's DNS addon: `sudo microk8s enable dns`")
    return ip


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
