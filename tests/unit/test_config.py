from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_knative.config import Config, KubeVersion, SnapPaths, parse_release
from hybrid_knative.errors import ConfigError


@pytest.mark.parametrize(("text", "expected"), [
    ("1.34", KubeVersion(1, 34, 0)),
    ("v1.34.2", KubeVersion(1, 34, 2)),
    ("v1.33.4+k3s1", KubeVersion(1, 33, 4)),
    ("1.36.0-rc.1", KubeVersion(1, 36, 0)),
    (" v1.32.9 ", KubeVersion(1, 32, 9)),
])
def test_kube_version_parses(text: str, expected: KubeVersion) -> None:
    assert KubeVersion.parse(text) == expected


@pytest.mark.parametrize("text", ["", "1", "one.two", "1.34.x", "latest", "1.34;rm -rf /"])
def test_kube_version_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="not a Kubernetes version"):
        KubeVersion.parse(text)


def test_release_parse() -> None:
    assert parse_release("1.23") == "1.23"
    for bad in ("1.23.0", "v1.23", "x", ""):
        with pytest.raises(ConfigError):
            parse_release(bad)


def test_config_validates_every_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kubeconfig not found"):
        Config(kubeconfig=tmp_path / "missing")
    with pytest.raises(ConfigError, match="context"):
        Config(context="has space")
    with pytest.raises(ConfigError, match="Knative release"):
        Config(knative="latest")
    with pytest.raises(ConfigError, match="--timeout"):
        Config(wait_timeout=0)
    with pytest.raises(ConfigError, match="upstream folder"):
        Config(upstream_dirs=(tmp_path / "nope",))
    kc = tmp_path / "kc"
    kc.write_text("{}")
    assert Config(kubeconfig=kc).effective_kubeconfig == kc


def test_snap_paths_follow_microk8s_env_only() -> None:
    env = {"SNAP_NAME": "microk8s", "SNAP": "/s", "SNAP_DATA": "/d", "SNAP_COMMON": "/c"}
    paths = SnapPaths.from_environ(env)
    assert paths.kubeconfig == Path("/d/credentials/client.config")
    assert paths.marker == Path("/d/var/lock/hybrid-knative.enabled")
    assert paths.state_dir == Path("/c/hybrid-knative/state")
    # our own snap's variables are not MicroK8s's: fall back to MicroK8s's default paths
    other = SnapPaths.from_environ({**env, "SNAP_NAME": "hybrid-knative"})
    assert other.kubeconfig == Path("/var/snap/microk8s/current/credentials/client.config")
    # the addon shim passes MicroK8s's paths on explicitly; they win over anything else
    shim = SnapPaths.from_environ({**env, "SNAP_NAME": "hybrid-knative", "HYBRID_KNATIVE_MICROK8S_SNAP_DATA": "/m"})
    assert shim.marker == Path("/m/var/lock/hybrid-knative.enabled")
    assert shim.snap_common == Path("/var/snap/microk8s/common")
