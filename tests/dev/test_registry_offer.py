"""deploy without a registry offers `microk8s enable registry`: asked on a terminal ([Y/n], click's prompt),
--yes accepts, no terminal → a clear error; declined or failed → nothing built, nothing applied.

`microk8s` is the strict fake of tests/snap/fakes.py (MicroK8s's dispatcher: permissions, check_status, the
addon's own script and its exit code). The `registry` addon's script written here does what MicroK8s's does,
for this test's cluster: it starts a real docker-registry (on 127.0.0.1) and applies the Service
container-registry/registry (NodePort = the registry's port) to the API emulator, then returns before the
registry listens — deploy must wait until it answers. The image is built (buildah) and pushed there, by digest.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hybrid_knative.cli import dev as cli_dev
from hybrid_knative.cli.main import cli
from hybrid_knative.system import microk8s
from tests.airgap.conftest import free_port
from tests.dev.conftest import Builder, DevCluster, need, skopeo_digest
from tests.snap.fakes import REPO, Fakes

pytestmark = pytest.mark.integration
SERVING = "serving.knative.dev/v1"

# MicroK8s's core addon entry for the registry (microk8s-core-addons addons.yaml), as the dispatcher reads it
CORE_ADDONS = {"microk8s-addons": {"description": "Core addons of the MicroK8s project", "addons": [
    {"name": "registry", "description": "Private image registry exposed on localhost:32000", "version": "2.8.1",
     "check_status": "deployment.apps/registry", "supported_architectures": ["amd64", "arm64", "s390x"]}]}}

ENABLE = '''#!{python}
"""The registry addon's enable script, for the test cluster: a real registry, its Service, then return."""
import json, os, subprocess, sys
sys.path.insert(0, {src!r})
from hybrid_knative.kube.api import KubeApi

port, root, start = {port}, {root!r}, {start!r}
if start:
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "config.yml"), "w") as fh:
        fh.write(f"version: 0.1\\nlog:\\n  level: error\\nstorage:\\n  filesystem:\\n"
                 f"    rootdirectory: {{root}}/data\\nhttp:\\n  addr: 127.0.0.1:{{port}}\\n")
    with open(os.path.join(root, "log"), "wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", os.path.join(root, "config.yml")],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    with open(os.path.join(root, "pid"), "w") as fh:
        fh.write(str(proc.pid))
print("Infer repository core for addon registry")
print("Addon core/hostpath-storage is already enabled")
print("The registry will be created with the size of 20Gi.")
kube = KubeApi.connect({kubeconfig!r})
kube.apply({{"apiVersion": "v1", "kind": "Namespace", "metadata": {{"name": "container-registry"}}}})
kube.apply({{"apiVersion": "v1", "kind": "Service", "metadata": {{"name": "registry", "namespace": "container-registry",
            "labels": {{"app": "registry"}}}}, "spec": {{"type": "NodePort", "selector": {{"app": "registry"}},
            "ports": [{{"name": "registry", "port": 5000, "targetPort": 5000, "nodePort": port}}]}}}})
with open(os.environ["FAKE_STATE"]) as fh:
    state = json.load(fh)
state.setdefault("kube_rows", []).append("container-registry  deployment.apps/registry  1/1  1  1  0s")
with open(os.environ["FAKE_STATE"], "w") as fh:
    json.dump(state, fh)
