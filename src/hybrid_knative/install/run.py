"""The enable and disable loops: preflight, render every step, run them in order; take back in reverse."""

from __future__ import annotations

import dataclasses

from hybrid_knative.catalog import Release
from hybrid_knative.components.smoke import verify_smoke_service
from hybrid_knative.config import ClusterTarget, Config
from hybrid_knative.errors import ConfigError
from hybrid_knative.install.plan import plan, render_plan
from hybrid_knative.install.preflight import check_conflicts, check_room, host_facts, render_context
from hybrid_knative.kube import ready
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.wait import WaitPolicy, WaitStats, retry, wait_all
from hybrid_knative.ml.cluster import users_inference_services
from hybrid_knative.platform.context import Context
from hybrid_knative.platform.record import NAMESPACE_REF, Record, record_path
from hybrid_knative.platform.undo import take_back
from hybrid_knative.progress import Status
from hybrid_knative.system.http import HostProbes
from hybrid_knative.system.runner import Runner


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a command did, for the CLI to print and for tests/benchmarks to inspect."""

    release: Release | None = None
    written: int = 0
    stats: WaitStats = dataclasses.field(default_factory=WaitStats)
    kube: KubeApi | None = None
    smoke_url: str | None = None  # the verified smoke service's URL (enable with verify)


def wait_policy(config: ClusterTarget) -> WaitPolicy:
    """Polls start at a quarter of --poll-interval and back off to it (1 s by default), never beyond: a
    wait notices readiness within about a second (issue 13: 5 s steps made every wait ≈2.5 s late)."""
    return WaitPolicy(timeout=config.wait_timeout, interval=config.poll_interval / 4,
                      max_interval=config.poll_interval)


def connect(config: ClusterTarget) -> KubeApi:
    return KubeApi.connect(config.effective_kubeconfig, config.context)


def load_record(config: ClusterTarget, kube: KubeApi) -> Record:
    """The cluster's record (ConfigMap hybrid-knative-system/hybrid-knative-record); the local file is a cache."""
    path = record_path(config.effective_state_dir, kube.server, kube.context)
    return Record.load(path, server=kube.server, cluster=kube)


def enable(config: Config, status: Status, *, kube: KubeApi | None = None, probes: HostProbes | None = None,
           runner: Runner | None = None) -> Outcome:
    kube = kube or connect(config)
    with kube.remembering():  # no object is read twice unless something was written or waited for
        return _enable(config, status, kube, probes=probes, runner=runner)


def _forgetting(kube: KubeApi, policy: WaitPolicy) -> WaitPolicy:
    """The policy whose sleeps first drop the remembered reads, so every poll after a sleep asks the server."""
    sleep = policy.sleep

    def forget_then_sleep(seconds: float) -> None:
        kube.forget()
        sleep(seconds)

    return dataclasses.replace(policy, sleep=forget_then_sleep)


def _enable(config: Config, status: Status, kube: KubeApi, *, probes: HostProbes | None,
            runner: Runner | None) -> Outcome:
    version = kube.server_version()  # read-only preflight: nothing is written before this passes
    status.detail(f"API server {kube.server} runs Kubernetes {version}")
    rc = render_context(config, version, status, host_facts(config, kube, status))
    release, rendered = rc.release, render_plan(plan(config, rc.host), rc)
    status.info(f"Installing Knative {release.line} (Kubernetes {version.minor_version})")
    record = load_record(config, kube)
    check_conflicts(kube, record, config)
    check_room(kube, [o for r in rendered if r.step.applies for o in r.objects], record, status)
    record.release = release.line
    for r in rendered:  # CRD kinds must be known before their objects can be applied
        kube.register_crds(o for o in r.objects if o["kind"] == "CustomResourceDefinition")
    writes_before = kube.counters.writes
    ctx = Context(render=rc, kube=kube, record=record, status=status, runner=runner or Runner(),
                  waits=_forgetting(kube, wait_policy(config)), probes=probes or HostProbes(),
                  writes_before=writes_before)
    for r in rendered:
        with status.step(r.step.title):
            try:
                r.step.run(dataclasses.replace(ctx, component=r.step.component, step=r.step.name), r.objects)
            finally:
                if not config.verify and kube.counters.writes > writes_before:
                    record.verified = False  # changed and not proven: the next enable verifies
                record.save()  # once per step, also when it failed half-way (disable must find what it applied)
    return Outcome(release=release, written=kube.counters.writes - writes_before, stats=ctx.stats, kube=kube,
                   smoke_url=verify_smoke_service.smoke_url(kube) if config.verify else None)


