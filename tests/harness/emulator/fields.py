"""Server-side apply: field sets, ``managedFields`` and conflicts, as the Kubernetes documentation
describes them (https://kubernetes.io/docs/reference/using-api/server-side-apply/):

* every manager's set of owned fields is recorded in ``metadata.managedFields`` (``FieldsV1``);
* an apply that changes a field owned by another manager is refused with 409 Conflict, unless
  ``force=true``, which moves the ownership to the applier; applying the same value shares it;
* a field the same manager applied before and drops from its new configuration is removed from
  the object, unless another manager also owns it;
* non-apply writes (create, update, patch) give their manager (operation ``Update``) the fields
  they changed, and take those fields away from the other managers.

Paths are tuples of FieldsV1 path elements: ``f:<key>`` for a map key, ``k:<json>`` for an item of
an associative list (keyed by its merge keys). Lists without merge keys are atomic (one field).
Built-in kinds use Kubernetes' list-map keys; custom resources' lists are atomic (the CRD default).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import kmock

from tests.harness.emulator.common import _SYSTEM_META, _copy, _details, _error, _json, _now

Path = tuple[str, ...]

# Associative (list-map) lists of built-in kinds: field name -> the keys of one item.
_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "conditions": ("type",),
    "hostAliases": ("ip",),
    "ownerReferences": ("uid",),
    "resourceClaims": ("name",),
}


def _item_keys(field: str, items: list[Any]) -> tuple[str, ...] | None:
    """The list-map keys of a built-in list, or None if it is atomic."""
    if not items or not all(isinstance(item, Mapping) for item in items):
        return None
    if field == "ports":
        first = items[0]
        key = "containerPort" if "containerPort" in first else "port" if "port" in first else None
        if key is None or not all(key in item for item in items):
            return None
        return (key, "protocol")
    keys = _LIST_KEYS.get(field)
    if keys is None or not all(all(k in item for k in keys) for item in items):
        return None
    return keys


def _key_of(item: Mapping[str, Any], keys: tuple[str, ...]) -> str:
    values = {k: item.get(k, "TCP" if k == "protocol" else None) for k in keys}
    return "k:" + _json(values)


def _leaves(value: Any, prefix: Path, builtin: bool, field: str = "") -> set[Path]:
    if isinstance(value, Mapping):
        if not value:
            return {prefix} if prefix else set()
        found: set[Path] = set()
        for key, sub in value.items():
            found |= _leaves(sub, (*prefix, f"f:{key}"), builtin, str(key))
        return found
    if isinstance(value, list) and builtin:
        keys = _item_keys(field, value)
        if keys is not None:
            found = set()
            for item in value:
                item_path = (*prefix, _key_of(item, keys))
                found |= _leaves(item, item_path, builtin) or {item_path}
            return found
    return {prefix}


def field_set(obj: Mapping[str, Any], *, builtin: bool, subresource: str | None, status_separate: bool) -> set[Path]:
    """The leaf fields an object (or an apply configuration) sets, as the apiserver tracks them."""
    if subresource == "status":
        return _leaves(obj.get("status"), ("f:status",), builtin) if obj.get("status") is not None else set()
    trimmed: dict[str, Any] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and status_separate):
            continue
        if key == "metadata" and isinstance(value, Mapping):
            meta = {k: v for k, v in value.items() if k not in _SYSTEM_META}
            if meta:
                trimmed[key] = meta
            continue
        trimmed[key] = value
    return _leaves(trimmed, (), builtin)


def encode(paths: Iterable[Path]) -> dict[str, Any]:
    """A set of paths as ``fieldsV1`` (nested maps; ``"."`` marks a list item owned as a whole)."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
            if element.startswith("k:"):
                node.setdefault(".", {})
    return root


