"""Adding a component is adding a folder: a toy component (tests/fixtures/toy_widget, on the components
package's path) shows up in plan, enable, status, doctor and the bundle's image list, with no other edit."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import hybrid_knative.components as registry
from hybrid_knative import addon
from hybrid_knative.config import Config, KubeVersion
from hybrid_knative.diagnose import doctor
from hybrid_knative.errors import PermanentError
from hybrid_knative.install.bundle import bundle_contents
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.platform.component import LAST, Component
from hybrid_knative.progress import Status
from hybrid_knative.upstream import PACKAGE_VENDOR_DIR, UpstreamStore
from tests.integration.conftest import Cluster

QUIET = Status(verbosity=-1)
TOY = Path(__file__).resolve().parents[1] / "fixtures" / "toy_widget"


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Drop the toy folder into a directory on the components package's path (as if it were in src/)."""
    extra = tmp_path / "components"
    shutil.copytree(TOY, extra / "toy_widget")
    monkeypatch.setattr(registry, "__path__", [*registry.__path__, str(extra)])
    registry.clear_cache()
    yield extra / "toy_widget"
    registry.clear_cache()
    for name in [m for m in sys.modules if m.startswith("hybrid_knative.components.toy_widget")]:
        del sys.modules[name]


def test_the_registry_finds_every_component_and_the_toy(toy: Path) -> None:
    names = [c.name for c in registry.all_components()]
    assert {"knative-serving", "net-kourier", "dns", "knative-eventing", "gpu-amd", "gpu-nvidia", "smoke",
            "microk8s", "toy-widget"} <= set(names)


def test_toy_in_plan_with_labels_and_order(toy: Path, tmp_path: Path) -> None:
    _, rendered = addon.render(Config(), KubeVersion.parse("1.34"), QUIET)
    names = [r.step.name for r in rendered]
    assert names.index("install_serving_core") < names.index("install_toy_widget") < names.index(
        "verify_smoke_service")
    toy_step = next(r for r in rendered if r.step.name == "install_toy_widget")
    assert toy_step.step.component == "toy-widget"
    assert [o["kind"] for o in toy_step.objects] == ["Namespace", "Deployment"]
    for obj in toy_step.objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "hybrid-knative"
        assert obj["metadata"]["labels"]["hybrid-knative.dev/component"] == "toy-widget"
    _, _, paths = addon.write_plan(Config(), KubeVersion.parse("1.34"), tmp_path / "plan", QUIET)
    toy_file = next(p for p in paths if p.name.endswith("-install_toy_widget.yaml"))
    assert "ghcr.io/example/toy-widget:1.0.0" in toy_file.read_text()


def test_toy_in_bundle_image_list(toy: Path) -> None:
    got = bundle_contents(Config(offline=True), store=UpstreamStore(search_dirs=(PACKAGE_VENDOR_DIR,)), status=QUIET)
    assert "ghcr.io/example/toy-widget:1.0.0" in {str(i) for i in got.images}


def test_toy_enabled_shows_in_status_and_doctor(toy: Path, cluster: Cluster) -> None:
    kube = KubeApi.connect(cluster.kubeconfig)
    before = doctor.diagnose_platform(kube)
    missing = next(f for f in before.findings if f.check == "toy-system")
    assert not missing.ok and "Toy widget is not installed" in missing.cause

    addon.enable(cluster.config(eventing=False), QUIET)
    dep = cluster.server.get("apps/v1", "deployments", "toy-widget", "toy-system")
    assert dep is not None and dep["metadata"]["labels"]["hybrid-knative.dev/component"] == "toy-widget"
    rows = {r.name: r for r in addon.health(cluster.config()).table}
    assert rows["toy-widget"].ready and rows["toy-widget"].detail == "1/1 Deployments Available"
    after = doctor.diagnose_platform(kube)
    found = next(f for f in after.findings if f.check == "toy-system")
    assert found.ok and "1/1" in found.cause

    cluster.controller.never_ready.add("toy-widget")
    rows = {r.name: r for r in addon.health(cluster.config()).table}
    assert not rows["toy-widget"].ready
    addon.disable(cluster.config(), QUIET)
    assert cluster.server.get("apps/v1", "deployments", "toy-widget", "toy-system") is None


def _c(name: str, *after: str) -> Component:
    return Component(name=name, title=name, after=after)


def test_order_after_last_and_cycles() -> None:
    order = registry.ordered([_c("smoke", LAST), _c("b", "a"), _c("a"), _c("c", "missing", "a")])
    assert [c.name for c in order] == ["a", "b", "c", "smoke"]
    with pytest.raises(PermanentError, match="cycle"):
        registry.ordered([_c("x", "y"), _c("y", "x")])
    with pytest.raises(ValueError, match="component name"):
        _c("Bad_Name")
