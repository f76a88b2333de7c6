"""Strict, offline validation of rendered Kubernetes objects (plain dicts).

The API emulator used by the tests validates nothing, so this harness plays the role of the
API server's schema checks:

* Built-in kinds are validated against the *strict* JSON schemas shipped by
  ``kubernetes_validate`` (``additionalProperties: false`` everywhere) for the requested
  Kubernetes minor version.  ``kubernetes_validate.validate()`` re-reads and re-parses its
  1.5 MB ``_definitions.json`` on every call, so the same schema files are loaded here once
  and the compiled ``jsonschema`` validators are cached per (schema directory, kind file).
* Custom resources are validated with ``jsonschema`` (Draft 7) against the
  ``openAPIV3Schema`` of the served version of the matching CustomResourceDefinition, after
  converting it to mimic the API server's strict field validation (unknown fields rejected
  unless ``x-kubernetes-preserve-unknown-fields``; ``nullable``; ``x-kubernetes-int-or-string``).
  The root ``metadata`` of a custom resource is checked against the built-in ``ObjectMeta``
  schema of the same Kubernetes version (as the API server does).
* Known OpenAPI markers the API server never enforced are corrected (see
  ``_apply_schema_fixes``), so they do not produce false positives.

``image_errors()`` is a separate policy check: every container image must be pinned by
digest or by an explicit tag that is neither ``latest`` nor ``*-latest``.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions
import kubernetes_validate
import kubernetes_validate.utils
import referencing
import referencing.jsonschema

__all__ = [
    "ManifestValidator",
    "UnsupportedKubernetesVersion",
    "crd_version_schema",
    "image_errors",
    "image_reference_problem",
    "kserve_crds",
    "supported_kube_versions",
    "training_operator_crds",
]

_SCHEMA_ROOT = Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema"
_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META_REF = _DEFINITIONS_ID + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_KUBE_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$")
_MAX_MESSAGE = 300


class UnsupportedKubernetesVersion(ValueError):
    """The requested Kubernetes version has no schemas in kubernetes_validate."""


def supported_kube_versions() -> list[str]:
    """Kubernetes minor versions ("1.25", ...) for which kubernetes_validate ships schemas."""
    minors = (kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions())
    return list(dict.fromkeys(minors))


def _schema_dir_for(kube_version: str) -> str:
    """Map "1.34", "1.34.2" or "v1.34.2" to the strict schema directory ("v1.34.0-local-strict")."""
    match = _KUBE_VERSION_RE.match(str(kube_version).strip())
    if not match:
        raise UnsupportedKubernetesVersion(f"cannot parse Kubernetes version {kube_version!r}")
    minor = f"{match.group(1)}.{match.group(2)}"
    if minor not in supported_kube_versions():
        raise UnsupportedKubernetesVersion(
            f"kubernetes_validate {kubernetes_validate.__version__} has no schemas for Kubernetes {minor} "
            f"(supported: {', '.join(supported_kube_versions())})"
        )
    directory = f"v{minor}.0-local-strict"
    if not (_SCHEMA_ROOT / directory).is_dir():  # pragma: no cover - packaging sanity check
        raise UnsupportedKubernetesVersion(f"missing schema directory {_SCHEMA_ROOT / directory}")
    return directory


def _minor_of(schema_dir: str) -> tuple[int, int]:
    major, minor = schema_dir[1:].split(".")[:2]
    return int(major), int(minor)


def _apply_schema_fixes(schema_dir: str, definitions: dict) -> None:
    """Correct OpenAPI markers that the API server never enforced (false positives otherwise).

    * StatefulSetSpec.serviceName is listed as required in the OpenAPI of Kubernetes <= 1.32,
      but the API server never required it; 1.33 fixed the marker (kubernetes/kubernetes#130233).
      Knative Eventing's ``request-reply`` StatefulSet has no serviceName.
    """
    defs = definitions.get("$defs", {})
    if _minor_of(schema_dir) < (1, 33):
        spec = defs.get("io.k8s.api.apps.v1.StatefulSetSpec", {})
        if "serviceName" in spec.get("required", []):
            spec["required"] = [r for r in spec["required"] if r != "serviceName"]


@functools.cache
def _registry(schema_dir: str) -> referencing.Registry:
    with open(_SCHEMA_ROOT / schema_dir / "_definitions.json", encoding="utf-8") as fh:
        definitions = json.load(fh)
    _apply_schema_fixes(schema_dir, definitions)
    resource = referencing.Resource.from_contents(
        definitions, default_specification=referencing.jsonschema.DRAFT202012
    )
    return resource @ referencing.Registry()


@functools.cache
def _builtin_validator(schema_dir: str, filename: str) -> tuple[jsonschema.protocols.Validator, list] | None:
    """Compiled validator + x-kubernetes-group-version-kind list for one top-level schema file."""
    path = _SCHEMA_ROOT / schema_dir / filename
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as fh:
        schema = json.load(fh)
    validator = jsonschema.Draft202012Validator(schema, registry=_registry(schema_dir))
    return validator, schema.get("x-kubernetes-group-version-kind") or []


@functools.cache
def _object_meta_validator(schema_dir: str) -> jsonschema.protocols.Validator:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": _OBJECT_META_REF}
    return jsonschema.Draft202012Validator(schema, registry=_registry(schema_dir))


def _split_api_version(api_version: str) -> tuple[str, str]:
    """Split an apiVersion into (group, version): apps/v1 -> (apps, v1); v1 -> ("", v1)."""
    if "/" in api_version:
        group, _, version = api_version.partition("/")
        return group, version
    return "", api_version


def _describe(obj: Any) -> str:
    """Kind/namespace/name of an object for error messages."""
    if not isinstance(obj, dict):
        return f"<{type(obj).__name__}>"
    kind = obj.get("kind") or "<no kind>"
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else "<no name>")
    namespace = meta.get("namespace")
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", str(part)):
            out += f".{part}"
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _format_errors(label: str, errors: Iterator[jsonschema.ValidationError], prefix: tuple = ()) -> list[str]:
    messages = []
    for error in errors:
        path = list(prefix) + list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            schema = error.schema if isinstance(error.schema, dict) else {}
            allowed, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
            extras = [
                key
                for key in error.instance
                if key not in allowed and not any(re.search(p, key) for p in patterns)
            ]
            if extras:
                for key in extras:
                    messages.append(f"{label} at {_json_path([*path, key])}: unknown field {key!r}")
                continue
        message = error.message
        if error.context:
            best = jsonschema.exceptions.best_match(error.context)
            if best is not None:
                message = f"{message} ({_json_path(path + list(best.relative_path))}: {best.message})"
        messages.append(f"{label} at {_json_path(path)}: {_shorten(message)}")
    return list(dict.fromkeys(messages))


def _name_errors(label: str, obj: dict) -> list[str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [f"{label} at $.metadata: metadata is required and must be an object"]
    if not meta.get("name") and not meta.get("generateName"):
        return [f"{label} at $.metadata: metadata.name or metadata.generateName is required"]
    return []


# --------------------------------------------------------------------------------------------
# CRD (OpenAPI v3 structural schema) -> strict JSON schema (Draft 7)
# --------------------------------------------------------------------------------------------

_JUNCTORS = ("allOf", "anyOf", "oneOf")


def _convert_value_validation(schema: Any) -> Any:
    """Inside allOf/anyOf/oneOf/not: only fix OpenAPI-v3-isms, never close objects."""
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    _fix_exclusive_bounds(out)
    for key in ("properties", "patternProperties"):
        if isinstance(out.get(key), dict):
            out[key] = {name: _convert_value_validation(sub) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = _convert_value_validation(out[key])
    for key in _JUNCTORS:
        if isinstance(out.get(key), list):
            out[key] = [_convert_value_validation(sub) for sub in out[key]]
    return out


def _fix_exclusive_bounds(schema: dict) -> None:
    # OpenAPI v3.0 (draft 4 style) boolean exclusiveMinimum/Maximum -> draft 6+ numeric form.
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(flag), bool):
            if schema[flag] and bound in schema:
                schema[flag] = schema.pop(bound)
            else:
                del schema[flag]


def _convert_structural(schema: Any) -> Any:
    """Convert one node of a CRD structural schema into a strict Draft 7 schema."""
    if not isinstance(schema, dict):
        return schema
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    int_or_string = schema.get("x-kubernetes-int-or-string") is True
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    _fix_exclusive_bounds(out)

    if int_or_string and "type" not in out:
        out["type"] = ["integer", "string"]
        # controller-gen emits anyOf: [{type: integer}, {type: string}] next to the marker; the
        # type union above says the same thing and gives one clear error instead of two.
        if out.get("anyOf") == [{"type": "integer"}, {"type": "string"}]:
            del out["anyOf"]

    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: _convert_structural(sub) for name, sub in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _convert_structural(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _convert_structural(out["additionalProperties"])
    for key in _JUNCTORS:
        if isinstance(out.get(key), list):
            out[key] = [_convert_value_validation(sub) for sub in out[key]]
    if isinstance(out.get("not"), dict):
        out["not"] = _convert_value_validation(out["not"])

    # The API server drops (and with strict field validation rejects) every field that the
    # structural schema does not specify, unless x-kubernetes-preserve-unknown-fields is set.
    is_object = out.get("type") == "object" or "properties" in out
    if is_object and not preserve and "additionalProperties" not in out:
        out["additionalProperties"] = False

    if schema.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif isinstance(out.get("type"), list) and "null" not in out["type"]:
            out["type"] = [*out["type"], "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def crd_version_schema(crd: dict, version: dict) -> dict:
    """Strict Draft 7 schema for one entry of ``crd.spec.versions``."""
    spec = crd["spec"]
    raw = ((version.get("schema") or {}).get("openAPIV3Schema")) or {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    schema = _convert_structural(copy.deepcopy(raw))
    schema.setdefault("type", "object")
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string", "const": f"{spec['group']}/{version['name']}"}
    properties["kind"] = {"type": "string", "const": spec["names"]["kind"]}
    # metadata is relaxed here; it is checked separately (name + built-in ObjectMeta schema).
    properties["metadata"] = {"type": "object"}
    required = [r for r in schema.get("required", []) if r not in ("apiVersion", "kind", "metadata")]
    schema["required"] = ["apiVersion", "kind", "metadata", *required]
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    return schema


class ManifestValidator:
    """Strict offline validator for rendered Kubernetes objects."""

    def __init__(self, kube_version: str, crd_documents: Iterable[dict] = ()) -> None:
        self.kube_version = str(kube_version)
        self._schema_dir = _schema_dir_for(self.kube_version)
        self.schema_version = self._schema_dir[1:].split("-", 1)[0]  # e.g. "1.34.0"
        # (group, kind) -> {"crd": name, "versions": {version_name: version_dict}}
        self._crds: dict[tuple[str, str], dict] = {}
        self._crd_groups: set[str] = set()
        self._crd_validators: dict[tuple[str, str, str], jsonschema.protocols.Validator] = {}
        self.add_crds(crd_documents)

    # ------------------------------------------------------------------ CRDs

    def add_crds(self, crd_documents: Iterable[dict]) -> None:
        """Register CustomResourceDefinitions (apiextensions.k8s.io/v1).

        Documents that are not CustomResourceDefinitions (e.g. when a whole release file is
        passed) are ignored; a later CRD for the same group/kind replaces an earlier one.
        Raises ValueError for malformed CRDs or invalid openAPIV3Schemas.
        """
        for crd in crd_documents:
            if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                continue
            name = (crd.get("metadata") or {}).get("name", "<no name>")
            if crd.get("apiVersion") != "apiextensions.k8s.io/v1":
                raise ValueError(f"CRD {name}: unsupported apiVersion {crd.get('apiVersion')!r}")
            try:
                spec = crd["spec"]
                group, kind = spec["group"], spec["names"]["kind"]
                versions = {v["name"]: v for v in spec["versions"]}
            except (KeyError, TypeError) as exc:
                raise ValueError(f"CRD {name}: malformed spec ({exc!r})") from exc
            for version_name, version in versions.items():
                schema = crd_version_schema(crd, version)
                try:
                    jsonschema.Draft7Validator.check_schema(schema)
                except jsonschema.exceptions.SchemaError as exc:
                    raise ValueError(
                        f"CRD {name} version {version_name}: invalid schema: {exc.message}"
                    ) from exc
                self._crd_validators[(group, version_name, kind)] = jsonschema.Draft7Validator(schema)
            for key in [k for k in self._crd_validators if k[0] == group and k[2] == kind]:
                if key[1] not in versions:
                    del self._crd_validators[key]
            self._crds[(group, kind)] = {"crd": name, "versions": versions}
            self._crd_groups.add(group)

    # ------------------------------------------------------------ validation

    def errors(self, obj: dict) -> list[str]:
        """All validation problems of one object; ``[]`` when it is valid."""
        label = _describe(obj)
        if not isinstance(obj, dict):
            return [f"{label} at $: a Kubernetes object must be a mapping"]
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        problems = []
        if not isinstance(api_version, str) or not api_version:
            problems.append(f"{label} at $.apiVersion: apiVersion is required and must be a string")
        if not isinstance(kind, str) or not kind:
            problems.append(f"{label} at $.kind: kind is required and must be a string")
        if problems:
            return problems
        group, version = _split_api_version(api_version)
        if group in self._crd_groups:
            return self._custom_resource_errors(label, obj, group, version, kind)
        return self._builtin_errors(label, obj, group, version, kind)

    def validate_all(self, objs: Iterable[dict]) -> list[str]:
        """Errors of every object (``None`` documents from YAML streams are skipped)."""
        out: list[str] = []
        for obj in objs:
            if obj is not None:
                out.extend(self.errors(obj))
        return out

    def _builtin_errors(self, label: str, obj: dict, group: str, version: str, kind: str) -> list[str]:
        # Same file naming as kubernetes_validate.validate(): rbac.authorization.k8s.io/v1 -> rbac-v1
        api_part = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
        filename = f"{kind.lower()}-{api_part}.json"
        if "/" in filename or filename.startswith("."):
            compiled = None
        else:
            compiled = _builtin_validator(self._schema_dir, filename)
        if compiled is not None:
            validator, gvks = compiled
            if not any(
                g.get("group", "") == group and g.get("version") == version and g.get("kind") == kind
                for g in gvks
            ):
                compiled = None
        if compiled is None:
            return [
                f"{label} at $: no schema for kind {kind!r} with apiVersion {obj['apiVersion']!r} "
                f"in Kubernetes {self.schema_version} "
                f"(not a built-in kind and no CRD registered for group {group!r})"
            ]
        return _name_errors(label, obj) + _format_errors(label, validator.iter_errors(obj))

    def _custom_resource_errors(
        self, label: str, obj: dict, group: str, version: str, kind: str
    ) -> list[str]:
        entry = self._crds.get((group, kind))
        if entry is None:
            kinds = sorted(k for g, k in self._crds if g == group)
            return [
                f"{label} at $.kind: no CRD for kind {kind!r} in group {group!r} "
                f"(known kinds: {', '.join(kinds)})"
            ]
        crd_version = entry["versions"].get(version)
        if crd_version is None:
            return [
                f"{label} at $.apiVersion: CRD {entry['crd']} has no version {version!r} "
                f"(versions: {', '.join(entry['versions'])})"
            ]
        if not crd_version.get("served", False):
            return [f"{label} at $.apiVersion: version {version!r} of CRD {entry['crd']} is not served"]
        validator = self._crd_validators[(group, version, kind)]
        problems = _name_errors(label, obj) + _format_errors(label, validator.iter_errors(obj))
        if isinstance(obj.get("metadata"), dict):
            meta_errors = _object_meta_validator(self._schema_dir).iter_errors(obj["metadata"])
            problems += _format_errors(label, meta_errors, prefix=("metadata",))
        return problems


# --------------------------------------------------------------------------------------------
# Image pinning policy
# --------------------------------------------------------------------------------------------

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
_KNATIVE_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Service": ("spec", "template", "spec"),
    "Configuration": ("spec", "template", "spec"),
    "Revision": ("spec",),
}


def image_reference_problem(image: Any) -> str | None:
    """Why an image reference is not pinned (``None`` when it is pinned by digest or a fixed tag)."""
    if not isinstance(image, str) or not image.strip():
        return f"image must be a non-empty string, got {image!r}"
    if image != image.strip() or any(c.isspace() for c in image):
        return f"image {image!r} contains whitespace"
    name, at, digest = image.partition("@")
    if at:
        if not _DIGEST_RE.match(digest):
            return f"image {image!r} has a malformed digest (expected sha256: + 64 lowercase hex digits)"
        return None
    last_slash = name.rfind("/")
    last_colon = name.rfind(":")
    if last_colon <= last_slash:  # no tag (a colon before the last '/' is a registry port)
        return f"image {image!r} has no tag or digest (implicitly ':latest'); pin it"
    tag = name[last_colon + 1 :]
    if not _TAG_RE.match(tag):
        return f"image {image!r} has an invalid tag {tag!r}"
    if tag.lower() == "latest" or tag.lower().endswith("-latest"):
        return f"image {image!r} uses the floating tag {tag!r}; pin a fixed tag or a digest"
    return None


def _pod_spec_images(pod_spec: Any, path: tuple) -> Iterator[tuple[str, Any]]:
    if not isinstance(pod_spec, dict):
        return
    for field in ("initContainers", "containers", "ephemeralContainers"):
        containers = pod_spec.get(field)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            image = container.get("image") if isinstance(container, dict) else None
            yield _json_path((*path, field, index, "image")), image


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _images(obj: dict) -> Iterator[tuple[str, Any]]:
    kind = obj.get("kind")
    group, _ = _split_api_version(str(obj.get("apiVersion", "")))
    if group == "serving.knative.dev" and kind in _KNATIVE_POD_SPEC_PATHS:
        path = _KNATIVE_POD_SPEC_PATHS[kind]
        yield from _pod_spec_images(_dig(obj, path), path)
    elif group in ("", "apps", "batch") and kind in _POD_SPEC_PATHS:
        path = _POD_SPEC_PATHS[kind]
        yield from _pod_spec_images(_dig(obj, path), path)
    elif group == "serving.kserve.io" and kind in ("ClusterServingRuntime", "ServingRuntime"):
        yield from _pod_spec_images(obj.get("spec"), ("spec",))
    elif group == "serving.kserve.io" and kind == "ClusterStorageContainer":
        yield _json_path(("spec", "container", "image")), _dig(obj, ("spec", "container", "image"))
    elif group == "kubeflow.org" and kind.endswith("Job"):
        for role, replica in (_dig(obj, ("spec", f"{kind[:-3].lower()}ReplicaSpecs")) or {}).items():
            path = ("spec", f"{kind[:-3].lower()}ReplicaSpecs", role, "template", "spec")
            yield from _pod_spec_images(_dig(replica, ("template", "spec")), path)
    elif group == "caching.internal.knative.dev" and kind == "Image":
        yield _json_path(("spec", "image")), _dig(obj, ("spec", "image"))
    elif group == "" and kind == "ConfigMap" and _dig(obj, ("metadata", "name")) == "config-deployment":
        data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
        if "queue-sidecar-image" in data:
            yield _json_path(("data", "queue-sidecar-image")), data["queue-sidecar-image"]


def image_errors(obj: dict) -> list[str]:
    """Images that are not pinned (digest, or explicit tag other than latest / *-latest)."""
    if not isinstance(obj, dict):
        return []
    label = _describe(obj)
    return [
        f"{label} at {path}: {problem}"
        for path, image in _images(obj)
        if (problem := image_reference_problem(image)) is not None
    ]


# --------------------------------------------------------------------------------------------
# CRDs of optional components (KServe, Kubeflow Training Operator), from the vendored pinned files
# --------------------------------------------------------------------------------------------


@functools.cache
def _component_crds(component: str) -> tuple[dict, ...]:
    import yaml

    from hybrid_knative.catalog import load_catalog
    from hybrid_knative.upstream import PACKAGE_VENDOR_DIR

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    comp = load_catalog().extra_component(component)
    docs: list[dict] = []
    for f in comp.files.values():
        if not f.name.endswith((".yaml", ".yml")) or "crd" not in f.name:
            continue
        with open(PACKAGE_VENDOR_DIR / f.path, encoding="utf-8") as fh:
            docs += [d for d in yaml.load_all(fh, Loader=loader) if isinstance(d, dict)
                     and d.get("kind") == "CustomResourceDefinition"]
    if not docs:
        raise ValueError(f"component {component} has no vendored CRD files")
    return tuple(docs)


def kserve_crds() -> tuple[dict, ...]:
    """KServe v0.20.0's CRDs (InferenceService, ServingRuntime, ClusterServingRuntime, ClusterStorageContainer…)."""
    return _component_crds("kserve")


def training_operator_crds() -> tuple[dict, ...]:
    """Kubeflow Training Operator v1.9.4's CRDs (PyTorchJob, TFJob, …)."""
    return _component_crds("training-operator")
