"""mDNS: the hub advertises ``_hybrid-knative._tcp`` (TXT: cluster name, CA fingerprint); devices browse.

The TXT record is a hint, never trusted on its own: a device only sends its token to a hub whose CA
matches the fingerprint AND that proves it knows the token (see agent.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import queue
import re
import secrets
import time
from collections.abc import Sequence
from typing import Any

from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from hybrid_knative.errors import TemporaryError
from hybrid_knative.join.enrolment import HubAddress
from hybrid_knative.join.protocol import SERVICE_TYPE

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_CLUSTER = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.]{0,62}")


@dataclasses.dataclass(frozen=True)
class DiscoveredHub:
    cluster: str
    fingerprint: str
    addresses: tuple[HubAddress, ...]


class Advertiser:
    def __init__(self, zc: Zeroconf, info: ServiceInfo) -> None:
        self._zc, self._info = zc, info

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._zc.unregister_service(self._info)
        self._zc.close()


def _interfaces(addresses: Sequence[str]) -> Any:
    return list(addresses) if addresses else InterfaceChoice.All


def advertise(*, cluster: str, fingerprint: str, port: int, addresses: Sequence[str]) -> Advertiser:
    ipv4 = [a for a in addresses if ipaddress.ip_address(a).version == 4]
    zc = Zeroconf(interfaces=_interfaces(ipv4), ip_version=IPVersion.V4Only)
    instance = f"{cluster[:40]}-{secrets.token_hex(3)}"
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{instance}.{SERVICE_TYPE}",
        addresses=[ipaddress.ip_address(a).packed for a in ipv4],
        port=port,
        properties={"v": "1", "cluster": cluster, "fp": fingerprint},
        server=f"{instance}.local.",
    )
    zc.register_service(info, allow_name_change=True)
    return Advertiser(zc, info)


def discover(*, timeout: float, cluster: str | None = None, interfaces: Sequence[str] = (),
             want: int = 1) -> list[DiscoveredHub]:
    """Browse for hubs for up to ``timeout`` seconds (stops early once ``want`` matching hubs are seen)."""
    found: dict[str, DiscoveredHub] = {}
    names: queue.Queue[str] = queue.Queue()

    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            names.put(name)

    zc = Zeroconf(interfaces=_interfaces(interfaces), ip_version=IPVersion.V4Only)
    browser = ServiceBrowser(zc, SERVICE_TYPE, handlers=[on_change])
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(found) < want:
            try:
                name = names.get(timeout=min(0.2, max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                continue
            info = ServiceInfo(SERVICE_TYPE, name)
            if not info.request(zc, 3000):
                continue
            hub = _parse(info)
            if hub is not None and (cluster is None or hub.cluster == cluster):
                found[name] = hub
    finally:
        browser.cancel()
        zc.close()
    return sorted(found.values(), key=lambda h: (h.cluster, h.addresses))


def _parse(info: ServiceInfo) -> DiscoveredHub | None:
    props = {k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace")
             for k, v in (info.properties or {}).items() if isinstance(k, bytes)}
    fingerprint, cluster = props.get("fp", ""), props.get("cluster", "")
    if props.get("v") != "1" or not _FINGERPRINT.fullmatch(fingerprint) or not _CLUSTER.fullmatch(cluster):
        return None
    port = info.port
    if port is None or not 1 <= port <= 65535:
        return None
    addresses = tuple(HubAddress(a, port) for a in info.parsed_addresses(IPVersion.V4Only))
    if not addresses:
        return None
    return DiscoveredHub(cluster, fingerprint, addresses)


def discover_one(*, timeout: float, cluster: str | None, interfaces: Sequence[str]) -> DiscoveredHub:
    hubs = discover(timeout=timeout, cluster=cluster, interfaces=interfaces, want=1)
    if not hubs:
        raise TemporaryError(f"no hybrid-knative hub found on the LAN by mDNS within {timeout:g}s"
                             + (f" for cluster {cluster!r}" if cluster else ""),
                             resolution="start the hub (`sudo hybrid-knative hub start`), check that mDNS "
                             "(UDP 5353) is allowed, or use the full hk1: enrolment string instead")
    if len(hubs) > 1:
        names = ", ".join(sorted({h.cluster for h in hubs}))
        raise TemporaryError(f"several hubs answered ({names})",
                             resolution="pass --cluster NAME to pick one, or use the hk1: enrolment string")
    return hubs[0]