def disable(config: ClusterTarget, status: Status, *, kube: KubeApi | None = None,
            runner: Runner | None = None, delete_user_models: bool = False) -> Outcome:
    """Take back every recorded change (newest first), delete every recorded object (reverse rank order),
    then the record itself. Works from any node: the record is read from the cluster.

    Deleting KServe's CRDs would delete the users' InferenceServices with them: when there are any,
    nothing is touched unless ``delete_user_models`` says so explicitly."""
    if not delete_user_models:
        kube = kube or connect(config)
        keep_users_models(kube, load_record(config, kube))
    marker = config.effective_marker
    with status.step("Mark hybrid-knative disabled"):
        marker.unlink(missing_ok=True)  # first: MicroK8s must never see "enabled" while we tear down
    kube = kube or connect(config)
    record = load_record(config, kube)
    if not len(record):
        status.info("Nothing recorded for this cluster: nothing to remove")
        return Outcome(kube=kube)
    policy = wait_policy(config)
    stats = WaitStats()
    entries = record.delete_order()
    writes_before = kube.counters.writes
    undos = record.undos
    if undos:
        with status.step(f"Take back {len(undos)} changes to things hybrid-knative does not own"):
            for undo in undos:  # idempotent: an interrupted disable re-runs them harmlessly
                changed = take_back(undo, kube=kube, runner=runner or Runner(), status=status, policy=policy,
                                    stats=stats)
                record.remove_undo(undo.key)
                status.detail(f"{'took back' if changed else 'nothing to take back for'} {undo.key}")
    awaited: list[ObjectRef] = []
    with status.step(f"Remove {len(entries)} objects hybrid-knative created"):
        for index, entry in enumerate(entries, start=1):
            kube.register_kind(entry.ref.api_version, entry.ref.kind, entry.plural, namespaced=entry.namespaced)
            status.note(f"deleting {index}/{len(entries)}: {entry.ref}")
            retry(lambda ref=entry.ref: kube.delete(ref), policy=policy, what=f"delete {entry.ref}",  # type: ignore[misc]
                  stats=stats)
            if entry.ref.kind in ("Namespace", "CustomResourceDefinition"):
                awaited.append(entry.ref)
            record.remove(entry.ref)
            status.detail(f"deleted {entry.ref}")
        record.clear()  # the record in the cluster, its namespace, the local cache
        awaited.append(NAMESPACE_REF)
    with status.step("Wait for namespaces and CRDs to be gone"):
        wait_all({str(ref): ready.gone(kube, ref) for ref in awaited}, policy=policy, stats=stats,
                 on_progress=status.note,
                 resolution="something holds a finalizer; see `microk8s kubectl get ns` and "
                 "`microk8s kubectl get crd | grep knative`")
    return Outcome(written=kube.counters.writes - writes_before, stats=stats, kube=kube)


ISVC_CRD = ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "inferenceservices.serving.kserve.io")


def keep_users_models(kube: KubeApi, record: Record) -> None:
    """Refuse (before any change) to delete KServe's CRDs while users' InferenceServices exist."""
    if record.get(ISVC_CRD) is None:
        return
    found = users_inference_services(kube)
    if found:
        names = [f"{(i.get('metadata') or {}).get('namespace')}/{(i.get('metadata') or {}).get('name')}"
                 for i in found]
        raise ConfigError(
            f"{len(found)} InferenceService(s) of yours would be deleted with KServe's CRDs: nothing was changed",
            details="\n".join(names[:20]),
            resolution="delete them yourself (`microk8s kubectl delete inferenceservice -n NS NAME`), or say so: "
            "`hybrid-knative disable --delete-user-models` (models in the store are kept either way)")
