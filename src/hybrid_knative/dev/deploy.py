"""deploy and delete: check the cluster → build → push (digest) → render → apply only what changed →
wait Ready → prove the URL answers. Nothing is applied before every image is built and pushed, and a
failed apply removes what this run created."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

from hybrid_knative.dev.invoke import Reply, Resolver, answered, dns_lookup, send, target_for
from hybrid_knative.dev.project import Function, Project
from hybrid_knative.dev.registry import Registry
from hybrid_knative.dev.render import FUNCTION_LABEL, KINDS, PROJECT_LABEL, SERVING, render
from hybrid_knative.errors import ConfigError, DeadlineExceeded, HybridError, PermanentError, TemporaryError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest, ObjectRef, ref_of
from hybrid_knative.kube.ready import condition, describe, generation_pending
from hybrid_knative.progress import Status
from hybrid_knative.system.buildah import Buildah

CRDS = {
    "Service": "services.serving.knative.dev",
    "Trigger": "triggers.eventing.knative.dev",
    "PingSource": "pingsources.sources.knative.dev",
    "KafkaSource": "kafkasources.sources.knative.dev",
}
INSTALL = {
    "Service": "Knative Serving is not installed: run `sudo microk8s enable hybrid-knative` (or "
               "`sudo hybrid-knative enable`)",
    "Trigger": "Knative Eventing is not installed: run enable with --eventing (the default)",
    "PingSource": "Knative Eventing is not installed: run enable with --eventing (the default)",
    "KafkaSource": "the cluster has no KafkaSource (Knative's Kafka source is not part of hybrid-knative): install "
                   "eventing-kafka-source.yaml from knative-extensions/eventing-kafka-broker (a release matching "
                   "your Knative), and a Kafka cluster; or drop the `kafka` event",
}


@dataclasses.dataclass(frozen=True)
class DeployOptions:
    timeout: float = 300.0
    poll_interval: float = 1.0
    verify_url: bool = True
    only: str | None = None  # one function's name


@dataclasses.dataclass
class DeployOutcome:
    images: dict[str, str] = dataclasses.field(default_factory=dict)  # function → image@sha256
    written: list[ObjectRef] = dataclasses.field(default_factory=list)
    unchanged: list[ObjectRef] = dataclasses.field(default_factory=list)
    pruned: list[ObjectRef] = dataclasses.field(default_factory=list)
    urls: dict[str, str] = dataclasses.field(default_factory=dict)  # Knative Service → URL
    answers: dict[str, str] = dataclasses.field(default_factory=dict)  # Knative Service → how it answered


def register_kinds(kube: KubeApi) -> None:
    for api_version, kind, plural in KINDS:
        kube.register_kind(api_version, kind, plural, namespaced=True)
    kube.register_kind("eventing.knative.dev/v1", "Broker", "brokers", namespaced=True)


def selected(project: Project, only: str | None) -> list[Function]:
    return [project.function(only)] if only else list(project.functions)


def preflight(kube: KubeApi, project: Project, functions: Iterable[Function]) -> None:
    """Read-only: every kind the project needs is served, and the Broker its Triggers use exists."""
    register_kinds(kube)
    needed = {"Service"}
    brokers: set[str] = set()
    for fn in functions:
        for event in fn.events:
            needed.add({"custom": "Trigger", "cron": "PingSource", "kafka": "KafkaSource"}[event.kind])
            if event.kind == "custom":
                brokers.add(str(event.spec.get("broker", "default")))
    missing = []
    for kind in sorted(needed):
        crd = kube.get(ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, CRDS[kind]))
        if crd is None:
            missing.append(INSTALL[kind])
    if missing:
        raise ConfigError("the cluster lacks what this project needs; nothing was built or deployed",
                          details="\n".join(dict.fromkeys(missing)),
                          resolution=missing[0].split(": ", 1)[-1])
    for broker in sorted(brokers):
        if kube.get(ObjectRef("eventing.knative.dev/v1", "Broker", project.namespace, broker)) is None:
            raise ConfigError(f"there is no Broker {project.namespace}/{broker} for the project's `custom` events",
                              resolution=f"enable hybrid-knative with --broker-namespace {project.namespace}, or "
                              "create the Broker (`kn broker create default`)")


def build_and_push(project: Project, functions: Iterable[Function], buildah: Buildah, registry: Registry,
                   status: Status) -> dict[str, str]:
    """Build every function that has a Dockerfile and push it; function name → pull reference by digest."""
    images: dict[str, str] = {}
    todo = [fn for fn in functions if fn.image is None]
    if todo:
        buildah.check_available()
    for fn in todo:
        assert fn.context is not None and fn.dockerfile is not None
        local = f"localhost/hybrid-knative/{project.namespace}/{fn.service}:build"
        started = time.monotonic()
        with status.step(f"Build {fn.service}"):
            buildah.bud(fn.context, fn.dockerfile, local)
        status.detail(f"built in {time.monotonic() - started:.1f} s")
        repo = f"{project.namespace}/{fn.service}"
        with status.step(f"Push {fn.service} to {registry.push}"):
            digest = buildah.push(local, f"{registry.push}/{repo}:latest")
        images[fn.name] = f"{registry.pull}/{repo}@{digest}"
        status.info(f"  {images[fn.name]}")
    return images


def contains(live: Any, desired: Any) -> bool:
    """Every field we set has the same value in the live object (servers add defaults around them)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(k in live and contains(live[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(live) == len(desired) and all(
            contains(a, b) for a, b in zip(live, desired, strict=True))
    return bool(live == desired)


def apply_changes(kube: KubeApi, objs: list[Manifest], outcome: DeployOutcome, status: Status) -> None:
    """Apply what differs from the live objects; on failure delete what this run created, then re-raise."""
    created: list[ObjectRef] = []
    try:
        for obj in objs:
            ref = ref_of(obj)
            live = kube.get(ref)
            if live is not None and contains(live, {k: obj[k] for k in ("metadata", "spec")}):
                outcome.unchanged.append(ref)
                status.detail(f"unchanged {ref}")
                continue
            kube.apply(obj)
            outcome.written.append(ref)
            if live is None:
                created.append(ref)
            status.detail(f"applied {ref}")
    except Exception:  # whatever failed (API refusal, transport, a bug): undo this run's creations, re-raise
        for ref in reversed(created):
            try:
                kube.delete(ref)
            except HybridError as exc:  # keep the first error; say what could not be undone
                status.warn(f"could not remove {ref} after the failure: {exc.brief}")
        raise


def owned(kube: KubeApi, project: Project, function: str | None = None) -> list[Manifest]:
    """The live objects deploy made for this project (by label), in apply order."""
    register_kinds(kube)
    selector = {PROJECT_LABEL: project.name}
    if function:
        selector[FUNCTION_LABEL] = function
    found = []
    for api_version, kind, _ in KINDS:
        try:
            items = kube.list(api_version, kind, namespace=project.namespace, labels=selector)
        except PermanentError:  # 404: the cluster does not serve this kind (e.g. no KafkaSource), so none exist
            continue
        found += [{**o, "apiVersion": api_version, "kind": kind} for o in items]
    return found


def prune(kube: KubeApi, project: Project, functions: list[Function], keep: list[Manifest],
          outcome: DeployOutcome, status: Status) -> None:
    """Remove objects of these functions that the project no longer describes (e.g. a dropped event)."""
    wanted = {ref_of(o) for o in keep}
    for fn in functions:
        for obj in reversed(owned(kube, project, fn.name)):
            ref = ref_of(obj)
            if ref not in wanted:
                kube.delete(ref)
                outcome.pruned.append(ref)
                status.detail(f"removed {ref} (no longer in {project.source.name})")


def wait_ready(kube: KubeApi, ref: ObjectRef, *, timeout: float, interval: float,
               sleep: Callable[[float], None] = time.sleep) -> str:
    """Wait until the Knative Service is Ready for its current generation; return its URL. Fails fast on
    Ready=False (Knative's verdict after a failed rollout)."""
    deadline = time.monotonic() + timeout
    last = "not found"
    while True:
        obj = kube.get(ref)
        if obj is not None:
            pending = generation_pending(obj)
            ready = condition(obj, "Ready")
            if pending is None and ready is not None and ready.get("status") == "True":
                return str((obj.get("status") or {}).get("url") or "")
            if pending is None and ready is not None and ready.get("status") == "False":
                raise PermanentError(f"{ref.namespace}/{ref.name} did not become Ready: {describe(ready, 'Ready')}")
            last = pending or describe(ready, "Ready")
        if time.monotonic() + interval > deadline:
            raise DeadlineExceeded(f"{ref.namespace}/{ref.name} was not Ready after {timeout:g}s: {last}")
        sleep(interval)


def wait_answers(kube: KubeApi, url: str, *, timeout: float, interval: float, resolver: Resolver,
                 sleep: Callable[[float], None] = time.sleep) -> Reply:
    """GET the URL (DNS, else the ingress with a Host header) until the function itself answers."""
    deadline = time.monotonic() + timeout
    target = target_for(kube, url, resolver=resolver)
    last = ""
    while True:
        try:
            reply = send(target, method="GET", timeout=max(1.0, min(30.0, deadline - time.monotonic())))
            if answered(reply):
                return reply
            last = f"HTTP {reply.status} from the gateway"
        except TemporaryError as exc:
            last = str(exc.details or exc.brief)
        if time.monotonic() + interval > deadline:
            raise DeadlineExceeded(f"{url} did not answer within {timeout:g}s via {target.how}", details=last)
        sleep(interval)


def deploy(project: Project, kube: KubeApi, buildah: Buildah, registry: Registry | None, status: Status,
           options: DeployOptions = DeployOptions(), *, resolver: Resolver = dns_lookup) -> DeployOutcome:
    functions = selected(project, options.only)
    outcome = DeployOutcome()
    for note in project.notes:
        status.info(f"note: {note}")
    preflight(kube, project, functions)
    if any(fn.image is None for fn in functions):
        if registry is None:
            raise ConfigError("no registry to push to", resolution="pass --registry HOST[:PORT]")
        outcome.images = build_and_push(project, functions, buildah, registry, status)
    sub = dataclasses.replace(project, functions=tuple(functions))
    objs = render(sub, outcome.images)
    with status.step(f"Apply {len(objs)} objects to namespace {project.namespace}"):
        apply_changes(kube, objs, outcome, status)
        prune(kube, project, functions, objs, outcome, status)
    for fn in functions:
        ref = ObjectRef(SERVING, "Service", project.namespace, fn.service)
        with status.step(f"Wait for {fn.service} to be Ready"):
            outcome.urls[fn.service] = wait_ready(kube, ref, timeout=options.timeout, interval=options.poll_interval)
        if options.verify_url and outcome.urls[fn.service]:
            with status.step(f"Check that {outcome.urls[fn.service]} answers"):
                reply = wait_answers(kube, outcome.urls[fn.service], timeout=options.timeout,
                                     interval=options.poll_interval, resolver=resolver)
            outcome.answers[fn.service] = f"HTTP {reply.status} via {reply.target.how}"
    return outcome


def delete(project: Project, kube: KubeApi, status: Status, *, only: str | None = None) -> list[ObjectRef]:
    """Remove exactly what deploy made for the project (found by its labels), Sources and Triggers first."""
    removed = []
    for obj in reversed(owned(kube, project, project.function(only).name if only else None)):
        ref = ref_of(obj)
        if kube.delete(ref):
            removed.append(ref)
            status.detail(f"deleted {ref}")
    return removed
