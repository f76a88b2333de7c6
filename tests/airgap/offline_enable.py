"""Run `enable --bundle` end to end — meant to run inside a network namespace with only loopback.

    python -m tests.airgap.offline_enable BUNDLE WORKDIR CTD_SOCKET

Starts the API emulator on 127.0.0.1 in this namespace; MicroK8s's images wrapper is the real ctr on a
real containerd socket (unix sockets cross network namespaces). Exit 0 and prints the images imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hybrid_knative import addon
from hybrid_knative.config import Config, SnapPaths
from hybrid_knative.progress import Status
from hybrid_knative.system import microk8s
from tests.harness.emulator import ApiServer, FakeController
from tests.integration.conftest import seed_microk8s, with_knative


def main(bundle: Path, work: Path, socket: Path) -> int:
    snap = work / "snap"
    snap.mkdir(parents=True, exist_ok=True)
    # MicroK8s's public command: `microk8s images import` hands stdin to every node's ctr import
    wrapper = work / "microk8s"
    wrapper.write_text(f'#!/bin/sh\n[ "$1 $2" = "images import" ] || exit 2\n'
                       f'exec ctr -a {socket} -n k8s.io images import --all-platforms -\n')
    wrapper.chmod(0o755)
    os.environ[microk8s.ENV] = str(wrapper)
    with ApiServer(controller=with_knative(FakeController())) as server:
        seed_microk8s(server)
        kubeconfig = server.write_kubeconfig(work / "kubeconfig")
        config = Config(kubeconfig=kubeconfig, state_dir=work / "state", marker=work / "state" / "enabled",
                        snap=SnapPaths(snap=snap, snap_data=work / "data", snap_common=work / "common"),
                        wait_timeout=10.0, poll_interval=0.001, host_root=work / "host", verify=False,
                        bundle=bundle)
        outcome = addon.enable(config, Status(verbosity=1))
        print(f"enabled knative {outcome.release.line if outcome.release else '?'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
