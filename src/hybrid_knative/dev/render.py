"""The Knative objects of a project: a Service per function (image by digest), Triggers, PingSources,
KafkaSources. Pure: a Project + the pushed images in, plain dicts out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hybrid_knative.dev.project import Event, Function, Project
from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.objects import Manifest

SERVING = "serving.knative.dev/v1"
EVENTING = "eventing.knative.dev/v1"
SOURCES = "sources.knative.dev/v1"
KAFKA_SOURCES = "sources.knative.dev/v1beta1"
PROJECT_LABEL = "hybrid-knative.dev/project"
FUNCTION_LABEL = "hybrid-knative.dev/function"
# Every kind deploy may create, in apply order (delete goes in reverse).
KINDS: tuple[tuple[str, str, str], ...] = (
    (SERVING, "Service", "services"),
    (EVENTING, "Trigger", "triggers"),
    (SOURCES, "PingSource", "pingsources"),
    (KAFKA_SOURCES, "KafkaSource", "kafkasources"),
)


def labels(project: Project, fn: Function) -> dict[str, str]:
    return {PROJECT_LABEL: project.name, FUNCTION_LABEL: fn.name}


def image_ref(fn: Function, pushed: Mapping[str, str]) -> str:
    if fn.image is not None:
        return fn.image
    try:
        return pushed[fn.name]
    except KeyError:
        raise ConfigError(f"internal: no pushed image for {fn.name}") from None


def ksvc(project: Project, fn: Function, image: str) -> Manifest:
    annotations: dict[str, str] = {}
    for key, value in (("min-scale", fn.min_scale), ("max-scale", fn.max_scale), ("initial-scale", fn.initial_scale)):
        if value is not None:
            annotations[f"autoscaling.knative.dev/{key}"] = str(value)
    container: dict[str, Any] = {"image": image}
    if fn.env:
        container["env"] = [{"name": k, "value": v} for k, v in fn.env]
    if fn.port:
        container["ports"] = [{"containerPort": fn.port}]
    if fn.gpu:
        resource, count = fn.gpu
        container["resources"] = {"limits": {resource: str(count)}}
    spec: dict[str, Any] = {"containers": [container]}
    if fn.concurrency is not None:
        spec["containerConcurrency"] = fn.concurrency
    if fn.timeout is not None:
        spec["timeoutSeconds"] = fn.timeout
    template: dict[str, Any] = {"spec": spec}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    return {"apiVersion": SERVING, "kind": "Service",
            "metadata": {"name": fn.service, "namespace": project.namespace, "labels": labels(project, fn)},
            "spec": {"template": template}}


def _sink(fn: Function) -> dict[str, Any]:
    return {"ref": {"apiVersion": SERVING, "kind": "Service", "name": fn.service}}


def event_object(project: Project, fn: Function, event: Event, index: int) -> Manifest:
    meta = {"name": f"{fn.service}-{event.kind}-{index}", "namespace": project.namespace,
            "labels": labels(project, fn)}
    if event.kind == "custom":
        spec: dict[str, Any] = {"broker": str(event.spec.get("broker", "default")), "subscriber": _sink(fn)}
        attributes = dict((event.spec.get("filter") or {}).get("attributes") or {})
        if attributes:
            spec["filter"] = {"attributes": {str(k): str(v) for k, v in attributes.items()}}
        return {"apiVersion": EVENTING, "kind": "Trigger", "metadata": meta, "spec": spec}
    if event.kind == "cron":
        spec = {"schedule": str(event.spec["schedule"]), "sink": _sink(fn)}
        data = event.spec.get("data")
        if data is not None:
            spec["data"] = data if isinstance(data, str) else json.dumps(data, sort_keys=True)
            spec["contentType"] = "application/json" if _is_json(spec["data"]) else "text/plain"
        if event.spec.get("timezone"):
            spec["timezone"] = str(event.spec["timezone"])
        return {"apiVersion": SOURCES, "kind": "PingSource", "metadata": meta, "spec": spec}
    if event.kind == "kafka":
        spec = {"bootstrapServers": list(event.spec["bootstrapServers"]), "topics": list(event.spec["topics"]),
                "sink": _sink(fn)}
        if event.spec.get("consumerGroup"):
            spec["consumerGroup"] = str(event.spec["consumerGroup"])
        return {"apiVersion": KAFKA_SOURCES, "kind": "KafkaSource", "metadata": meta, "spec": spec}
    raise ConfigError(f"unknown event kind {event.kind!r}")


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def render(project: Project, pushed: Mapping[str, str]) -> list[Manifest]:
    """All objects, in apply order: the Services first (their Triggers/sources point at them)."""
    services = [ksvc(project, fn, image_ref(fn, pushed)) for fn in project.functions]
    events = [event_object(project, fn, event, index)
              for fn in project.functions for index, event in enumerate(fn.events)]
    return services + events
