"""The enable and disable loops: preflight, render every step, run them in order; take back in reverse."""

from __future__ import annotations

import dataclasses
import threading

from hybrid_knative import components
from hybrid_knative.catalog import Release
from hybrid_knative.components.smoke import verify_smoke_service
from hybrid_knative.config import ClusterTarget, Config
from hybrid_knative.install import user_objects as users_mod
from hybrid_knative.install.plan import INSTALLER, RenderedStep, plan, render_plan
from hybrid_knative.install.preflight import check_conflicts, check_room, host_facts, render_context
from hybrid_knative.kube import ready
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef
from hybrid_knative.kube.wait import WaitPolicy, WaitStats, retry, wait_all
from hybrid_knative.platform.component import LAST
from hybrid_knative.platform.context import Context
from hybrid_knative.platform.record import NAMESPACE_REF, load_record
from hybrid_knative.platform.undo import take_back
from hybrid_knative.progress import Status
from hybrid_knative.system import marker
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


def enable(config: Config, status: Status, *, kube: KubeApi | None = None, probes: HostProbes | None = None,
           runner: Runner | None = None) -> Outcome:
    kube = kube or connect(config)
    with kube.remembering():  # no object is read twice unless something was written or waited for
        return _enable(config, status, kube, probes=probes, runner=runner)


_STOP_GRACE = 35.0  # how long an interrupted branch may take to notice (its request's timeout, then a wait)


class _Stopped(Exception):
    """Another branch of an overlapped install failed: this one stops at its next wait or step."""


def _forgetting(kube: KubeApi, policy: WaitPolicy, stop: threading.Event | None = None) -> WaitPolicy:
    """The policy whose sleeps first drop the remembered reads, so every poll after a sleep asks the server.
    With ``stop``: a sleep ends early and raises _Stopped once it is set (an overlapped branch failed)."""
    sleep = policy.sleep

    def forget_then_sleep(seconds: float) -> None:
        kube.forget()
        if stop is None:
            sleep(seconds)
        elif stop.wait(seconds):
            raise _Stopped()

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
    # the marker exists from the first change on, as "incomplete" (system/marker.py): MicroK8s runs our
    # disable only while it exists; install/steps/mark_enabled.py says "enabled" at the end
    marker.write(config.effective_marker, marker.INCOMPLETE, release.line)
    for phase in _phases(rendered, overlap=config.overlap):
        if len(phase) == 1:
            for r in phase[0]:
                _run_step(ctx, r, kube, writes_before)
        else:
            _run_overlapped(ctx, phase, rendered)
    return Outcome(release=release, written=kube.counters.writes - writes_before, stats=ctx.stats, kube=kube,
                   smoke_url=verify_smoke_service.smoke_url(kube) if config.verify else None)


def _run_step(ctx: Context, r: RenderedStep, kube: KubeApi, writes_before: int) -> None:
    with ctx.status.step(r.step.title):
        try:
            r.step.run(dataclasses.replace(ctx, component=r.step.component, step=r.step.name), r.objects)
        finally:
            if not ctx.config.verify and kube.counters.writes > writes_before:
                ctx.record.verified = False  # changed and not proven: the next enable verifies
            ctx.record.save()  # once per step, also when it failed half-way (disable must find what it applied)


def _phases(rendered: list[RenderedStep], *, overlap: bool) -> list[list[list[RenderedStep]]]:
    """The steps as phases run one after the other; a phase of several branches runs them side by side.

    The components between the installer's first steps and the last ones (``after=("*",)``: the smoke test;
    the marker) split into branches that need nothing of each other (components.branches); each branch
    keeps install order. Without ``overlap``, or with one branch, every step runs in install order."""
    last = {c.name for c in components.all_components() if LAST in c.after} | {INSTALLER}
    middle = [i for i, r in enumerate(rendered) if r.step.component not in last]
    if not overlap or not middle:
        return [[rendered]]
    start, end = middle[0], middle[-1] + 1
    if any(rendered[i].step.component in last for i in range(start, end)):
        return [[rendered]]  # an installer step between components: keep today's order
    names = list(dict.fromkeys(r.step.component for r in rendered[start:end]))
    groups = components.branches(names)
    if len(groups) < 2:
        return [[rendered]]
    branch_of = {name: index for index, group in enumerate(groups) for name in group}
    split: list[list[RenderedStep]] = [[] for _ in groups]
    for r in rendered[start:end]:
        split[branch_of[r.step.component]].append(r)
    phases = [[rendered[:start]]] if start else []
    return [*phases, split, *([[rendered[end:]]] if end < len(rendered) else [])]


