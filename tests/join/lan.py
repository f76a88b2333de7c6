"""Network namespaces on a bridge: a private LAN for the hub and the devices.

Every host gets its own namespace with one veth interface ``eth0`` whose peer sits on bridge ``br0``
in a "switch" namespace; nothing is connected to the root namespace (so nothing can leave the machine).
Commands run inside a host with ``ip netns exec``; namespaces are deleted by ``close()``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

SUBNET = "10.77.0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def available() -> str | None:
    """None when namespaces can be used, else the reason why not."""
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


class Lan:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.switch = f"{prefix}-sw"
        self.hosts: dict[str, str] = {}  # name -> IP
        self._namespaces: list[str] = []
        self._add_ns(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def _add_ns(self, name: str) -> None:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def add_host(self, name: str, host_number: int) -> str:
        ns = self.ns(name)
        ip = f"{SUBNET}.{host_number}"
        self._add_ns(ns)
        peer = f"p{len(self.hosts)}"
        _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", peer, "netns", self.switch)
        _ip("-n", self.switch, "link", "set", peer, "master", "br0")
        _ip("-n", self.switch, "link", "set", peer, "up")
        _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")  # multicast (mDNS) on the LAN
        self.hosts[name] = ip
        return ip

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def cmd(self, name: str, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(name), *argv]

    def close(self) -> None:
        for ns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        self._namespaces.clear()
