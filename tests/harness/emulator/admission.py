"""Built-in validation of core kinds, as the apiserver does it before storing (422 Invalid).

The rules and messages follow Kubernetes' own validation (pkg/apis/core/validation,
pkg/apis/apps/validation, pkg/apis/batch/validation and apimachinery's validation helpers):

* names: Namespace and Service names are DNS-1123 / DNS-1035 labels, ConfigMap, Deployment, Job,
  Node names DNS-1123 subdomains; any other object's name must be a valid path segment;
* labels (qualified names, values of at most 63 characters) and annotations keys on every object;
* Service: ``spec.ports`` required (except ExternalName and headless), port and targetPort ranges,
  protocols, unique port names, names required with more than one port, ``spec.type`` values,
  ``spec.clusterIP`` valid and immutable once set;
* ConfigMap: data/binaryData keys (``[-._a-zA-Z0-9]+``, at most 253 characters, no duplicates
  across both maps), total size at most 1 MiB;
* Deployment: selector required, matching the template labels, immutable; replicas >= 0;
  at least one container, each with a DNS-1123-label name (unique) and an image;
* Job: ``spec.template`` and ``spec.selector`` immutable, ``restartPolicy`` OnFailure or Never.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

import kmock

from tests.harness.emulator.common import _invalid_fields, _json

Errors = list[tuple[str, str, str]]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_MAX_CONFIGMAP_BYTES = 1024 * 1024

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def _quote(value: Any) -> str:
    return _json(value) if isinstance(value, str) else str(value)


def _bad(errors: Errors, field: str, value: Any, detail: str) -> None:
    errors.append((field, "FieldValueInvalid", f"Invalid value: {_quote(value)}: {detail}"))


def _required(errors: Errors, field: str) -> None:
    errors.append((field, "FieldValueRequired", "Required value"))


def _unsupported(errors: Errors, field: str, value: Any, supported: tuple[str, ...]) -> None:
    values = ", ".join(_json(s) for s in supported)
    errors.append((field, "FieldValueNotSupported", f"Unsupported value: {_quote(value)}: supported values: {values}"))


def _immutable(errors: Errors, field: str, value: Any) -> None:
    shown = value if isinstance(value, (str, int)) else "{...}"
    _bad(errors, field, shown, "field is immutable")


def _name_errors(errors: Errors, name: str, style: str) -> None:
    field = "metadata.name"
    if style == "label":
        if len(name) > 63:
            _bad(errors, field, name, "must be no more than 63 characters")
        if not _DNS1123_LABEL.match(name):
            _bad(errors, field, name, _DNS1123_LABEL_MSG)
    elif style == "dns1035":
        if len(name) > 63:
            _bad(errors, field, name, "must be no more than 63 characters")
        if not _DNS1035_LABEL.match(name):
            _bad(errors, field, name, _DNS1035_LABEL_MSG)
    elif style == "subdomain":
        if len(name) > 253:
            _bad(errors, field, name, "must be no more than 253 characters")
        if not _DNS1123_SUBDOMAIN.match(name):
            _bad(errors, field, name, _DNS1123_SUBDOMAIN_MSG)
    elif name in (".", "..") or "/" in name or "%" in name:
        _bad(errors, field, name, "may not contain '/' or '%' and may not be '.' or '..'")


def _qualified_name_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return bool(name) and len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


def _metadata_errors(errors: Errors, meta: Mapping[str, Any]) -> None:
    for key, value in (meta.get("labels") or {}).items():
        if not _qualified_name_ok(str(key)):
            _bad(errors, "metadata.labels", key, "name part must consist of alphanumeric characters, '-', '_' or '.'")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            _bad(errors, "metadata.labels", value, "a valid label must be an empty string or consist of alphanumeric "
                 "characters, '-', '_' or '.', and must start and end with an alphanumeric character")
    for key in meta.get("annotations") or {}:
        if not _qualified_name_ok(str(key)):
            _bad(errors, "metadata.annotations", key, "name part must consist of alphanumeric characters, '-', '_' "
                 "or '.', and must start and end with an alphanumeric character")


def _port_in_range(errors: Errors, field: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        _bad(errors, field, value, "must be between 1 and 65535, inclusive")


def _service(errors: Errors, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> None:
    spec = obj.get("spec") or {}
    type_ = spec.get("type", "ClusterIP")
    if type_ not in _SERVICE_TYPES:
        _unsupported(errors, "spec.type", type_, _SERVICE_TYPES)
    cluster_ip = spec.get("clusterIP") or ""
    ports = spec.get("ports") or []
    if type_ == "ExternalName":
        if not spec.get("externalName"):
            _required(errors, "spec.externalName")
    elif not ports and cluster_ip != "None":
        _required(errors, "spec.ports")
    if cluster_ip and cluster_ip != "None":
        try:
            ipaddress.ip_address(cluster_ip)
        except ValueError:
            _bad(errors, "spec.clusterIP", cluster_ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
    for i, ip in enumerate(spec.get("externalIPs") or []):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            _bad(errors, f"spec.externalIPs[{i}]", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
    names: set[str] = set()
    for i, port in enumerate(ports):
        field = f"spec.ports[{i}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            _required(errors, f"{field}.name")
        elif name:
            if not _DNS1123_LABEL.match(name) or len(name) > 63:
                _bad(errors, f"{field}.name", name, _DNS1123_LABEL_MSG)
            if name in names:
                errors.append((f"{field}.name", "FieldValueDuplicate", f"Duplicate value: {_json(name)}"))
            names.add(name)
        _port_in_range(errors, f"{field}.port", port.get("port"))
        protocol = port.get("protocol", "TCP")
        if protocol not in _PROTOCOLS:
            _unsupported(errors, f"{field}.protocol", protocol, _PROTOCOLS)
        target = port.get("targetPort")
        if isinstance(target, str) and not target.isdigit():
            if len(target) > 15 or not _IANA_SVC_NAME.match(target) or not re.search("[a-z]", target):
                _bad(errors, f"{field}.targetPort", target, "must contain only alpha-numeric characters (a-z, 0-9), "
                     "and hyphens (-)")
        elif target is not None:
            _port_in_range(errors, f"{field}.targetPort", int(target))
        if "nodePort" in port and type_ not in ("NodePort", "LoadBalancer"):
            errors.append((f"{field}.nodePort", "FieldValueForbidden",
                           "Forbidden: may not be used when `type` is 'ClusterIP'"))
    if old is not None:
        old_ip = (old.get("spec") or {}).get("clusterIP") or ""
        old_type = (old.get("spec") or {}).get("type", "ClusterIP")
        if old_ip and cluster_ip != old_ip and "ExternalName" not in (type_, old_type):
            _immutable(errors, "spec.clusterIP", cluster_ip)


def _configmap(errors: Errors, obj: Mapping[str, Any]) -> None:
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    total = 0
    for field, values in (("data", data), ("binaryData", binary)):
        for key, value in values.items():
            if len(key) > 253:
                _bad(errors, f"{field}[{key}]", key, "must be no more than 253 characters")
            if not _CONFIG_KEY.match(key) or key in (".", ".."):
                _bad(errors, f"{field}[{key}]", key, "a valid config key must consist of alphanumeric characters, "
                     "'-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                     "is '[-._a-zA-Z0-9]+')")
            total += len(str(value))
    for key in sorted(set(data) & set(binary)):
        _bad(errors, "data", key, "duplicate of key present in binaryData")
    if total > _MAX_CONFIGMAP_BYTES:
        errors.append(("", "FieldValueTooLong", f"Too long: must have at most {_MAX_CONFIGMAP_BYTES} bytes"))


def _containers(errors: Errors, pod_spec: Mapping[str, Any], field: str) -> None:
    containers = pod_spec.get("containers") or []
    if not containers:
        _required(errors, f"{field}.containers")
    names: set[str] = set()
    for i, container in enumerate(containers):
        name = container.get("name") or ""
        if not name:
            _required(errors, f"{field}.containers[{i}].name")
        elif not _DNS1123_LABEL.match(name) or len(name) > 63:
            _bad(errors, f"{field}.containers[{i}].name", name, _DNS1123_LABEL_MSG)
        elif name in names:
            errors.append((f"{field}.containers[{i}].name", "FieldValueDuplicate", f"Duplicate value: {_json(name)}"))
        names.add(name)
        if not container.get("image"):
            _required(errors, f"{field}.containers[{i}].image")


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values):
            return False
        if (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def _deployment(errors: Errors, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> None:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        _required(errors, "spec.selector")
    elif not _selector_matches(selector, labels):
        _bad(errors, "spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        _bad(errors, "spec.replicas", replicas, "must be greater than or equal to 0")
    _containers(errors, template.get("spec") or {}, "spec.template.spec")
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        _immutable(errors, "spec.selector", selector)


def _job(errors: Errors, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> None:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    pod_spec = template.get("spec") or {}
    restart = pod_spec.get("restartPolicy")
    if restart not in ("OnFailure", "Never"):
        if restart is None:
            _required(errors, "spec.template.spec.restartPolicy")
        else:
            _unsupported(errors, "spec.template.spec.restartPolicy", restart, ("OnFailure", "Never"))
    _containers(errors, pod_spec, "spec.template.spec")
    if old is not None:
        old_spec = old.get("spec") or {}
        if _strip_job_labels(old_spec.get("template")) != _strip_job_labels(template):
            _immutable(errors, "spec.template", template)
        if spec.get("selector") is not None and old_spec.get("selector") != spec.get("selector"):
            _immutable(errors, "spec.selector", spec.get("selector"))


def _strip_job_labels(template: Any) -> Any:
    """The template without the labels the Job controller adds (compared for immutability)."""
    if not isinstance(template, Mapping):
        return template
    meta = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items()
              if k not in ("controller-uid", "job-name", "batch.kubernetes.io/controller-uid",
                           "batch.kubernetes.io/job-name")}
    return {**template, "metadata": {**meta, "labels": labels}}


_NAME_STYLE = {
    ("", "namespaces"): "label",
    ("", "services"): "dns1035",
    ("", "configmaps"): "subdomain",
    ("", "secrets"): "subdomain",
    ("", "serviceaccounts"): "subdomain",
    ("", "nodes"): "subdomain",
    ("", "pods"): "subdomain",
    ("apps", "deployments"): "subdomain",
    ("apps", "daemonsets"): "subdomain",
    ("apps", "statefulsets"): "subdomain",
    ("batch", "jobs"): "subdomain",
    ("apiextensions.k8s.io", "customresourcedefinitions"): "subdomain",
}


def validate(res: kmock.resource, kind: str, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> None:
    """Raise 422 Invalid (with a Status body listing the causes) if the object is not valid."""
    errors: Errors = []
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    group, plural = str(res.group or ""), str(res.plural)
    if old is None:
        _name_errors(errors, name, _NAME_STYLE.get((group, plural), "segment"))
    _metadata_errors(errors, meta)
    if group == "":
        if plural == "services":
            _service(errors, obj, old)
        elif plural == "configmaps":
            _configmap(errors, obj)
    elif group == "apps" and plural == "deployments":
        _deployment(errors, obj, old)
    elif group == "batch" and plural == "jobs":
        _job(errors, obj, old)
    if errors:
        raise _invalid_fields(kind, group, name, errors)
