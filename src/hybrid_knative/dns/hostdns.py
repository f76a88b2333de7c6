"""Split DNS on the host: names in the zone go to the cluster DNS (CoreDNS), everything else as before.

Which resolver the host runs decides what is safe to change (``detect``):

- ``resolved``: systemd-resolved runs (also NetworkManager with ``dns=systemd-resolved``) — a drop-in
  ``/etc/systemd/resolved.conf.d/hybrid-knative.conf`` (``DNS=`` + ``Domains=~zone``) and a restart;
- ``nm-dnsmasq``: NetworkManager runs its own dnsmasq (``dns=dnsmasq``) — a file in
  ``/etc/NetworkManager/dnsmasq.d`` (``server=/zone/DNS``) and ``nmcli general reload dns-full``;
- ``manual``: a plain ``/etc/resolv.conf`` (Raspberry Pi OS, Debian without resolved, NetworkManager
  writing resolv.conf itself). Nothing is changed: CoreDNS forwards to this very resolv.conf, so
  pointing it at the cluster DNS would make CoreDNS forward to itself (its ``loop`` plugin then stops
  cluster DNS). enable verifies through the ingress address instead and prints what is safe to add.

Only names in the zone are sent to CoreDNS, which answers them from our own server block and never
forwards them: no loop is possible in the first two modes. Every path is taken under a root prefix
(``/`` on a real host, a temporary folder in tests).
"""

from __future__ import annotations

import configparser
import dataclasses
import ipaddress
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hybrid_knative.errors import CommandError
from hybrid_knative.system.files import atomic_write
from hybrid_knative.system.runner import Runner

DROPIN = Path("etc/systemd/resolved.conf.d/hybrid-knative.conf")
NM_DNSMASQ_DROPIN = Path("etc/NetworkManager/dnsmasq.d/hybrid-knative.conf")
RESOLVED_RUNTIME = Path("run/systemd/resolve")
NM_RUNTIME = Path("run/NetworkManager")
RESOLV_CONF = Path("etc/resolv.conf")
RESTART = ("systemctl", "restart", "systemd-resolved")
NM_RELOAD = ("nmcli", "general", "reload", "dns-full")
# NetworkManager reads these in this order, a later file overriding an earlier one (NetworkManager.conf(5))
NM_CONFIG_DIRS = (Path("usr/lib/NetworkManager/conf.d"), Path("run/NetworkManager/conf.d"),
                  Path("etc/NetworkManager/conf.d"))
NM_MAIN_CONFIG = Path("etc/NetworkManager/NetworkManager.conf")
RELOAD_ATTEMPTS = 3

MODES = ("resolved", "nm-dnsmasq", "manual")


@dataclasses.dataclass(frozen=True)
class HostResolver:
    """What resolves names on this host, as far as its files tell."""

    mode: str  # one of MODES
    reason: str  # how it was told, for --verbose and doctor
    nameservers: tuple[str, ...] = ()  # from /etc/resolv.conf

    @property
    def dropin(self) -> Path | None:
        return {"resolved": DROPIN, "nm-dnsmasq": NM_DNSMASQ_DROPIN}.get(self.mode)

    @property
    def reload(self) -> tuple[str, ...]:
        return {"resolved": RESTART, "nm-dnsmasq": NM_RELOAD}.get(self.mode, ())

    @property
    def local_resolver(self) -> bool:
        """resolv.conf names a resolver on this host (dnsmasq, unbound, Pi-hole…)."""
        return any(_is_loopback(ns) for ns in self.nameservers)


def _is_loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text.split("%")[0]).is_loopback
    except ValueError:
        return False


