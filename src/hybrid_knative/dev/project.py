"""The project model: ``hybrid-knative.yaml`` (validated by a JSON Schema) or a Serverless ``serverless.yml``.

Every error names the file and line (from the YAML parser's node marks), says what is wrong and what
to write instead. The model is frozen and holds everything deploy needs; nothing here touches a
cluster or a registry.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from hybrid_knative.errors import ConfigError

PROJECT_FILE = "hybrid-knative.yaml"
SERVERLESS_FILE = "serverless.yml"
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_SERVICE_NAME = 56  # Knative appends "-00001" to form revision names (63 characters at most)
CLOUD_ONLY_EVENTS = {
    "awsSqs": "AWS SQS", "sqs": "AWS SQS", "sns": "AWS SNS", "s3": "AWS S3", "http": "AWS API Gateway",
    "httpApi": "AWS API Gateway", "schedule": "AWS EventBridge", "gcpPubSub": "Google Cloud Pub/Sub",
    "pubsub": "Google Cloud Pub/Sub", "eventBridge": "AWS EventBridge", "stream": "AWS Kinesis/DynamoDB",
}
GPU_RESOURCES = {"amd": "amd.com/gpu", "nvidia": "nvidia.com/gpu"}


@dataclasses.dataclass(frozen=True)
class Event:
    kind: str  # custom | cron | kafka
    spec: Mapping[str, Any]
    line: int = 0


@dataclasses.dataclass(frozen=True)
class Function:
    name: str  # the function's name in the project file
    service: str  # the Knative Service's name
    context: Path | None = None  # absolute build context (None when image is given)
    dockerfile: Path | None = None
    image: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    port: int | None = None
    min_scale: int | None = None
    max_scale: int | None = None
    initial_scale: int | None = None
    concurrency: int | None = None
    timeout: int | None = None
    gpu: tuple[str, int] | None = None  # (extended resource name, count)
    events: tuple[Event, ...] = ()
    line: int = 0


@dataclasses.dataclass(frozen=True)
class Project:
    name: str
    root: Path
    source: Path  # the file it was read from
    functions: tuple[Function, ...]
    namespace: str = "default"
    registry: str | None = None
    notes: tuple[str, ...] = ()  # things translated or ignored (serverless.yml), shown by deploy

    def function(self, name: str) -> Function:
        for fn in self.functions:
            if name in (fn.name, fn.service):
                return fn
        known = ", ".join(f.name for f in self.functions)
        raise ConfigError(f"no function {name!r} in {self.source}", resolution=f"use one of: {known}")


# --- YAML with line numbers --------------------------------------------------------------------------

class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that keeps, for every value, the line it started on (keyed by its JSON path)."""


def load_yaml_with_lines(path: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse ``path``; return (data, {json path: 1-based line}). Syntax errors name the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no project file: {path}",
                          resolution="run in the project's folder, or create one: `hybrid-knative new NAME`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        node = yaml.compose(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {exc.problem or exc}",
                          details=str(mark.get_snippet() or "") if mark else None,
                          resolution="fix the YAML syntax at that line (indentation, a missing ':' or quote)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if node is None:
        raise ConfigError(f"{path} is empty", resolution="see `hybrid-knative new --help` for an example")
    lines: dict[tuple[Any, ...], int] = {}
    _collect_lines(node, (), lines)
    try:
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return data, lines


def _collect_lines(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            _collect_lines(value, sub, lines)
            lines[sub] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, (*path, index), lines)


def line_of(lines: Mapping[tuple[Any, ...], int], path: tuple[Any, ...]) -> int:
    """The line of ``path``, else of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def _schema() -> dict[str, Any]:
    text = resources.files("hybrid_knative.dev").joinpath("project.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_errors(data: Any, lines: Mapping[tuple[Any, ...], int], source: Path) -> list[str]:
    validator = jsonschema.Draft202012Validator(_schema())
    found = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        path = tuple(err.absolute_path)
        where = ".".join(str(p) for p in path) or "(top level)"
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            path = (*path, extra[0]) if extra else path  # the line of the unknown key itself
        found.append(f"{source}:{line_of(lines, path)}: {where}: {_message(err)}")
    return found


def _message(err: jsonschema.ValidationError) -> str:
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {}))) if isinstance(err.instance, dict) \
            else []
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        return f"unknown field {', '.join(map(repr, extra))} (allowed here: {allowed})"
    if err.validator == "not" and isinstance(err.instance, dict):
        return "give either `build` or `image`, not both"
    if err.validator == "pattern" and err.schema.get("$ref") is None and "a-z" in str(err.validator_value):
        return (f"{err.instance!r} is not a valid name: lower-case letters, digits and '-', starting with a "
                "letter (at most 50 characters)")
    return str(err.message)


def _fail(errors: list[str], source: Path) -> ConfigError:
    return ConfigError(f"{source} is not a valid project file ({len(errors)} problem{'s' if len(errors) > 1 else ''})",
                       details="\n".join(errors[:20]),
                       resolution="fix the lines named above; docs/functions.md describes every field")


# --- loading ----------------------------------------------------------------------------------------

def find_project(start: Path) -> Path:
    """The project file in ``start`` (a folder or a file): hybrid-knative.yaml, else serverless.yml."""
    if start.is_file():
        return start
    for name in (PROJECT_FILE, "hybrid-knative.yml", SERVERLESS_FILE, "serverless.yaml"):
        if (start / name).is_file():
            return start / name
    raise ConfigError(f"no {PROJECT_FILE} (or {SERVERLESS_FILE}) in {start}",
                      resolution="run in the project's folder, pass --path, or create a project with "
                      "`hybrid-knative new NAME --template python-http`")


def load_project(start: Path, *, namespace: str | None = None, registry: str | None = None) -> Project:
    path = find_project(start).resolve()
    data, lines = load_yaml_with_lines(path)
    if path.name.startswith("serverless."):
        from hybrid_knative.dev.serverless import translate

        project = translate(data, lines, path)
    else:
        project = parse_project(data, lines, path)
    if namespace:
        _check_label(namespace, "namespace", path)
        project = dataclasses.replace(project, namespace=namespace)
    if registry:
        project = dataclasses.replace(project, registry=registry.rstrip("/"))
    return project


def parse_project(data: Any, lines: Mapping[tuple[Any, ...], int], path: Path) -> Project:
    errors = _event_kind_errors(data, lines, path) + schema_errors(data, lines, path)
    if errors:
        raise _fail(errors, path)
    root = path.parent
    functions = []
    for name, spec in data["functions"].items():
        functions.append(function_from(name, name, spec, root, lines, ("functions", name), path))
    project = Project(name=data["name"], root=root, source=path, functions=tuple(functions),
                      namespace=data.get("namespace", "default"), registry=data.get("registry"))
    check_semantics(project, lines, path)
    return project


def _event_kind_errors(data: Any, lines: Mapping[tuple[Any, ...], int], path: Path) -> list[str]:
    """Cloud-only or unknown event kinds, with a message better than the schema's."""
    found: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("functions"), dict):
        return found
    for fname, spec in data["functions"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("events"), list):
            continue
        for index, event in enumerate(spec["events"]):
            if not isinstance(event, dict):
                continue
            for kind in event:
                where = f"{path}:{line_of(lines, ('functions', fname, 'events', index, kind))}"
                if kind in CLOUD_ONLY_EVENTS:
                    found.append(f"{where}: functions.{fname}.events[{index}]: `{kind}` events come from "
                                 f"{CLOUD_ONLY_EVENTS[kind]}, which does not exist on a MicroK8s cluster; "
                                 "use `custom` (a Trigger on the Broker), `cron` (a PingSource) or `kafka`")
                elif kind not in ("custom", "cron", "kafka"):
                    found.append(f"{where}: functions.{fname}.events[{index}]: unknown event kind `{kind}` "
                                 "(supported: custom, cron, kafka)")
    return found