def decode(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    found: set[Path] = set()
    for element, sub in fields.items():
        if element == ".":
            continue
        path = (*prefix, element)
        children = {k: v for k, v in (sub or {}).items() if k != "."}
        found |= decode(children, path) if children else {path}
    return found


def _step(node: Any, element: str) -> Any:
    if element.startswith("f:"):
        return node.get(element[2:]) if isinstance(node, Mapping) else None
    if element.startswith("k:") and isinstance(node, list):
        wanted = json.loads(element[2:])
        for item in node:
            if isinstance(item, Mapping) and all(
                item.get(k, "TCP" if k == "protocol" else None) == v for k, v in wanted.items()
            ):
                return item
    return None


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    node = obj
    for element in path:
        node = _step(node, element)
        if node is None:
            return _MISSING
    return node


def remove_path(obj: Any, path: Path) -> None:
    """Remove one field (and the list items and maps it leaves empty) from an object, in place."""
    if not path:
        return
    parents = [obj]
    node = obj
    for element in path[:-1]:
        node = _step(node, element)
        if node is None:
            return
        parents.append(node)
    _drop(parents[-1], path[-1])
    # prune the containers this removal emptied (not the top-level object)
    for depth in range(len(path) - 1, 0, -1):
        child = parents[depth]
        if child in ({}, []):
            _drop(parents[depth - 1], path[depth - 1])
        else:
            break


def _drop(node: Any, element: str) -> None:
    if element.startswith("f:") and isinstance(node, dict):
        node.pop(element[2:], None)
    elif element.startswith("k:") and isinstance(node, list):
        item = _step(node, element)
        if item is not None:
            node.remove(item)


def merge_applied(live: Any, config: Any, builtin: bool, field: str = "") -> Any:
    """Merge an apply configuration into the live object: maps by key, list-maps by item key."""
    if isinstance(config, Mapping) and isinstance(live, Mapping):
        result = dict(live)
        for key, value in config.items():
            result[key] = merge_applied(live.get(key), value, builtin, str(key))
        return result
    if builtin and isinstance(config, list) and isinstance(live, list):
        keys = _item_keys(field, config)
        if keys is not None and _item_keys(field, live) in (keys, None) and all(isinstance(i, Mapping) for i in live):
            live_by_key = {_key_of(item, keys): item for item in live}
            merged = [merge_applied(live_by_key.get(_key_of(item, keys)), item, builtin) for item in config]
            wanted = {_key_of(item, keys) for item in config}
            merged += [item for k, item in live_by_key.items() if k not in wanted]
            return merged
    return _copy(config)


def _dotted(path: Path) -> str:
    text = ""
    for element in path:
        if element.startswith("f:"):
            text += "." + element[2:]
        else:
            keys = json.loads(element[2:])
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
    return text


# -- managedFields entries --------------------------------------------------------------------------


def _entries(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(e) for e in meta.get("managedFields") or [] if isinstance(e, Mapping)]


def _entry_paths(entry: Mapping[str, Any]) -> set[Path]:
    return decode(entry.get("fieldsV1") or {})


def _same_slot(entry: Mapping[str, Any], manager: str, operation: str, subresource: str | None) -> bool:
    return (
        entry.get("manager") == manager
        and entry.get("operation") == operation
        and entry.get("subresource") == subresource
    )


def _set_entry(
    entries: list[dict[str, Any]],
    manager: str,
    operation: str,
    subresource: str | None,
    api_version: str,
    paths: set[Path],
) -> list[dict[str, Any]]:
    kept = [e for e in entries if not _same_slot(e, manager, operation, subresource)]
    if paths:
        entry: dict[str, Any] = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": _now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": encode(paths),
        }
        if subresource:
            entry["subresource"] = subresource
        previous = [e for e in entries if _same_slot(e, manager, operation, subresource)]
        if previous and _entry_paths(previous[0]) == paths:
            entry["time"] = previous[0].get("time", entry["time"])
        kept.append(entry)
    return kept


def _without_paths(entries: list[dict[str, Any]], taken: set[Path], keep: Any = None) -> list[dict[str, Any]]:
    result = []
    for entry in entries:
        if entry is keep:
            result.append(entry)
            continue
        paths = _entry_paths(entry)
        if paths & taken:
            paths -= taken
            if not paths:
                continue
            entry = {**entry, "fieldsV1": encode(paths)}
        result.append(entry)
    return result


