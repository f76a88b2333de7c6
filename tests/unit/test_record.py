from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from hybrid_knative.errors import PermanentError
from hybrid_knative.install.record import Entry, Record, record_path
from hybrid_knative.kube.objects import ObjectRef


def entry(kind: str, name: str, ns: str | None = "ns", sha: str = "0" * 64) -> Entry:
    return Entry(ObjectRef("v1", kind, ns, name), sha, "step", kind.lower() + "s", ns is not None)


def test_saved_after_every_change_and_reloaded(tmp_path: Path) -> None:
    path = record_path(tmp_path, "https://127.0.0.1:16443", "microk8s")
    rec = Record(path, server="s")
    rec.put(entry("Namespace", "ns", None))
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rec.put(entry("ConfigMap", "cm"))
    again = Record.load(path, server="s")
    assert [e.ref.name for e in again.entries] == ["ns", "cm"]
    again.remove(ObjectRef("v1", "ConfigMap", "ns", "cm"))
    again.remove(ObjectRef("v1", "Namespace", None, "ns"))
    assert not path.exists()  # an empty record is no record


def test_one_record_per_cluster(tmp_path: Path) -> None:
    assert record_path(tmp_path, "https://a", "c") != record_path(tmp_path, "https://b", "c")
    assert record_path(tmp_path, "https://a", "c") != record_path(tmp_path, "https://a", "d")


def test_delete_order_is_reverse_rank_then_reverse_apply(tmp_path: Path) -> None:
    rec = Record(tmp_path / "r.json", server="s")
    for e in [entry("CustomResourceDefinition", "crd", None), entry("Namespace", "ns", None),
              entry("ConfigMap", "cm1"), entry("Deployment", "d"), entry("ConfigMap", "cm2"),
              entry("ValidatingWebhookConfiguration", "wh", None)]:
        rec.put(e)
    assert [e.ref.name for e in rec.delete_order()] == ["wh", "d", "cm2", "cm1", "ns", "crd"]


def test_unreadable_record_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(PermanentError, match="unreadable"):
        Record.load(path, server="s")
    path.write_text(json.dumps({"format": 99, "objects": []}))
    with pytest.raises(PermanentError, match="format"):
        Record.load(path, server="s")
