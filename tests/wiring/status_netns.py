"""Run inside the test's network namespace (``python -m tests.wiring.status_netns PLAN.json``): the API emulator
on the namespace's 127.0.0.1, a robot Node whose InternalIP is that 127.0.0.1, `deploy` of the project with the
ROS 2 companion (the wiring layer renders the bridge from ros2/objects.py), then `hybrid-knative status` and
`hybrid-knative doctor` through click, exactly as a user runs them. The bridge itself (a real process, real DDS)
already listens on 127.0.0.1:<port> in the same namespace; the emulator's service proxy reaches it there.

Writes {"status": {...}, "doctor": {...}, "metrics": <the bridge's /metrics read directly>, "endpoints": ...}
to PLAN["out"]. Only the test (tests/wiring/test_ros2_status.py) starts it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner

from hybrid_knative.cli.main import cli
from hybrid_knative.dev.deploy import DeployOptions, deploy
from hybrid_knative.dev.project import load_project
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.progress import Status
from hybrid_knative.system import marker
from hybrid_knative.system.runner import Runner
from hybrid_knative.wiring.ros2 import Ros2Bridges
from tests.dev.conftest import seed
from tests.harness.emulator import ApiServer, FakeController
from tests.harness.knative import with_knative


def main(plan_path: str) -> int:
    plan: dict[str, Any] = json.loads(Path(plan_path).read_text())
    work = Path(plan["work"])
    with ApiServer(controller=with_knative(FakeController())) as server:
        seed(server)
        server.put_object("v1", "nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": plan["node"], "labels": {"kubernetes.io/hostname": plan["node"]}},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                     {"type": "Hostname", "address": plan["node"]}]}})
        kubeconfig = server.write_kubeconfig(work / "kubeconfig")
        project = load_project(Path(plan["project_dir"]))
        companion = Ros2Bridges(Path(tempfile.mkdtemp(dir=work)), Runner())
        deploy(project, KubeApi.connect(kubeconfig), None, None, Status(verbosity=-1),  # type: ignore[arg-type]
               DeployOptions(timeout=10, poll_interval=0.01, verify_url=False), companions=[companion])
        state = work / "state"
        state.mkdir(exist_ok=True)
        marker.write(state / "hybrid-knative.enabled", marker.ENABLED, "1.23")
        target = ["--kubeconfig", str(kubeconfig), "--state-dir", str(state)]
        runner = CliRunner()
        status = runner.invoke(cli, ["status", *target])
        doctor = runner.invoke(cli, ["doctor", "--no-pod-check", *target])
        metrics = requests.get(f"http://127.0.0.1:{plan['port']}/metrics", timeout=10).json()
        pods = [p for p in server.list("v1", "pods", "default") if p["spec"].get("hostNetwork")]
        endpoints = server.get("v1", "endpoints", plan["service"], "default")
    out = {"status": {"code": status.exit_code, "output": status.output},
           "doctor": {"code": doctor.exit_code, "output": doctor.output},
           "metrics": metrics, "pods": pods, "endpoints": endpoints}
    Path(plan["out"]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
