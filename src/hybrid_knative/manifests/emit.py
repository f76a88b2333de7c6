"""A small YAML writer for Kubernetes objects (dicts, lists, strings, numbers, booleans, null).

PyYAML's C emitter still builds its node graph in Python (`representer`), which was most of `plan`'s time;
this writer emits block YAML straight from the data. Strings are plain only when a YAML 1.1 loader cannot
read them as anything else (a conservative pattern), multi-line text as a literal block, anything else as
a JSON string (a valid YAML double-quoted scalar). Data it does not know (dates, bytes, NaN) goes to PyYAML.
tests/unit/test_manifests_cache.py checks that every rendered object reads back unchanged.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@-]*(?: [A-Za-z0-9_./@()-]+)*")
# words YAML 1.1 loaders (PyYAML) read as booleans or null, in any case; anything starting with a digit,
# sign, dot or YAML indicator is never plain above
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_SAFE_LINE = re.compile(r"[^\x00-\x08\x0b-\x1f\x7f\u2028\u2029\ufeff\t\r]*")


class Unsupported(Exception):
    """Data this writer does not handle; the caller falls back to PyYAML."""


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unsupported("non-finite float")
        text = repr(value)  # YAML 1.1 floats need a dot: 1e+300 → 1.0e+300
        return text if "." in text else text.replace("e", ".0e", 1)
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED and not value.endswith(":"):
            return value
        return json.dumps(value, ensure_ascii=False)
    raise Unsupported(type(value).__name__)


def _literal(value: str) -> bool:
    """Multi-line text that a literal block keeps exactly."""
    if "\n" not in value.rstrip("\n") or value.startswith((" ", "\n")):
        return False
    lines = value.split("\n")
    return all(_SAFE_LINE.fullmatch(line) and line == line.rstrip(" ") for line in lines)


def _block(value: str, pad: str) -> list[str]:
    body = value.rstrip("\n")
    trailing = len(value) - len(body)
    head = "|-" if trailing == 0 else "|" if trailing == 1 else "|+"
    lines = [head] + [f"{pad}{line}" if line else "" for line in body.split("\n")]
    if trailing > 1:
        lines.extend([""] * (trailing - 1))
    return lines


def _value(key_prefix: str, value: Any, indent: int, out: list[str]) -> None:
    """``key_prefix`` is 'key:' or '-' with its indentation already in it."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        if key_prefix.endswith("-"):  # "- first: ..." then the other keys under it
            inner: list[str] = []
            _mapping(value, indent + 2, inner)
            out.append(key_prefix + " " + inner[0].lstrip(" "))
            out.extend(inner[1:])
        else:
            out.append(key_prefix)
            _mapping(value, indent + 2, out)
    elif isinstance(value, list) and value:
        if key_prefix.endswith("-"):
            inner = []
            _sequence(value, indent + 2, inner)
            out.append(key_prefix + " " + inner[0].lstrip(" "))
            out.extend(inner[1:])
        else:
            out.append(key_prefix)
            _sequence(value, indent + 2, out)
    elif isinstance(value, dict):
        out.append(key_prefix + " {}")
    elif isinstance(value, list):
        out.append(key_prefix + " []")
    elif isinstance(value, str) and _literal(value):
        lines = _block(value, pad + "  ")
        out.append(f"{key_prefix} {lines[0]}")
        out.extend(lines[1:])
    else:
        out.append(f"{key_prefix} {_scalar(value)}")


def _mapping(data: dict[Any, Any], indent: int, out: list[str]) -> None:
    pad = " " * indent
    for key, value in data.items():
        if not isinstance(key, str):
            raise Unsupported("non-string key")
        _value(f"{pad}{_scalar(key)}:", value, indent, out)


def _sequence(items: list[Any], indent: int, out: list[str]) -> None:
    pad = " " * indent
    for item in items:
        _value(f"{pad}-", item, indent, out)


def emit(data: Any) -> str:
    """One document (no '---'), ending with a newline. Raises Unsupported for data it does not handle."""
    out: list[str] = []
    if isinstance(data, dict) and data:
        _mapping(data, 0, out)
    elif isinstance(data, list) and data:
        _sequence(data, 0, out)
    else:
        return (_scalar(data) if not isinstance(data, (dict, list)) else "{}" if isinstance(data, dict) else "[]") \
            + "\n"
    return "\n".join(out) + "\n"
