"""Taking back one typed undo entry (platform/record.py). Every action is idempotent: running it again
after a disable that stopped half-way changes nothing more."""

from __future__ import annotations

from pathlib import Path

from hybrid_knative.dns import corefile, hostdns
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.wait import WaitPolicy, WaitStats, retry
from hybrid_knative.platform.context import Context
from hybrid_knative.platform.record import CorefileBlock, HostFile, MergePatch, MicroK8sAddon, NodeLabels, Undo
from hybrid_knative.progress import Status
from hybrid_knative.system.network import hostname
from hybrid_knative.system.runner import Runner

COREFILE_KEY = "Corefile"


def take_back(undo: Undo, *, kube: KubeApi, runner: Runner, status: Status, policy: WaitPolicy,
              stats: WaitStats) -> bool:
    """Apply ``undo``; True when something was changed."""
    action = undo.action
    if isinstance(action, MergePatch):
        kube.register_kind(action.ref.api_version, action.ref.kind, action.plural, namespaced=action.namespaced)
        return _patch(kube, action.ref, action.patch, policy=policy, stats=stats)
    if isinstance(action, NodeLabels):
        meta = {part: values for part, values in (("labels", action.labels), ("annotations", action.annotations))
                if values}
        return _patch(kube, ObjectRef("v1", "Node", None, action.node), {"metadata": meta}, policy=policy,
                      stats=stats)
    if isinstance(action, CorefileBlock):
        return remove_corefile_block(kube, ObjectRef("v1", "ConfigMap", action.namespace, action.name),
                                     policy=policy, stats=stats)
    if isinstance(action, HostFile):
        if action.host != hostname():
            reload = " ".join(action.reload or hostdns.RESTART)
            status.warn(f"{action.path} was written on host {action.host}, not this one: remove it there by hand"
                        + (f" and run `{reload}`" if action.restart_resolved else ""))
            return False
        return hostdns.remove(Path(action.path), runner, restart=action.restart_resolved or action.reload_pending,
                              reload_argv=action.reload or hostdns.RESTART)
    if isinstance(action, MicroK8sAddon):
        status.info(f"{action.addon} support came from MicroK8s's {action.addon} addon and is left enabled (other "
                    f"workloads may use it); to remove it too: sudo microk8s disable {action.addon}")
        return False
    raise AssertionError(f"unhandled undo action {action!r}")


def take_back_now(ctx: Context, key: str) -> bool:
    """A step takes back an earlier change of its own (e.g. the CoreDNS block when leaving local mode),
    then forgets the undo entry."""
    undo = ctx.record.undo(key)
    if undo is None:
        return False
    changed = take_back(undo, kube=ctx.kube, runner=ctx.runner, status=ctx.status, policy=ctx.waits,
                        stats=ctx.stats)
    ctx.record.remove_undo(key)
    ctx.record.save()
    return changed


def _patch(kube: KubeApi, ref: ObjectRef, patch: dict[str, object], *, policy: WaitPolicy, stats: WaitStats) -> bool:
    if kube.get(ref) is None:
        return False
    retry(lambda: kube.merge_patch(ref, patch), policy=policy, what=f"restore {ref}", stats=stats)
    return True


def remove_corefile_block(kube: KubeApi, ref: ObjectRef, *, policy: WaitPolicy, stats: WaitStats) -> bool:
    """Cut our server block out of the live Corefile (the ConfigMap itself stays); True if written."""
    live = kube.get(ref)
    text = ((live or {}).get("data") or {}).get(COREFILE_KEY)
    if not isinstance(text, str):
        return False
    left = corefile.without_ours(text)
    if left == text:
        return False
    retry(lambda: kube.merge_patch(ref, {"data": {COREFILE_KEY: left}}), policy=policy, what=f"restore {ref}",
          stats=stats)
    return True
