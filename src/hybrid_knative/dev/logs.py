"""A function's logs: the user container of every Pod of every revision, plus the revisions' and Pods'
Events (scheduling, image pulls, cold starts, crashes) — found by Knative's own labels."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from hybrid_knative.errors import ConfigError, HybridError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef

SERVING = "serving.knative.dev/v1"
SERVICE_LABEL = "serving.knative.dev/service"
REVISION_LABEL = "serving.knative.dev/revision"
CONTAINER = "user-container"


@dataclasses.dataclass(frozen=True)
class Line:
    source: str  # "revision/pod" or "event"
    text: str

    def __str__(self) -> str:
        return f"[{self.source}] {self.text}"


def _created(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("creationTimestamp") or "")


def pods(kube: KubeApi, name: str, namespace: str) -> list[dict[str, Any]]:
    found = kube.list("v1", "Pod", namespace=namespace, labels={SERVICE_LABEL: name})
    return sorted(found, key=_created)


def _pod_source(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{(meta.get('labels') or {}).get(REVISION_LABEL, '?')}/{meta.get('name')}"


def events(kube: KubeApi, name: str, namespace: str, *, seen: set[str] | None = None) -> list[Line]:
    """Events about the service's Revisions and Pods, oldest first (each once when ``seen`` is kept)."""
    kube.register_kind(SERVING, "Revision", "revisions", namespaced=True)
    revisions = {str(r["metadata"]["name"]) for r in kube.list(SERVING, "Revision", namespace=namespace,
                                                                labels={SERVICE_LABEL: name})}
    pod_names = {str(p["metadata"]["name"]) for p in pods(kube, name, namespace)}
    subjects = revisions | pod_names | {name}
    lines = []
    for ev in sorted(kube.list("v1", "Event", namespace=namespace),
                     key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or _created(e))):
        involved = ev.get("involvedObject") or ev.get("regarding") or {}
        if involved.get("name") not in subjects and not any(
                str(involved.get("name", "")).startswith(r + "-deployment-") for r in revisions):
            continue
        uid = str((ev.get("metadata") or {}).get("uid") or (ev.get("metadata") or {}).get("name"))
        key = f"{uid}/{ev.get('count', 1)}"
        if seen is not None:
            if key in seen:
                continue
            seen.add(key)
        when = str(ev.get("lastTimestamp") or ev.get("eventTime") or "")
        lines.append(Line("event", f"{when} {ev.get('type', 'Normal')} {ev.get('reason', '')} "
                                   f"{involved.get('kind', '')}/{involved.get('name', '')}: {ev.get('message', '')}"
                          .strip()))
    return lines


def check_exists(kube: KubeApi, name: str, namespace: str) -> None:
    kube.register_kind(SERVING, "Service", "services", namespaced=True)
    if kube.get(ObjectRef(SERVING, "Service", namespace, name)) is None:
        raise ConfigError(f"there is no function (Knative Service) {namespace}/{name}",
                          resolution="check the name and --namespace (`microk8s kubectl get ksvc -A`)")


def snapshot(kube: KubeApi, name: str, namespace: str, *, tail: int | None = None) -> Iterator[Line]:
    """What is there now: each Pod's user-container log, then the Events. Scaled to zero → only Events."""
    check_exists(kube, name, namespace)
    for pod in pods(kube, name, namespace):
        source = _pod_source(pod)
        for text in kube.pod_log(namespace, str(pod["metadata"]["name"]), container=CONTAINER, tail_lines=tail):
            yield Line(source, text.rstrip("\n"))
    yield from events(kube, name, namespace)


def follow(kube: KubeApi, name: str, namespace: str, *, poll: float = 2.0, tail: int | None = 10,
           stop: Callable[[], bool] = lambda: False) -> Iterator[Line]:
    """Stream logs of every Pod as it appears (new revisions, cold starts) and new Events, until ``stop()``."""
    check_exists(kube, name, namespace)
    out: queue.Queue[Line] = queue.Queue()
    streaming: set[str] = set()  # pods being streamed now, or whose container's stream has ended
    seen: set[str] = set()

    def stream(pod_name: str, source: str) -> None:
        try:
            for text in kube.pod_log(namespace, pod_name, container=CONTAINER, follow=True, tail_lines=tail):
                out.put(Line(source, text.rstrip("\n")))
        except HybridError as exc:
            out.put(Line(source, f"(log stream ended: {exc.brief})"))

    next_poll = 0.0
    while not stop():
        now = time.monotonic()
        if now >= next_poll:
            for pod in pods(kube, name, namespace):
                pod_name = str(pod["metadata"]["name"])
                phase = (pod.get("status") or {}).get("phase")
                if pod_name in streaming or phase not in ("Running", "Succeeded", "Failed"):
                    continue
                streaming.add(pod_name)
                threading.Thread(target=stream, args=(pod_name, _pod_source(pod)), daemon=True).start()
            for line in events(kube, name, namespace, seen=seen):
                out.put(line)
            next_poll = now + poll
        try:
            yield out.get(timeout=min(poll, 0.5))
        except queue.Empty:
            continue
