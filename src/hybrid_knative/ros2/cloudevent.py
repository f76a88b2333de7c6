"""CloudEvents 1.0 over HTTP, the small subset a bridge needs (no dependency on an SDK).

Binary mode out (``ce-*`` headers, the message as the body — what a Knative Broker ingress takes),
binary or structured (``application/cloudevents+json``) in (what a Trigger delivers). Parsing is
strict: required attributes, attribute-name syntax, header sizes; bad input is a :class:`EventError`
the sink answers with 400 — never an exception escaping the server.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

SPECVERSION = "1.0"
_REQUIRED = ("id", "source", "type")
_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_CONTEXT = frozenset({"specversion", "id", "source", "type", "subject", "time", "dataschema", "datacontenttype"})
_MAX_ATTR = 4096


class EventError(ValueError):
    """Not a valid CloudEvent (HTTP 400)."""


@dataclasses.dataclass(frozen=True)
class CloudEvent:
    attributes: Mapping[str, str]  # everything but data, lower-case names (datacontenttype included)
    data: bytes

    @property
    def type(self) -> str:
        return self.attributes["type"]

    @property
    def content_type(self) -> str:
        return self.attributes.get("datacontenttype", "application/json")

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attributes.get(name, default)


def _check_attributes(attrs: Mapping[str, str]) -> None:
    if attrs.get("specversion") != SPECVERSION:
        raise EventError(f"unsupported specversion {attrs.get('specversion')!r} (want 1.0)")
    for name in _REQUIRED:
        if not attrs.get(name):
            raise EventError(f"the CloudEvent attribute {name!r} is required")
    for name, value in attrs.items():
        if not _NAME.match(name):
            raise EventError(f"bad CloudEvent attribute name {name!r} (lower-case letters and digits, ≤ 20)")
        if len(value) > _MAX_ATTR:
            raise EventError(f"CloudEvent attribute {name!r} is longer than {_MAX_ATTR} characters")


def to_binary(attributes: Mapping[str, str], data: bytes) -> dict[str, str]:
    """HTTP headers for a binary-mode CloudEvent (the body is ``data`` as is)."""
    attrs = {"specversion": SPECVERSION, **attributes}
    _check_attributes(attrs)
    headers = {f"ce-{k}": _percent_encode(v) for k, v in attrs.items() if k != "datacontenttype"}
    headers["Content-Type"] = attrs.get("datacontenttype", "application/json")
    return headers


_NEEDS_ENCODING = re.compile(r'[^\x21-\x7e]|["%]')


def _percent_encode(value: str) -> str:
    # CloudEvents HTTP binding 3.1.3.2: percent-encode space, '"', '%' and non-printable ASCII/UTF-8
    if not _NEEDS_ENCODING.search(value):
        return value
    out: list[str] = []
    for ch in value:
        code = ord(ch)
        if ch in ' "%' or code < 0x21 or code > 0x7E:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def _percent_decode(value: str) -> str:
    raw = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "%" and i + 2 < len(value) and re.fullmatch(r"[0-9A-Fa-f]{2}", value[i + 1 : i + 3]):
            raw.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(value[i].encode("utf-8"))
            i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError("a ce- header is not valid percent-encoded UTF-8") from None


def from_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Parse a binary- or structured-mode CloudEvent from HTTP headers (any case) and body."""
    lower = {k.lower(): v for k, v in headers.items()}
    content_type = lower.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == "application/cloudevents+json":
        return _from_structured(body)
    attrs = {k[3:]: _percent_decode(v) for k, v in lower.items() if k.startswith("ce-")}
    if not attrs:
        raise EventError("no ce- headers and not application/cloudevents+json: not a CloudEvent")
    if content_type:
        attrs["datacontenttype"] = content_type
    _check_attributes(attrs)
    return CloudEvent(attributes=attrs, data=body)


def _from_structured(body: bytes) -> CloudEvent:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise EventError("structured CloudEvent is not JSON") from None
    if not isinstance(doc, dict):
        raise EventError("structured CloudEvent must be a JSON object")
    data: bytes = b""
    if "data_base64" in doc:
        try:
            data = base64.b64decode(str(doc.pop("data_base64")), validate=True)
        except ValueError:
            raise EventError("data_base64 is not base64") from None
    elif "data" in doc:
        value: Any = doc.pop("data")
        data = value.encode("utf-8") if isinstance(value, str) and not doc.get("datacontenttype", "").endswith(
            "json") else json.dumps(value, separators=(",", ":")).encode("utf-8")
    attrs: dict[str, str] = {}
    for k, v in doc.items():
        if isinstance(v, (dict, list)) or v is None:
            raise EventError(f"CloudEvent attribute {k!r} must be a scalar")
        attrs[k] = json.dumps(v) if isinstance(v, bool) else str(v)
    _check_attributes(attrs)
    return CloudEvent(attributes=attrs, data=data)


def is_context_attribute(name: str) -> bool:
    return name in _CONTEXT