def _run_overlapped(ctx: Context, branches: list[list[RenderedStep]], rendered: list[RenderedStep]) -> None:
    """Run independent branches in threads, each with its own KubeApi connection and counters (one shared read
    memory: KubeApi.branch), status lines marked with the component, its own wait stats; the record is shared
    (locked, saved once per step) and ordered as a one-after-the-other run at the end. The first failure
    stops the other branches at their next wait or step; it is raised once every branch has ended."""
    kube, status = ctx.kube, ctx.status
    stop = threading.Event()
    failures: list[tuple[int, BaseException]] = []
    lock = threading.Lock()
    clients = [kube.branch() for _ in branches]
    stats = [WaitStats() for _ in branches]

    def run_branch(index: int) -> None:
        client, steps = clients[index], branches[index]
        out = status.branch(steps[0].step.component)
        branch_ctx = dataclasses.replace(ctx, kube=client, status=out, stats=stats[index], writes_before=0,
                                         waits=_forgetting(client, wait_policy(ctx.config), stop))
        try:
            for r in steps:
                if stop.is_set():
                    raise _Stopped()
                out.label = r.step.component
                _run_step(branch_ctx, r, client, 0)
        except BaseException as exc:  # handed to the caller's thread below
            with lock:
                failures.append((index, exc))
            stop.set()

    titles = " | ".join(", ".join(dict.fromkeys(r.step.component for r in steps)) for steps in branches)
    order = {r.step.name: index for index, r in enumerate(rendered)}
    threads = [threading.Thread(target=run_branch, args=(index,), name=f"enable-branch-{index}", daemon=True)
               for index in range(len(branches))]
    with status.step(f"Install side by side: {titles}"), ctx.record.overlapping(order):
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
        except BaseException:  # Ctrl-C here: stop every branch at its next wait or step, then give up
            stop.set()
            for thread in threads:
                thread.join(_STOP_GRACE)
            raise
        finally:
            for client, branch_stats in zip(clients, stats, strict=True):
                kube.absorb(client)
                ctx.stats.waits += branch_stats.waits
                ctx.stats.polls += branch_stats.polls
                ctx.stats.retries += branch_stats.retries
        real = [exc for _, exc in failures if not isinstance(exc, _Stopped)]
        if real:
            for index, exc in failures:
                if isinstance(exc, _Stopped):
                    status.warn(f"stopped {', '.join(dict.fromkeys(r.step.component for r in branches[index]))}: "
                                "another component failed")
            raise real[0]


def disable(config: ClusterTarget, status: Status, *, kube: KubeApi | None = None,
            runner: Runner | None = None, user_objects: str | None = None,
            delete_user_models: bool = False) -> Outcome:
    """Take back every recorded change (newest first), delete every recorded object (reverse rank order),
    then the record itself, then the marker. Works from any node: the record is read from the cluster.

    Deleting a CRD deletes every object of its kind: when users' objects of any component's CRDs exist
    (KServices, Brokers, Triggers, InferenceServices…), nothing is touched unless ``user_objects`` says
    ``destroy`` (deleted first, while their controllers run) or ``keep`` (the CRDs stay).
    ``delete_user_models`` is the older name of ``destroy``."""
    if delete_user_models and user_objects is None:
        user_objects = users_mod.DESTROY
    kube = kube or connect(config)
    record = load_record(config, kube)
    users = users_mod.check(kube, record, user_objects)  # refuses before any change
    # "incomplete" until the teardown is done, so a failed `microk8s disable` can be re-run
    if marker.read(config.effective_marker) is not None:
        marker.write(config.effective_marker, marker.INCOMPLETE, record.release)
    if not len(record):
        status.info("Nothing recorded for this cluster: nothing to remove")
        marker.remove(config.effective_marker)
        return Outcome(kube=kube)
    policy = wait_policy(config)
    stats = WaitStats()
    writes_before = kube.counters.writes
    if user_objects == users_mod.DESTROY:  # before their controllers go, so their finalizers run
        users_mod.destroy(kube, users, status=status, policy=policy, stats=stats)
    keep = users_mod.kept(record.delete_order(), user_objects)
    entries = [e for e in record.delete_order() if e not in keep]
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
        if keep:  # the kept CRDs stay recorded: a later enable or `disable --destroy-user-objects` finds them
            record.save()
        else:
            record.clear()  # the record in the cluster, its namespace, the local cache
            awaited.append(NAMESPACE_REF)
    with status.step("Wait for namespaces and CRDs to be gone"):
        wait_all({str(ref): ready.gone(kube, ref) for ref in awaited}, policy=policy, stats=stats,
                 on_progress=status.note,
                 resolution="something holds a finalizer; see `microk8s kubectl get ns` and "
                 "`microk8s kubectl get crd | grep knative`")
    if keep:
        status.info(f"Kept {len(keep)} CRDs and every object of them (--keep-user-objects); "
                    "`hybrid-knative enable` brings their controllers back")
    with status.step("Mark hybrid-knative disabled"):
        marker.remove(config.effective_marker)  # last: until here `microk8s disable` must still run our script
    return Outcome(written=kube.counters.writes - writes_before, stats=stats, kube=kube)

