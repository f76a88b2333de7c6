"""What hybrid-knative changed outside its own objects for DNS (the CoreDNS block, the host drop-in),
kept beside the install record so that `disable` takes back exactly that."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hybrid_knative.errors import PermanentError
from hybrid_knative.system.files import atomic_write


@dataclasses.dataclass(frozen=True)
class DnsState:
    corefile: bool = False  # our server block is in kube-system/coredns
    host_dropin: str | None = None  # absolute path of the systemd-resolved drop-in we wrote
    restart_resolved: bool = False  # reload the host's resolver after removing it
    host_reload: tuple[str, ...] = ()  # how (systemctl restart systemd-resolved, nmcli general reload dns-full)
    reload_pending: bool = False  # the file was written but its reload has not succeeded yet
    host_mode: str | None = None  # what hostdns.detect found: resolved, nm-dnsmasq or manual

    @property
    def empty(self) -> bool:
        return not self.corefile and self.host_dropin is None and self.host_mode is None


def state_path(record_path: Path) -> Path:
    """``dns-<key>.json`` beside the record ``record-<key>.json`` of the same cluster."""
    return record_path.with_name("dns-" + record_path.name.removeprefix("record-"))


def load(path: Path) -> DnsState:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DnsState()
    except (OSError, ValueError) as exc:
        raise PermanentError(f"the DNS state {path} is unreadable: {exc}",
                             resolution="move it aside and run `sudo hybrid-knative repair`") from None
    return DnsState(corefile=bool(doc.get("corefile")), host_dropin=doc.get("host_dropin") or None,
                    restart_resolved=bool(doc.get("restart_resolved")),
                    host_reload=tuple(str(a) for a in doc.get("host_reload") or ()),
                    reload_pending=bool(doc.get("reload_pending")), host_mode=doc.get("host_mode") or None)


def save(path: Path, state: DnsState) -> None:
    if state.empty:
        path.unlink(missing_ok=True)
        return
    atomic_write(path, json.dumps(dataclasses.asdict(state), indent=1, sort_keys=True) + "\n", mode=0o600)
