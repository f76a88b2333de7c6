"""Loading Kubernetes objects from YAML text, fast when libyaml is there, correct when it is not."""

from __future__ import annotations

import pickle
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


def load_documents(text: str, *, source: str) -> list[Manifest]:
    """Every non-empty document of ``text``; each must be a Kubernetes object (kind + apiVersion)."""
    try:
        docs = list(yaml.load_all(text, Loader=Loader))
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
