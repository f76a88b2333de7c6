"""Loading Kubernetes objects from YAML text, fast when libyaml is there, correct when it is not."""

from __future__ import annotations

import pickle
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.manifests import emit

# the C loader is ~10x faster on the 500 kB Knative files; PyYAML built without libyaml has only the Python one
Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# the C emitter writes the same YAML ~5x faster (plan writes every rendered object)
Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# sha256 of a pinned upstream file → its parsed documents, pickled (unpickling is far cheaper than parsing
# again, and every caller gets objects of its own to transform)
_PARSED: dict[str, bytes] = {}
_PARSED_LOCK = threading.Lock()


def dump(obj: Any) -> str:
    """One object as block YAML, keys in their order (what `plan` writes): our small writer, PyYAML's (C)
    emitter for data it does not handle."""
    try:
        return emit.emit(obj)
    except emit.Unsupported:
        text: str = yaml.dump(obj, Dumper=Dumper, sort_keys=False)
        return text


def dump_all(objs: Iterable[Any]) -> str:
    return "---\n".join(dump(o) for o in objs)


def load_pinned(sha256: str, read: Callable[[], str], *, source: str) -> list[Manifest]:
    """The documents of a pinned file, parsed once per process: ``read`` is called only the first time
    (the file's content is fixed by its sha256, checked by the upstream store when it is read)."""
    with _PARSED_LOCK:
        cached = _PARSED.get(sha256)
    if cached is None:
        objs = load_documents(read(), source=source)
        cached = pickle.dumps(objs, protocol=pickle.HIGHEST_PROTOCOL)
        with _PARSED_LOCK:
            _PARSED[sha256] = cached
        return objs
    docs: list[Manifest] = pickle.loads(cached)  # noqa: S301 - our own bytes from this process
    return docs


def clear_parsed() -> None:
    """Forget parsed files (benchmarks measure a cold render)."""
    with _PARSED_LOCK:
        _PARSED.clear()


_STR, _MAP, _SEQ = "tag:yaml.org,2002:str", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_NULL, _BOOL, _INT = "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int"
_SPECIAL_KEYS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")
_BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")


def _construct(node: yaml.Node, loader: Any, memo: dict[int, Any]) -> Any:
    """What SafeConstructor builds from a composed node, without its per-node Python machinery for the
    common cases (strings, mappings, sequences, null, booleans, decimal integers); everything else (other
    integers, floats, timestamps, binary, merge keys, sets) is handed to SafeConstructor itself."""
    tag = node.tag
    if tag == _STR:
        return node.value
    if tag in (_MAP, _SEQ):
        if id(node) in memo:  # an alias: the same object, like SafeConstructor
            return memo[id(node)]
        if tag == _SEQ:
            items: list[Any] = []
            memo[id(node)] = items
            items.extend(_construct(child, loader, memo) for child in node.value)
            return items
        if any(key.tag in _SPECIAL_KEYS for key, _ in node.value):
            return loader.construct_object(node, deep=True)
        mapping: dict[Any, Any] = {}
        memo[id(node)] = mapping
        for key_node, value_node in node.value:
            key = _construct(key_node, loader, memo)
            try:
                mapping[key] = _construct(value_node, loader, memo)
            except TypeError:  # an unhashable key: SafeConstructor's error message
                return loader.construct_object(node, deep=True)
        return mapping
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return _BOOLS[node.value.lower()]
    if tag == _INT and _DECIMAL.fullmatch(node.value):
        return int(node.value)
    return loader.construct_object(node, deep=True)


def parse_all(text: str) -> list[Any]:
    """``yaml.safe_load_all(text)`` as a list, faster: libyaml composes the nodes (when present), the
    common node kinds are built directly (tests/unit/test_manifests_cache.py compares both on every
    vendored file)."""
    loader = Loader(text)
    try:
        docs = []
        while loader.check_node():
            docs.append(_construct(loader.get_node(), loader, {}))
            loader.constructed_objects = {}
            loader.recursive_objects = {}
        return docs
    finally:
        loader.dispose()


def load_documents(text: str, *, source: str) -> list[Manifest]:
    """Every non-empty document of ``text``; each must be a Kubernetes object (kind + apiVersion)."""
    try:
        docs = parse_all(text)
    except yaml.YAMLError as exc:
        raise PermanentError(f"{source} is not valid YAML: {exc}") from None
    objs = [d for d in docs if d]
    for d in objs:
        if not isinstance(d, dict) or "kind" not in d or "apiVersion" not in d:
            raise PermanentError(f"{source} contains a document that is not a Kubernetes object")
    return objs


def load_file(path: Path) -> list[Manifest]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PermanentError(f"cannot read {path}: {exc.strerror or exc}") from None
    return load_documents(text, source=str(path))
