from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from hybrid_knative.errors import PermanentError
from hybrid_knative.kube.objects import Manifest, ObjectRef, ref_of
from hybrid_knative.platform.record import (
    NAMESPACE_REF,
    RECORD_REF,
    CorefileBlock,
    Entry,
    HostFile,
    MergePatch,
    MicroK8sAddon,
    NodeLabels,
    Record,
    Undo,
    record_path,
)


def entry(kind: str, name: str, ns: str | None = "ns", sha: str = "0" * 64) -> Entry:
    return Entry(ObjectRef("v1", kind, ns, name), sha, "step", kind.lower() + "s", ns is not None, "comp")


class Objects:
    """The three verbs the record uses, over a dict (the API emulator covers the real HTTP path)."""

    def __init__(self) -> None:
        self.objects: dict[ObjectRef, Manifest] = {}
        self.writes: list[str] = []

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        return self.objects.get(ref)

    def apply(self, obj: Manifest) -> None:
        self.objects[ref_of(obj)] = obj
        self.writes.append(f"apply {ref_of(obj)}")

    def delete(self, ref: ObjectRef) -> bool:
        self.writes.append(f"delete {ref}")
        return self.objects.pop(ref, None) is not None


def test_saved_in_the_cluster_once_per_save_and_reloaded_elsewhere(tmp_path: Path) -> None:
    cluster = Objects()
    path = record_path(tmp_path, "https://127.0.0.1:16443", "microk8s")
    rec = Record(path, server="s", cluster=cluster)
    rec.put(entry("Namespace", "ns", None))
    rec.put(entry("ConfigMap", "cm"))
    assert cluster.writes == [] and not path.exists()  # nothing written per object
    rec.save()
    assert cluster.writes == [f"apply {NAMESPACE_REF}", f"apply {RECORD_REF}"]
    labels = cluster.objects[RECORD_REF]["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "hybrid-knative"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the local cache
    rec.save()
    assert len(cluster.writes) == 2  # unchanged: not written again
    # another node: no local cache, the cluster's record is the truth
    other = Record.load(tmp_path / "elsewhere" / "r.json", server="s", cluster=cluster)
    assert [e.ref.name for e in other.entries] == ["ns", "cm"] and other.entries[0].component == "comp"
    other.put(entry("ConfigMap", "cm"))  # the same entry again: no change, no save
    other.save()
    assert len(cluster.writes) == 2
    other.clear()
    assert RECORD_REF not in cluster.objects and NAMESPACE_REF not in cluster.objects
    assert Record.load(tmp_path / "x.json", server="s", cluster=cluster).entries == []


def test_undo_entries_are_typed_saved_at_once_and_first_wins(tmp_path: Path) -> None:
    cluster = Objects()
    rec = Record(tmp_path / "r.json", server="s", cluster=cluster)
    kourier = ObjectRef("v1", "Service", "kourier-system", "kourier")
    actions = [MergePatch(kourier, {"spec": {"externalIPs": None}}, "services", True),
               NodeLabels("node-1", {"amd.com/gpu.present": None}, {"a": "old"}),
               CorefileBlock(), HostFile(host="h", path="/etc/x.conf", restart_resolved=True), MicroK8sAddon("nvidia")]
    for index, action in enumerate(actions):
        rec.put_undo(Undo(f"k{index}", action, step="s", component="c"))
        assert len(cluster.writes) == 2 + index  # written before the change it undoes (namespace first)
    rec.put_undo(Undo("k1", NodeLabels("node-1", {"amd.com/gpu.present": "true"})))
    again = Record.load(tmp_path / "other.json", server="s", cluster=cluster)
    assert [u.action for u in again.undos] == list(reversed(actions))  # newest first, first value kept
    again.remove_undo("k0")
    assert [u.key for u in again.undos] == ["k4", "k3", "k2", "k1"]


def test_a_format_1_cache_is_read_and_moved_into_the_cluster(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    node = ObjectRef("v1", "Node", None, "n")
    path.write_text(json.dumps({"format": 1, "server": "s", "release": "1.23",
                                "objects": [entry("Namespace", "ns", None).to_dict()],
                                "undo": [{"ref": node.to_dict(), "key": "gpu-labels", "patch": {"metadata": {}},
                                          "plural": "nodes", "namespaced": False}]}))
    cluster = Objects()
    rec = Record.load(path, server="s", cluster=cluster)
    assert rec.release == "1.23" and isinstance(rec.undos[0].action, MergePatch)
    rec.save()
    assert RECORD_REF in cluster.objects


def test_delete_order_is_reverse_rank_then_reverse_apply(tmp_path: Path) -> None:
    rec = Record(tmp_path / "r.json", server="s")
    for e in [entry("CustomResourceDefinition", "crd", None), entry("Namespace", "ns", None),
              entry("ConfigMap", "cm1"), entry("Deployment", "d"), entry("ConfigMap", "cm2"),
              entry("ValidatingWebhookConfiguration", "wh", None)]:
        rec.put(e)
    assert [e.ref.name for e in rec.delete_order()] == ["wh", "d", "cm2", "cm1", "ns", "crd"]


def test_one_cache_per_cluster(tmp_path: Path) -> None:
    assert record_path(tmp_path, "https://a", "c") != record_path(tmp_path, "https://b", "c")
    assert record_path(tmp_path, "https://a", "c") != record_path(tmp_path, "https://a", "d")


def test_unreadable_record_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(PermanentError, match="unreadable"):
        Record.load(path, server="s")
    path.write_text(json.dumps({"format": 99, "objects": []}))
    with pytest.raises(PermanentError, match="format"):
        Record.load(path, server="s")
    cluster = Objects()
    bad = {"format": 2, "objects": [], "undo": [{"key": "x", "action": {"kind": "?"}}]}
    cluster.objects[RECORD_REF] = {"data": {"record.json": json.dumps(bad)}}
    with pytest.raises(PermanentError, match="unknown undo kind"):
        Record.load(path, server="s", cluster=cluster)


def test_a_host_file_keeps_its_reload_and_a_reload_owed(tmp_path: Path) -> None:
    """hybrid-knative/host: NetworkManager's reload command and "reload still owed" survive the round trip;
    replace_undo (latest wins) saves only when the entry changed; an entry of an older record loads with
    the defaults (restart systemd-resolved, nothing owed)."""
    cluster = Objects()
    rec = Record(tmp_path / "r.json", server="s", cluster=cluster)
    owed = HostFile(host="h", path="/etc/NetworkManager/dnsmasq.d/x.conf", restart_resolved=True,
                    reload=("nmcli", "general", "reload", "dns-full"), reload_pending=True, mode="nm-dnsmasq")
    rec.put_undo(Undo("f", owed))
    saved = len(cluster.writes)
    rec.replace_undo(Undo("f", owed))
    assert len(cluster.writes) == saved  # unchanged: not written again
    done = dataclasses.replace(owed, reload_pending=False)
    rec.replace_undo(Undo("f", done))
    assert len(cluster.writes) == saved + 1
    again = Record.load(tmp_path / "other.json", server="s", cluster=cluster)
    assert [u.action for u in again.undos] == [done]
    old = Undo.from_dict({"key": "f", "action": {"kind": "host-file", "host": "h", "path": "/p",
                                                 "restart_resolved": True}})
    assert old.action == HostFile(host="h", path="/p", restart_resolved=True, reload=(), reload_pending=False,
                                  mode="resolved")
