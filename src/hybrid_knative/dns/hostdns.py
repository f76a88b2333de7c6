"""Split DNS on the host: names in the zone go to the cluster DNS (CoreDNS), everything else as before.

With systemd-resolved: a drop-in ``/etc/systemd/resolved.conf.d/hybrid-knative.conf`` and a restart
of systemd-resolved. Without it: the exact lines to add to what the host uses instead. Every path is
taken under a root prefix (``/`` on a real host, a temporary folder in tests).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hybrid_knative.system.files import atomic_write
from hybrid_knative.system.runner import Runner

DROPIN = Path("etc/systemd/resolved.conf.d/hybrid-knative.conf")
RESOLVED_RUNTIME = Path("run/systemd/resolve")
RESTART = ("systemctl", "restart", "systemd-resolved")


def dropin_path(root: Path) -> Path:
    return root / DROPIN


def resolved_active(root: Path) -> bool:
    """systemd-resolved runs when its runtime folder exists (it creates /run/systemd/resolve)."""
    return (root / RESOLVED_RUNTIME).is_dir()


def dropin_text(zone: str, dns_ip: str) -> str:
    return (
        "# Written by hybrid-knative: names under the Knative zone are answered by the cluster DNS.\n"
        "# Removed by `microk8s disable hybrid-knative`.\n"
        "[Resolve]\n"
        f"DNS={dns_ip}\n"
        f"Domains=~{zone}\n"
    )


@dataclasses.dataclass(frozen=True)
class HostChange:
    changed: bool
    path: Path | None  # the drop-in written, None when systemd-resolved is absent
    fallback: tuple[str, ...] = ()  # what to tell the user to do instead


def fallback_lines(zone: str, dns_ip: str) -> tuple[str, ...]:
    """What to add by hand where systemd-resolved does not run."""
    return (
        f"systemd-resolved is not running on this host, so the host cannot resolve *.{zone} yet. Add ONE of:",
        f"  dnsmasq (/etc/dnsmasq.d/hybrid-knative.conf):            server=/{zone}/{dns_ip}",
        f"  NetworkManager with dnsmasq (/etc/NetworkManager/dnsmasq.d/hybrid-knative.conf): server=/{zone}/{dns_ip}",
        f"  plain /etc/resolv.conf (first line; CoreDNS forwards other names): nameserver {dns_ip}",
    )


def lan_hint(zone: str, ingress_ip: str) -> str:
    """The one setting other machines on the LAN need (the cluster DNS IP is not reachable from them)."""
    return (f"Other machines on your network: on their DNS server (router, dnsmasq, Pi-hole) add "
            f"`address=/{zone}/{ingress_ip}` — or point *.{zone} at {ingress_ip} in their resolver")


def apply(root: Path, zone: str, dns_ip: str, runner: Runner) -> HostChange:
    """Write the drop-in and restart systemd-resolved, only when the content changes."""
    if not resolved_active(root):
        return HostChange(False, None, fallback_lines(zone, dns_ip))
    path = dropin_path(root)
    want = dropin_text(zone, dns_ip)
    try:
        have = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        have = None
    if have == want:
        return HostChange(False, path)
    atomic_write(path, want, mode=0o644)
    runner.run(RESTART, timeout=60)
    return HostChange(True, path)


def remove(path: Path, runner: Runner, *, restart: bool) -> bool:
    """Delete our drop-in (if still there) and restart systemd-resolved; True when something changed."""
    if not path.is_file():
        return False
    path.unlink()
    if restart:
        runner.run(RESTART, timeout=60)
    return True