def resolv_conf_nameservers(root: Path) -> tuple[str, ...]:
    try:
        text = (root / RESOLV_CONF).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    found = []
    for line in text.splitlines():
        words = line.split("#")[0].split(";")[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            found.append(words[1])
    return tuple(found)


def networkmanager_dns(root: Path) -> str | None:
    """NetworkManager's ``[main] dns=`` setting (None: NetworkManager does not run here)."""
    if not (root / NM_RUNTIME).is_dir():
        return None
    files = [root / NM_MAIN_CONFIG]
    for folder in NM_CONFIG_DIRS:
        files.extend(sorted((root / folder).glob("*.conf")) if (root / folder).is_dir() else [])
    value = "default"
    for path in files:
        parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
        try:
            parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
        except (OSError, configparser.Error):
            continue
        if parser.has_option("main", "dns"):
            value = parser.get("main", "dns").strip()
    return value


def detect(root: Path) -> HostResolver:
    nameservers = resolv_conf_nameservers(root)
    if resolved_active(root):
        return HostResolver("resolved", "systemd-resolved runs (/run/systemd/resolve exists)", nameservers)
    nm = networkmanager_dns(root)
    if nm == "dnsmasq":
        return HostResolver("nm-dnsmasq", "NetworkManager runs with dns=dnsmasq", nameservers)
    if nm is not None:
        return HostResolver("manual", f"NetworkManager runs with dns={nm} and writes /etc/resolv.conf itself",
                            nameservers)
    return HostResolver("manual", "a plain /etc/resolv.conf (no systemd-resolved, no NetworkManager)", nameservers)


def dropin_path(root: Path) -> Path:
    return root / DROPIN


def resolved_active(root: Path) -> bool:
    """systemd-resolved runs when its runtime folder exists (it creates /run/systemd/resolve)."""
    return (root / RESOLVED_RUNTIME).is_dir()


def dropin_text(zone: str, dns_ip: str, mode: str = "resolved") -> str:
    head = ("# Written by hybrid-knative: names under the Knative zone are answered by the cluster DNS.\n"
            "# Removed by `microk8s disable hybrid-knative`.\n")
    if mode == "nm-dnsmasq":
        return head + f"server=/{zone}/{dns_ip}\n"
    return head + f"[Resolve]\nDNS={dns_ip}\nDomains=~{zone}\n"


@dataclasses.dataclass(frozen=True)
class HostChange:
    changed: bool
    path: Path | None  # the file written, None when nothing on this host can be changed safely
    fallback: tuple[str, ...] = ()  # what to tell the user to do instead
    mode: str = "resolved"


def fallback_lines(zone: str, dns_ip: str, ingress_ip: str | None, resolver: HostResolver | None = None,
                   ) -> tuple[str, ...]:
    """What a user can add by hand where nothing is changed automatically — never anything that makes
    CoreDNS forward to itself (``nameserver <cluster DNS>`` in the resolv.conf CoreDNS forwards to)."""
    why = resolver.reason if resolver is not None else "no systemd-resolved"
    via = ingress_ip or "<ingress address>"
    lines = [
        f"This host cannot resolve *.{zone} by itself ({why}); nothing was changed in its DNS setup. "
        f"Service URLs answer through the ingress address {via}. To open them by name from this host, add ONE of:",
        f"  per service, in /etc/hosts:  {via} <service>-<namespace>.{zone}",
    ]
    if resolver is not None and resolver.local_resolver:
        lines.append(f"  the local dnsmasq /etc/resolv.conf points at (/etc/dnsmasq.d/hybrid-knative.conf):  "
                     f"server=/{zone}/{dns_ip}")
    else:
        lines.append(f"  a local dnsmasq answering this host (/etc/dnsmasq.d/hybrid-knative.conf):  "
                     f"address=/{zone}/{via}")
    lines.append("  or install systemd-resolved, then run `sudo hybrid-knative repair` to add the split DNS")
    lines.append(f"Do NOT put `nameserver {dns_ip}` into /etc/resolv.conf: CoreDNS forwards other names to that "
                 "file, so cluster DNS would loop and stop.")
    return tuple(lines)


def lan_hint(zone: str, ingress_ip: str) -> str:
    """The one setting other machines on the LAN need (the cluster DNS IP is not reachable from them)."""
    return (f"Other machines on your network: on their DNS server (router, dnsmasq, Pi-hole) add "
            f"`address=/{zone}/{ingress_ip}` — or point *.{zone} at {ingress_ip} in their resolver")


def reload(argv: Sequence[str], runner: Runner, *, attempts: int = RELOAD_ATTEMPTS, delay: float = 2.0,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """Run the resolver's restart/reload, retried a few times (a restart can fail while the unit is busy)."""
    for attempt in range(1, attempts + 1):
        try:
            runner.run(argv, timeout=60)
            return
        except CommandError as exc:
            if attempt == attempts:
                exc.brief = f"`{' '.join(argv)}` failed {attempts} times (exit code {exc.returncode})"
                exc.resolution = (f"see `journalctl -u {'systemd-resolved' if argv == RESTART else 'NetworkManager'}`;"
                                  " the change is remembered and retried by the next run of the same command")
                raise
            sleep(delay * attempt)


def write(root: Path, zone: str, dns_ip: str, resolver: HostResolver) -> HostChange:
    """Write the file for ``resolver`` when its content differs (the caller reloads)."""
    rel = resolver.dropin
    if rel is None:
        return HostChange(False, None, mode=resolver.mode)
    path = root / rel
    want = dropin_text(zone, dns_ip, resolver.mode)
    try:
        have = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        have = None
    if have == want:
        return HostChange(False, path, mode=resolver.mode)
    atomic_write(path, want, mode=0o644)
    return HostChange(True, path, mode=resolver.mode)


def apply(root: Path, zone: str, dns_ip: str, runner: Runner, *, ingress_ip: str | None = None,
          reload_pending: bool = False) -> HostChange:
    """Write the file for the host's resolver and reload it when the content changed (or a previous
    reload failed: ``reload_pending``); for ``manual`` hosts return the lines to print instead."""
    resolver = detect(root)
    change = write(root, zone, dns_ip, resolver)
    if change.path is None:
        return dataclasses.replace(change, fallback=fallback_lines(zone, dns_ip, ingress_ip, resolver))
    if change.changed or reload_pending:
        reload(resolver.reload, runner)
    return change


def remove(path: Path, runner: Runner, *, restart: bool, reload_argv: Sequence[str] = RESTART) -> bool:
    """Delete our file (if still there) and reload the resolver; True when something changed.

    The reload also runs when the file is already gone but ``restart`` says it is still owed (the
    caller keeps that in the DNS state until the reload succeeded), so a failed reload is retried."""
    existed = path.is_file()
    if existed:
        path.unlink()
    if restart:
        reload(reload_argv, runner)
    return existed
