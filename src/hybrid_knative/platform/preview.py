"""What `plan` shows besides a step's objects: patches to objects we do not own, host files with their
content, commands. A step module may define ``preview(rc, kube) -> list[Change]``; ``kube`` is the
live cluster (read-only: only GETs) or None for a dry run without one."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
from typing import Any, Literal

from hybrid_knative.dns import ingress
from hybrid_knative.errors import HybridError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest, ObjectRef, ref_of
from hybrid_knative.manifests import dump
from hybrid_knative.system.network import hostname

What = Literal["object", "patch", "host-file", "command", "note"]
Action = Literal["create", "update", "unchanged", "run", "skip", ""]  # "": not compared (no cluster)


@dataclasses.dataclass(frozen=True)
class Change:
    what: What
    target: str  # "ConfigMap kube-system/coredns (Corefile)", a host path, a command line
    content: str  # YAML of the object or patch, the file's content, the command
    action: Action = ""
    diff: str = ""  # unified diff against the live state, when known

    def render(self) -> str:
        head = f"# {self.what}: {self.target}" + (f" [{self.action}]" if self.action else "")
        body = self.content if self.content.endswith("\n") else self.content + "\n"
        out = f"{head}\n{body}"
        if self.diff:
            out += f"# diff against the live state:\n{self.diff}"
        return out


def unified(before: str, after: str, name: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"{name} (live)", tofile=f"{name} (after enable)"))


def contained(want: Any, have: Any) -> bool:
    """Every field of ``want`` has the same value in ``have`` (what server-side apply would leave alone)."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(contained(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(
            contained(w, h) for w, h in zip(want, have, strict=True))
    return bool(want == have)


def compare(obj: Manifest, live: dict[str, Any] | None) -> Action:
    """create / update / unchanged for an object (or a patch) against its live version."""
    if live is None:
        return "create"
    want = {k: v for k, v in obj.items() if k != "status"}
    return "unchanged" if contained(want, live) else "update"


def as_yaml(obj: Any) -> str:
    return dump(obj)


def object_change(obj: Manifest, live: dict[str, Any] | None, *, compared: bool, what: What = "object") -> Change:
    ref = ref_of(obj)
    action = compare(obj, live) if compared else ""
    if what == "patch" and action == "create":
        action = "update"  # a patch onto an object an earlier step creates
    return Change(what, str(ref), as_yaml(obj), action)


def planned_ingress_ip(config_ip: str | None, kube: KubeApi | None) -> str:
    """The address the ingress would get: --ingress-ip, the live one, the node's InternalIP, or a placeholder."""
    if config_ip:
        return config_ip
    if kube is None:
        return "<ingress address: this node's InternalIP>"
    try:
        ip = ingress.current(kube) or ingress.node_ip(kube.list("v1", "Node"), hostname())
    except HybridError:
        ip = None
    return ip or "<ingress address: this node's InternalIP>"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def live_get(kube: KubeApi | None, ref: ObjectRef) -> dict[str, Any] | None:
    if kube is None:
        return None
    try:
        return kube.get(ref)
    except HybridError:
        return None
