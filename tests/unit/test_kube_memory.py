"""KubeApi's read memory (enable's no-op re-run): one LIST per kind answers "present?", reads are not
repeated until something is written or the caller waits (forget), and nothing is remembered outside
`remembering()` — against the API emulator's request log (counts, not time)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.harness.emulator import ApiServer

from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import ObjectRef

LABELS = {"app.kubernetes.io/managed-by": "hybrid-knative"}


def _cm(name: str, ns: str = "default", labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns,
                                                                  "labels": labels or dict(LABELS)},
            "data": {"k": name}}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[ApiServer, KubeApi]]:
    with ApiServer(version="1.34.2") as server:
        kube = KubeApi.connect(server.write_kubeconfig(tmp_path / "kubeconfig"))
        yield server, kube


def test_present_lists_each_kind_once_and_follows_own_writes(api: tuple[ApiServer, KubeApi]) -> None:
    server, kube = api
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    kube.apply(_cm("a"))
    kube.apply(_cm("b", "other"))
    kube.apply(_cm("foreign", labels={"app": "someone-else"}))
    server.reset_requests()
    assert kube.present(ObjectRef("v1", "ConfigMap", "default", "a"), labels=LABELS)
    assert kube.present(ObjectRef("v1", "ConfigMap", "other", "b"), labels=LABELS)
    assert not kube.present(ObjectRef("v1", "ConfigMap", "default", "foreign"), labels=LABELS)  # not ours
    assert not kube.present(ObjectRef("v1", "ConfigMap", "default", "missing"), labels=LABELS)
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/api/v1/configmaps")]
    kube.apply(_cm("missing"))
    kube.delete(ObjectRef("v1", "ConfigMap", "default", "a"))
    assert kube.present(ObjectRef("v1", "ConfigMap", "default", "missing"), labels=LABELS)
    assert not kube.present(ObjectRef("v1", "ConfigMap", "default", "a"), labels=LABELS)
    assert len(server.requests) == 3  # the LIST and the two writes


def test_reads_are_remembered_until_a_write_or_forget(api: tuple[ApiServer, KubeApi]) -> None:
    server, kube = api
    kube.apply(_cm("a"))
    ref = ObjectRef("v1", "ConfigMap", "default", "a")
    server.reset_requests()
    kube.get(ref)
    kube.get(ref)
    assert len(server.requests) == 2  # outside remembering(): every read asks the server
    with kube.remembering():
        server.reset_requests()
        got = kube.get(ref)
        assert got is not None
        got["data"]["k"] = "changed by the caller"
        assert (kube.get(ref) or {})["data"] == {"k": "a"}  # a copy: the memory is not changed by callers
        kube.list("v1", "ConfigMap", namespace="default")
        kube.list("v1", "ConfigMap", namespace="default")
        assert len(server.requests) == 2
        kube.merge_patch(ref, {"data": {"k": "new"}})
        assert (kube.get(ref) or {})["data"] == {"k": "new"}  # a write drops what was remembered
        assert len(server.requests) == 4
        kube.forget()
        kube.get(ref)
        assert len(server.requests) == 5
    kube.get(ref)
    assert len(server.requests) == 6  # remembering ended


def test_branch_clients_share_one_memory_and_index_and_count_their_own_requests(
        api: tuple[ApiServer, KubeApi]) -> None:
    """enable's overlapped installs: a client per thread, one memory as if one client made every request."""
    import threading

    server, kube = api
    kube.apply(_cm("a"))
    kube.apply(_cm("b"))
    ref = ObjectRef("v1", "ConfigMap", "default", "a")
    with kube.remembering():
        one, two = kube.branch(), kube.branch()
        server.reset_requests()
        assert one.present(ref, labels=LABELS)  # one LIST for both (and for the parent)
        assert two.present(ObjectRef("v1", "ConfigMap", "default", "b"), labels=LABELS)
        assert (two.get(ref) or {})["data"] == {"k": "a"}  # filled by one's LIST
        assert [(r.method, r.path) for r in server.requests] == [("GET", "/api/v1/configmaps")]
        assert (one.counters.reads, two.counters.reads) == (1, 0)
        two.merge_patch(ref, {"data": {"k": "new"}})  # a write by two drops what one remembered
        assert (one.get(ref) or {})["data"] == {"k": "new"}
        assert len(server.requests) == 3
        one.forget()  # a wait's sleep in one thread: the next read in any thread asks the server
        two.get(ref)
        assert len(server.requests) == 4
        # reads from two threads at once, while a third forgets: no error, every answer right
        answers: list[object] = []

        def read() -> None:
            for _ in range(20):
                answers.append((one.get(ref) or {})["data"]["k"])

        threads = [threading.Thread(target=read), threading.Thread(target=lambda: [two.forget() for _ in range(50)])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert answers == ["new"] * 20
        reads_before, writes_before = kube.counters.reads, kube.counters.writes
        kube.absorb(one)
        kube.absorb(two)
        assert kube.counters.writes == writes_before + 1
        assert kube.counters.reads == reads_before + len(server.requests) - 1
        assert one.counters.reads == one.counters.writes == 0
