"""`disable`'s half of the DNS steps: take back what they changed outside hybrid-knative's own objects
(the CoreDNS server block, the host's systemd-resolved drop-in), before any recorded object is deleted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hybrid_knative.dns import state
from hybrid_knative.install.steps.configure_cluster_dns import remove_block
from hybrid_knative.install.steps.configure_host_dns import remove_dropin
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.wait import WaitPolicy, WaitStats
from hybrid_knative.progress import Status
from hybrid_knative.system.runner import Runner


def undo_dns(kube: KubeApi, record_path: Path, status: Status, *, runner: Runner, policy: WaitPolicy,
             stats: WaitStats) -> None:
    path = state.state_path(record_path)
    current = state.load(path)
    if current.empty:
        return
    with status.step("Take back the DNS changes (CoreDNS zone block, host split DNS)"):
        if current.host_dropin:
            if remove_dropin(current, runner):
                status.detail(f"removed {current.host_dropin}")
            current = dataclasses.replace(current, host_dropin=None, restart_resolved=False, host_reload=(),
                                          reload_pending=False)
            state.save(path, current)
        if current.corefile:
            if remove_block(kube, policy=policy, stats=stats):
                status.detail("removed the hybrid-knative block from kube-system/coredns")
            state.save(path, dataclasses.replace(current, corefile=False))
        state.save(path, state.DnsState())  # hybrid-knative/host: nothing left to take back (also host_mode)
