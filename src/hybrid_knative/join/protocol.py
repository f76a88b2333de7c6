"""The hub's HTTP API, shared by hub and agent: paths, limits, field validation, proofs."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from hybrid_knative.system.gpu import GpuReport

PATH_CA = "/v1/ca"
PATH_HELLO = "/v1/hello"
PATH_ENROL = "/v1/enrol"
MAX_BODY = 64 * 1024
ARCHES = ("amd64", "arm64", "s390x", "ppc64le")
SERVICE_TYPE = "_hybrid-knative._tcp.local."

_HEX16 = re.compile(r"[0-9a-f]{16}")
_NONCE = re.compile(r"[0-9a-f]{32,64}")
_MACHINE_ID = re.compile(r"[0-9a-f]{32}")
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")
_JOIN_URL = re.compile(r"(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})/([A-Za-z0-9]{32,128})/([0-9a-f]{12})")


class FieldError(ValueError):
    """A request field is missing or invalid; the message names the field, never its value."""


def hub_proof(key: bytes, fingerprint: str, nonce: str) -> str:
    """What the hub answers to a hello: proves it knows the token's hash, bound to its CA."""
    return hmac.new(key, f"hk1-hub|{fingerprint}|{nonce}".encode("ascii"), hashlib.sha256).hexdigest()


def parse_hello(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict) or set(body) != {"token_id", "nonce"}:
        raise FieldError("expected exactly the fields token_id and nonce")
    token_id, nonce = body["token_id"], body["nonce"]
    if not isinstance(token_id, str) or not _HEX16.fullmatch(token_id):
        raise FieldError("invalid field: token_id")
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise FieldError("invalid field: nonce")
    return token_id, nonce


def parse_device(body: Any) -> dict[str, Any]:
    """The ``device`` object of an enrolment request, validated; GPU facts re-parsed strictly."""
    allowed = {"machine_id", "node_name", "arch", "memory_mb", "gpu"}
    if not isinstance(body, dict):
        raise FieldError("invalid field: device")
    unknown = set(body) - allowed
    if unknown or not {"machine_id", "node_name", "arch"} <= set(body):
        raise FieldError("device must have machine_id, node_name, arch and optionally memory_mb, gpu")
    machine_id, node_name, arch = body["machine_id"], body["node_name"], body["arch"]
    if not isinstance(machine_id, str) or not _MACHINE_ID.fullmatch(machine_id):
        raise FieldError("invalid field: device.machine_id")
    if not isinstance(node_name, str) or len(node_name) > 253 or not _NODE_NAME.fullmatch(node_name):
        raise FieldError("invalid field: device.node_name")
    if arch not in ARCHES:
        raise FieldError("invalid field: device.arch")
    memory = body.get("memory_mb")
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, int) or not 0 <= memory < 2**31):
        raise FieldError("invalid field: device.memory_mb")
    gpu = None
    if body.get("gpu") is not None:
        try:
            gpu = GpuReport.from_dict(body["gpu"])
        except (ValueError, TypeError, KeyError, AttributeError):
            raise FieldError("invalid field: device.gpu") from None
        if len(gpu.devices) > 64:
            raise FieldError("invalid field: device.gpu")
    return {"machine_id": machine_id, "node_name": node_name, "arch": arch, "memory_mb": memory, "gpu": gpu}


def parse_add_node_output(text: str) -> list[str]:
    """`microk8s add-node --format json`: {"token": "<token>/<check>", "urls": ["ip:25000/<token>/<check>", …]}."""
    import json

    data = json.loads(text)
    if not isinstance(data, Mapping) or not isinstance(data.get("urls"), list) or not data["urls"]:
        raise ValueError("no urls")
    urls = [u for u in data["urls"] if isinstance(u, str) and valid_join_url(u)]
    if not urls:
        raise ValueError("no valid IPv4 join url")
    return urls


def valid_join_url(url: str) -> bool:
    match = _JOIN_URL.fullmatch(url)
    if not match:
        return False
    return all(0 <= int(o) <= 255 for o in match[1].split(".")) and 1 <= int(match[2]) <= 65535