def function_from(name: str, service: str, spec: Mapping[str, Any], root: Path,
                  lines: Mapping[tuple[Any, ...], int], at: tuple[Any, ...], source: Path) -> Function:
    """A Function from a schema-valid ``spec`` (our file's shape)."""
    image = spec.get("image")
    context = dockerfile = None
    if image is None:
        build = spec.get("build") or {}
        context = (root / build.get("context", ".")).resolve()
        dockerfile = (root / build["dockerfile"]).resolve() if "dockerfile" in build else context / "Dockerfile"
    scale = spec.get("scale") or {}
    gpu = spec.get("gpu")
    events = tuple(Event(kind, value, line_of(lines, (*at, "events", i)))
                   for i, event in enumerate(spec.get("events") or []) for kind, value in event.items())
    env = tuple((k, _env_text(v)) for k, v in (spec.get("env") or {}).items())
    return Function(name=name, service=service, context=context, dockerfile=dockerfile, image=image, env=env,
                    port=spec.get("port"), min_scale=scale.get("min"), max_scale=scale.get("max"),
                    initial_scale=scale.get("initial"), concurrency=spec.get("concurrency"),
                    timeout=spec.get("timeout"),
                    gpu=(GPU_RESOURCES[gpu["vendor"]], int(gpu.get("count", 1))) if gpu else None,
                    events=events, line=line_of(lines, at))


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_label(value: str, what: str, source: Path) -> None:
    if not DNS_LABEL.match(value) or len(value) > 63:
        raise ConfigError(f"invalid {what} {value!r}",
                          resolution="use lower-case letters, digits and '-', starting with a letter")


def check_semantics(project: Project, lines: Mapping[tuple[Any, ...], int], path: Path) -> None:
    """What a schema cannot say: files exist, names fit, scale bounds are ordered."""
    errors = []
    seen: dict[str, str] = {}
    for fn in project.functions:
        where = f"{path}:{fn.line}: functions.{fn.name}"
        if len(fn.service) > MAX_SERVICE_NAME or not DNS_LABEL.match(fn.service):
            errors.append(f"{where}: the service name {fn.service!r} is not a valid Knative Service name "
                          f"(at most {MAX_SERVICE_NAME} characters of a-z, 0-9, '-')")
        if fn.service in seen:
            errors.append(f"{where}: two functions would both be the Knative Service {fn.service!r}")
        seen[fn.service] = fn.name
        if fn.image is None:
            assert fn.context is not None and fn.dockerfile is not None
            if not fn.context.is_dir():
                errors.append(f"{where}: the build context {fn.context} is not a folder")
            elif not fn.dockerfile.is_file():
                errors.append(f"{where}: missing Dockerfile {fn.dockerfile}")
        if fn.min_scale is not None and fn.max_scale not in (None, 0) and fn.min_scale > fn.max_scale:
            errors.append(f"{where}.scale: min ({fn.min_scale}) is larger than max ({fn.max_scale})")
    if errors:
        raise _fail(errors, path)
