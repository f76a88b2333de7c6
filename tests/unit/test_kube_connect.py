"""KubeApi.connect: every kubeconfig problem is one clear error naming what to pass, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hybrid_knative.errors import ConfigError
from hybrid_knative.kube.api import KubeApi


def _kubeconfig(path: Path, *contexts: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0],
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": "u"}} for name in contexts],
    }))
    return path


def test_unknown_context_lists_the_files_contexts_and_the_flag(tmp_path: Path) -> None:
    kc = _kubeconfig(tmp_path / "kc", "microk8s", "gke_prod")
    with pytest.raises(ConfigError) as err:
        KubeApi.connect(kc, "gke-prod", context_flag="--to")
    assert "'gke-prod'" in str(err.value) and "gke_prod, microk8s" in str(err.value)
    assert "--to" in (err.value.resolution or "")


def test_known_context_connects_without_a_request(tmp_path: Path) -> None:
    kc = _kubeconfig(tmp_path / "kc", "microk8s", "gke_prod")
    api = KubeApi.connect(kc, "gke_prod")
    assert api.context == "gke_prod"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kubeconfig not found"):
        KubeApi.connect(tmp_path / "absent")
