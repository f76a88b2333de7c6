from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hybrid_knative.catalog import load_catalog
from hybrid_knative.config import KubeVersion
from hybrid_knative.errors import ConfigError, PermanentError

SOURCES = Path(__file__).resolve().parents[2].parent / "shared" / "upstream" / "SOURCES.tsv"


@pytest.mark.parametrize(("server", "line"), [
    ("1.32.3", "1.20"), ("1.33.1", "1.21"), ("1.34.0", "1.23"), ("1.35.2", "1.23"), ("1.36.0", "1.23"),
    ("1.37.0", "1.23"),  # newer than tested: newest release (with a warning at enable time)
])
def test_release_follows_server_version(server: str, line: str) -> None:
    assert load_catalog().choose(KubeVersion.parse(server)).line == line


def test_too_old_server_is_refused_with_the_matrix() -> None:
    with pytest.raises(PermanentError) as err:
        load_catalog().choose(KubeVersion.parse("1.31.9"))
    assert "too old" in err.value.brief
    assert err.value.details is not None
    for line, kube in (("1.20", "1.32"), ("1.21", "1.33"), ("1.23", "1.34")):
        assert f"Knative {line} needs Kubernetes ≥ {kube}" in err.value.details


def test_requested_release_must_fit_the_server() -> None:
    catalog = load_catalog()
    assert catalog.choose(KubeVersion.parse("1.35"), "1.21").line == "1.21"
    with pytest.raises(ConfigError, match="needs Kubernetes ≥ 1.34"):
        catalog.choose(KubeVersion.parse("1.33"), "1.23")
    with pytest.raises(ConfigError, match="unknown Knative release"):
        catalog.choose(KubeVersion.parse("1.35"), "1.22")


def test_every_release_has_serving_kourier_and_eventing_files() -> None:
    for release in load_catalog().releases:
        assert {"serving-crds.yaml", "serving-core.yaml"} <= set(release.component("knative-serving").files)
        assert "kourier.yaml" in release.component("net-kourier").files
        assert "eventing-core.yaml" in release.component("knative-eventing").files


@pytest.mark.skipif(not SOURCES.is_file(), reason="the shared upstream mirror is not beside the repo")
def test_pins_match_the_mirror_sources() -> None:
    rows = {r["path"]: r for r in csv.DictReader(SOURCES.open(), delimiter="\t")}
    files = load_catalog().all_files()
    assert files
    for f in files:
        assert f.path in rows, f.path
        assert rows[f.path]["sha256"] == f.sha256
        assert rows[f.path]["upstream_url"] == f.url
        assert int(rows[f.path]["bytes"]) == f.size
