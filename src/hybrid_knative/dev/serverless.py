"""Serverless Framework projects with ``provider: name: knative`` read through the same model, unchanged.

serverless-knative's conventions: each function's ``handler`` is a Dockerfile (built in ``context``)
or an image reference (it contains ``:``); the Knative Service is named ``<service>-<function>``;
``events``: ``custom`` → a Trigger on the default Broker (its ``filter``), ``cron`` → a source that
posts ``data`` on ``schedule`` (CronJobSource then, PingSource now), ``kafka`` → a KafkaSource.
Docker Hub credentials (``provider.docker``) are not needed: images go to the cluster's registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hybrid_knative.dev.project import (
    CLOUD_ONLY_EVENTS,
    Function,
    Project,
    _fail,
    check_semantics,
    function_from,
    line_of,
)

Lines = Mapping[tuple[Any, ...], int]


def translate(data: Any, lines: Lines, path: Path) -> Project:
    errors: list[str] = []

    def err(at: tuple[Any, ...], text: str) -> None:
        errors.append(f"{path}:{line_of(lines, at)}: {'.'.join(map(str, at)) or '(top level)'}: {text}")

    if not isinstance(data, dict):
        err((), "a serverless.yml must be a mapping with `service`, `provider` and `functions`")
        raise _fail(errors, path)
    service = data.get("service")
    if isinstance(service, dict):  # the old long form: service: {name: x}
        service = service.get("name")
    if not isinstance(service, str) or not service:
        err(("service",), "`service` (the project's name) is missing")
    provider = data.get("provider")
    provider_name = provider.get("name") if isinstance(provider, dict) else provider
    if provider_name != "knative":
        err(("provider", "name") if isinstance(provider, dict) else ("provider",),
            f"provider {provider_name!r} is not supported: only `provider: name: knative` projects "
            "(serverless-knative) can be deployed here")
    functions = data.get("functions")
    if not isinstance(functions, dict) or not functions:
        err(("functions",), "`functions` must map function names to their settings")
    if errors:
        raise _fail(errors, path)
    assert isinstance(service, str) and isinstance(functions, dict) and isinstance(provider, dict)
    provider_env = provider.get("environment") or {}
    notes = []
    if provider.get("docker"):
        notes.append("provider.docker (Docker Hub credentials) is not used: images are pushed to the cluster's "
                     "registry and deployed by digest")
    result: list[Function] = []
    for fname, spec in functions.items():
        at = ("functions", fname)
        if not isinstance(spec, dict):
            err(at, "each function needs a mapping with `handler`")
            continue
        ours: dict[str, Any] = {}
        handler = spec.get("handler") or spec.get("image")
        if not isinstance(handler, str) or not handler:
            err((*at, "handler"), "`handler` (a Dockerfile path, or an image reference) is missing")
            continue
        if ":" in handler or "@" in handler:
            ours["image"] = handler
        else:
            context = spec.get("context", ".")
            ours["build"] = {"context": context, "dockerfile": str(Path(context) / handler)}
        env = {**(provider_env if isinstance(provider_env, dict) else {}), **(spec.get("environment") or {})}
        if env:
            ours["env"] = {str(k): v for k, v in env.items()}
        events = []
        for index, event in enumerate(spec.get("events") or []):
            eat = (*at, "events", index)
            if not isinstance(event, dict) or len(event) != 1:
                err(eat, "each event is a mapping with one kind: custom, cron or kafka")
                continue
            kind, value = next(iter(event.items()))
            if kind in CLOUD_ONLY_EVENTS:
                err((*eat, kind), f"`{kind}` events come from {CLOUD_ONLY_EVENTS[kind]}, which does not exist on a "
                    "MicroK8s cluster; use `custom` (a Trigger on the Broker), `cron` (a PingSource) or `kafka`")
            elif kind == "custom":
                events.append({"custom": _custom(value)})
            elif kind == "cron":
                if not isinstance(value, dict) or not isinstance(value.get("schedule"), str):
                    err((*eat, kind), "a cron event needs `schedule` (e.g. '*/5 * * * *') and optionally `data`")
                    continue
                events.append({"cron": {k: v for k, v in value.items() if k in ("schedule", "data", "timezone")}})
            elif kind == "kafka":
                if not isinstance(value, dict):
                    err((*eat, kind), "a kafka event needs consumerGroup, bootstrapServers and topics")
                    continue
                events.append({"kafka": {k: _as_list(v) if k in ("bootstrapServers", "topics") else v
                                         for k, v in value.items()
                                         if k in ("consumerGroup", "bootstrapServers", "topics")}})
            else:
                err((*eat, kind), f"unknown event kind `{kind}` (supported: custom, cron, kafka)")
        if events:
            ours["events"] = events
        result.append(function_from(fname, f"{service}-{fname}", ours, path.parent, lines, at, path))
    if errors:
        raise _fail(errors, path)
    namespace = provider.get("namespace", "default") if isinstance(provider.get("namespace"), str) else "default"
    project = Project(name=service, root=path.parent, source=path, functions=tuple(result), namespace=namespace,
                      notes=tuple(notes))
    check_semantics(project, lines, path)
    return project


def _custom(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    flt = value.get("filter") or {}
    attributes = flt.get("attributes", flt) if isinstance(flt, dict) else {}
    return {"filter": {"attributes": {str(k): str(v) for k, v in (attributes or {}).items()}}} if attributes else {}


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value or []]