def track_update(
    old: Mapping[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    builtin: bool,
    subresource: str | None,
    status_separate: bool,
) -> None:
    """Record a non-apply write by ``manager`` in ``new``'s managedFields (in place)."""
    new_fields = field_set(new, builtin=builtin, subresource=subresource, status_separate=status_separate)
    if old is None:
        changed = new_fields
        removed: set[Path] = set()
        entries: list[dict[str, Any]] = []
    else:
        old_fields = field_set(old, builtin=builtin, subresource=subresource, status_separate=status_separate)
        changed = {p for p in new_fields if value_at(old, p) != value_at(new, p)}
        removed = old_fields - new_fields
        entries = _entries(old.get("metadata") or {})
    if old is not None and not changed and not removed:
        new["metadata"]["managedFields"] = entries
        return
    entries = _without_paths(entries, changed | removed)
    mine = next((e for e in entries if _same_slot(e, manager, "Update", subresource)), None)
    owned = (_entry_paths(mine) if mine else set()) | changed
    owned = {p for p in owned if p in new_fields}
    entries = _set_entry(entries, manager, "Update", subresource, str(new.get("apiVersion", "")), owned)
    new["metadata"]["managedFields"] = entries


def server_side_apply(
    res: kmock.resource,
    name: str,
    live: dict[str, Any],
    config: dict[str, Any],
    *,
    manager: str,
    force: bool,
    builtin: bool,
    subresource: str | None,
    status_separate: bool,
) -> dict[str, Any]:
    """The new object for an apply of ``config`` by ``manager`` onto ``live`` (409 on conflicts)."""
    applied = field_set(config, builtin=builtin, subresource=subresource, status_separate=status_separate)
    entries = _entries(live.get("metadata") or {})
    mine = next((e for e in entries if _same_slot(e, manager, "Apply", subresource)), None)
    previous = _entry_paths(mine) if mine else set()
    conflicts: dict[str, list[Path]] = {}
    for entry in entries:
        if entry is mine or entry.get("subresource") != subresource:
            continue
        for path in _entry_paths(entry) & applied:
            if value_at(live, path) != value_at(config, path):
                conflicts.setdefault(str(entry.get("manager")), []).append(path)
    if conflicts and not force:
        raise _apply_conflict(res, name, conflicts, str(live.get("apiVersion", "")))
    if conflicts:  # force: the applier takes these fields over
        entries = _without_paths(entries, {p for paths in conflicts.values() for p in paths}, keep=mine)
    others: set[Path] = set()
    for entry in entries:
        if entry is not mine and entry.get("subresource") == subresource:
            others |= _entry_paths(entry)
    result = _copy(live)
    for path in sorted(previous - applied, key=len, reverse=True):
        if path not in others and not any(o[: len(path)] == path for o in others):
            remove_path(result, path)
    if subresource == "status":
        if "status" in config:
            result["status"] = merge_applied(result.get("status"), config["status"], builtin, "status")
    else:
        body = {k: v for k, v in config.items() if not (k == "status" and status_separate)}
        meta = {k: v for k, v in (body.pop("metadata", None) or {}).items() if k not in _SYSTEM_META}
        result = merge_applied(result, body, builtin)
        result["metadata"] = merge_applied(result.get("metadata") or {}, meta, builtin)
    entries = [e for e in entries if e is not mine] + ([mine] if mine else [])
    result.setdefault("metadata", {})["managedFields"] = _set_entry(
        entries, manager, "Apply", subresource, str(config.get("apiVersion", live.get("apiVersion", ""))), applied
    )
    return result


def _apply_conflict(
    res: kmock.resource, name: str, conflicts: Mapping[str, list[Path]], api_version: str
) -> kmock.KubernetesError:
    causes = []
    lines = []
    for manager, paths in sorted(conflicts.items()):
        for path in sorted(paths):
            causes.append(
                {
                    "reason": "FieldManagerConflict",
                    "message": f'conflict with "{manager}" using {api_version}',
                    "field": _dotted(path),
                }
            )
            lines.append(f'conflict with "{manager}" using {api_version}: {_dotted(path)}')
    count = len(causes)
    head = f"Apply failed with {count} conflict{'s' if count != 1 else ''}: "
    message = head + (lines[0] if count == 1 else "\n" + "\n".join(f"- {line}" for line in lines))
    return _error(409, "Conflict", message, {**_details(res, name), "causes": causes})
