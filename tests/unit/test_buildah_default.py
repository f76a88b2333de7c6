"""Buildah.default: inside the snap it runs the snap's wrapper (bin/hk-buildah: the snap's storage.conf, chroot
isolation, libraries) and the snap's policy.json when the host has none; elsewhere `buildah` from PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_knative.system.buildah import Buildah
from hybrid_knative.system.runner import Runner


def snap_tree(root: Path, *, wrapper: bool) -> Path:
    for rel in ("usr/bin/buildah", "etc/containers/policy.json", *(["bin/hk-buildah"] if wrapper else [])):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    return root


def test_in_the_snap_the_wrapper_runs_buildah(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snap = snap_tree(tmp_path / "snap", wrapper=True)
    monkeypatch.setenv("SNAP", str(snap))
    monkeypatch.setenv("SNAP_USER_COMMON", str(tmp_path / "common"))
    buildah = Buildah.default(Runner())
    assert buildah.binary == str(snap / "bin" / "hk-buildah")
    assert buildah.root == tmp_path / "common" / "hybrid-knative" / "containers"
    host_policy = Path("/etc/containers/policy.json").exists()
    assert buildah.policy == (None if host_policy else snap / "etc" / "containers" / "policy.json")


def test_an_older_snap_tree_without_the_wrapper_and_outside_the_snap(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    snap = snap_tree(tmp_path / "snap", wrapper=False)
    monkeypatch.setenv("SNAP", str(snap))
    assert Buildah.default(Runner()).binary == str(snap / "usr" / "bin" / "buildah")
    monkeypatch.delenv("SNAP")
    assert Buildah.default(Runner()).binary == "buildah"