print(f"The registry is enabled. Use it with the name localhost:{{port}}")
'''


class Addon:
    def __init__(self, fakes: Fakes, root: Path) -> None:
        self.fakes, self.root, self.port = fakes, root, free_port()

    def install(self, kubeconfig: Path, *, start_registry: bool = True) -> None:
        """MicroK8s's core repository with the registry addon (its addons.yaml entry and enable script)."""
        repo = Path(self.fakes.read()["common"]) / "addons" / "core"
        (repo / "addons" / "registry").mkdir(parents=True)
        (repo / "addons.yaml").write_text(yaml.safe_dump(CORE_ADDONS))
        script = repo / "addons" / "registry" / "enable"
        script.write_text(ENABLE.format(python=sys.executable, src=str(REPO / "src"), port=self.port,
                                        root=str(self.root), start=start_registry, kubeconfig=str(kubeconfig)))
        script.chmod(0o755)

    def stop(self) -> None:
        pid_file = self.root / "pid"
        if pid_file.is_file():
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass

    def enable_calls(self) -> list[list[str]]:
        return [c for c in self.fakes.calls if c[:2] == ["microk8s", "enable"]]


@pytest.fixture
def addon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Addon]:
    need("docker-registry")
    fakes = Fakes(tmp_path / "fakes", microk8s={"channel": "1.35/stable"})
    for name, value in fakes.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(microk8s.ENV, fakes.microk8s)
    monkeypatch.delenv("CI", raising=False)
    made = Addon(fakes, tmp_path / "addon-registry")
    yield made
    made.stop()


def deploy_args(project: Path, cluster: DevCluster, builder: Builder, *extra: str) -> list[str]:
    return ["deploy", "--path", str(project), "--kubeconfig", str(cluster.kubeconfig),
            "--mirror", f"docker.io={builder.registry.host}", "--storage-root", str(builder.storage),
            "--no-verify-url", "--poll-interval", "0.05", "--timeout", "60", *extra]


class Tty:
    def isatty(self) -> bool:
        return True


def new_project(tmp_path: Path) -> Path:
    result = CliRunner().invoke(cli, ["new", "hello", "--path", str(tmp_path / "hello")])
    assert result.exit_code == 0, result.stderr
    return tmp_path / "hello"


def nothing_deployed(cluster: DevCluster, stderr: str) -> None:
    assert cluster.server.list(SERVING, "services", "default") == []
    assert "Build hello" not in stderr and "Push hello" not in stderr  # no build started either


def test_prompt_yes_enables_the_addon_waits_and_deploys(make_dev_cluster: Callable[..., DevCluster],
                                                        builder: Builder, addon: Addon, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = make_dev_cluster(registry_addon=False)
    addon.install(cluster.kubeconfig)
    project = new_project(tmp_path)
    monkeypatch.setattr(cli_dev, "_can_ask", lambda: True)  # a person at a terminal
    result = CliRunner().invoke(cli, deploy_args(project, cluster, builder), input="\n")  # [Y/n]: Enter = yes
    assert result.exit_code == 0, result.stderr
    assert "Enable MicroK8s's registry addon now? [Y/n]" in result.stderr
    assert addon.enable_calls() == [["microk8s", "enable", "registry"]]
    assert "✓ Enable MicroK8s's registry addon" in result.stderr
    assert "✓ Wait for the registry to answer" in result.stderr
    image = cluster.server.get(SERVING, "services", "hello", "default")["spec"]["template"]["spec"]["containers"][0][
        "image"]
    assert image.startswith(f"localhost:{addon.port}/default/hello@sha256:")
    assert skopeo_digest(image) == image.split("@")[1]  # pushed to the registry the addon started
    assert result.stdout.strip() == "http://hello-default.hk.internal"

    # the next deploy finds the addon: no question, no second enable, nothing written
    again = CliRunner().invoke(cli, deploy_args(project, cluster, builder))
    assert again.exit_code == 0, again.stderr
    assert "[Y/n]" not in again.stderr and len(addon.enable_calls()) == 1
    assert "unchanged" in again.stderr


def test_prompt_no_and_no_terminal_stop_before_anything(make_dev_cluster: Callable[..., DevCluster],
                                                        builder: Builder, addon: Addon, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = make_dev_cluster(registry_addon=False)
    addon.install(cluster.kubeconfig)
    project = new_project(tmp_path)
    # no terminal (CliRunner's stdin is not a TTY, as in CI or a pipe): no question, a clear error
    result = CliRunner().invoke(cli, deploy_args(project, cluster, builder))
    assert result.exit_code == 2 and "[Y/n]" not in result.stderr
    for needle in ("no container registry", "sudo microk8s enable registry", "--registry", "--yes"):
        assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    # CI set: no question even on a terminal
    with monkeypatch.context() as m:
        m.setattr(cli_dev.sys, "stdin", Tty())
        assert cli_dev._can_ask()
        m.setenv("CI", "true")
        assert not cli_dev._can_ask()
    # a person who answers no
    monkeypatch.setattr(cli_dev, "_can_ask", lambda: True)
    declined = CliRunner().invoke(cli, deploy_args(project, cluster, builder), input="n\n")
    assert declined.exit_code == 2 and "[Y/n]" in declined.stderr and "sudo microk8s enable registry" in declined.stderr
    assert addon.enable_calls() == []
    nothing_deployed(cluster, result.stderr + declined.stderr)


def test_yes_but_enable_fails_or_never_answers(make_dev_cluster: Callable[..., DevCluster], builder: Builder,
                                               addon: Addon, tmp_path: Path) -> None:
    cluster = make_dev_cluster(registry_addon=False)
    addon.install(cluster.kubeconfig, start_registry=False)  # the Service appears, the registry never answers
    project = new_project(tmp_path)
    addon.fakes.update(permitted=False)  # not root, not in the microk8s group: MicroK8s refuses
    refused = CliRunner().invoke(cli, deploy_args(project, cluster, builder, "--yes"))
    assert refused.exit_code != 0 and "[Y/n]" not in refused.stderr
    assert "`microk8s enable registry` failed" in refused.stderr and "usermod -a -G microk8s" in refused.stderr
    assert "Insufficient permissions to access MicroK8s" in refused.stderr
    nothing_deployed(cluster, refused.stderr)

    addon.fakes.update(permitted=True)
    args = deploy_args(project, cluster, builder, "-y")
    args[args.index("--timeout") + 1] = "1"
    silent = CliRunner().invoke(cli, args)
    assert silent.exit_code != 0 and addon.enable_calls()[-1] == ["microk8s", "enable", "registry"]
    assert "did not answer within 1s" in silent.stderr and "nothing was built or deployed" in silent.stderr
    assert "not reachable yet (ConnectionError)" in silent.stderr
    nothing_deployed(cluster, silent.stderr)


def test_events_tail_without_a_registry_offers_the_addon_like_deploy(make_dev_cluster: Callable[..., DevCluster],
                                                                      builder: Builder, addon: Addon,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = make_dev_cluster(registry_addon=False)
    addon.install(cluster.kubeconfig)
    args = ["events", "tail", "--kubeconfig", str(cluster.kubeconfig), "--mirror",
            f"docker.io={builder.registry.host}", "--storage-root", str(builder.storage), "--timeout", "5"]
    # no terminal: a clear error naming the ways out, nothing built or subscribed
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "[Y/n]" not in result.stderr
    for needle in ("no container registry", "sudo microk8s enable registry", "--registry", "--yes"):
        assert needle in result.stderr, result.stderr
    # a person who answers no
    monkeypatch.setattr(cli_dev, "_can_ask", lambda: True)
    declined = CliRunner().invoke(cli, args, input="n\n")
    assert declined.exit_code == 2 and "Enable MicroK8s's registry addon now? [Y/n]" in declined.stderr
    assert addon.enable_calls() == []
    assert cluster.server.list(SERVING, "services", "default") == []
    assert cluster.server.list("eventing.knative.dev/v1", "triggers", "default") == []
    assert "Traceback" not in result.stderr + declined.stderr


def test_events_tail_refuses_a_bad_type_prefix_before_anything() -> None:
    result = CliRunner().invoke(cli, ["events", "tail", "--type-prefix", "org ros2", "--kubeconfig", "/nonexistent"])
    assert result.exit_code == 2 and "--type-prefix" in result.stderr and "kubeconfig" not in result.stderr
