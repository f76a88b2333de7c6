"""Label and field selectors, parsed and matched like the apiserver does."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.harness.emulator.common import _bad_request, _meta

_SET_REQUIREMENT = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_REQUIREMENT = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_REQUIREMENT = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part.strip()]


def parse_label_selector(selector: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """Parse ``k=v,k2!=v2,k3 in (a,b),k4 notin (c),k5,!k6`` into (key, operator, values)."""
    requirements: list[tuple[str, str, tuple[str, ...]]] = []
    for part in _split_selector(selector):
        if m := _SET_REQUIREMENT.match(part):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append((m.group(1), m.group(2), values))
        elif m := _EQ_REQUIREMENT.match(part):
            op = "!=" if m.group(2) == "!=" else "="
            requirements.append((m.group(1), op, (m.group(3),)))
        elif m := _EXISTS_REQUIREMENT.match(part):
            requirements.append((m.group(2), "!" if m.group(1) else "exists", ()))
        else:
            raise _bad_request(f"unable to parse requirement: {part!r}")
    return requirements


def _labels_match(labels: Mapping[str, str], requirements: Iterable[tuple[str, str, tuple[str, ...]]]) -> bool:
    for key, op, values in requirements:
        present = key in labels
        value = labels.get(key)
        if op == "=" and value != values[0]:
            return False
        if op == "!=" and present and value == values[0]:
            return False
        if op == "in" and (not present or value not in values):
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
    return True


def _parse_field_selector(selector: str) -> list[tuple[str, bool, str]]:
    requirements = []
    for part in _split_selector(selector):
        if m := _EQ_REQUIREMENT.match(part):
            requirements.append((m.group(1), m.group(2) != "!=", m.group(3)))
        else:
            raise _bad_request(f"invalid field selector: {part!r}")
    return requirements


def _field_value(obj: Mapping[str, Any], dotted: str) -> str:
    value: Any = obj
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fields_match(obj: Mapping[str, Any], requirements: Iterable[tuple[str, bool, str]]) -> bool:
    return all((_field_value(obj, path) == value) == equal for path, equal, value in requirements)


@dataclass(frozen=True)
class _Selectors:
    labels: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    fields: tuple[tuple[str, bool, str], ...] = ()

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> _Selectors:
        return cls(
            labels=tuple(parse_label_selector(params.get("labelSelector", ""))),
            fields=tuple(_parse_field_selector(params.get("fieldSelector", ""))),
        )

    def match(self, obj: Mapping[str, Any]) -> bool:
        labels = _meta(obj).get("labels") or {}
        return _labels_match(labels, self.labels) and _fields_match(obj, self.fields)
