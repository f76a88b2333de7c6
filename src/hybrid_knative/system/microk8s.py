"""MicroK8s's public command, `microk8s` — never its internal `$SNAP/microk8s-*.wrapper` scripts.

The wrappers source `$SNAP/actions/common/utils.sh` and need MicroK8s's own snap environment (SNAP,
SNAP_DATA, …); from the hybrid-knative snap or a pip install that environment is not MicroK8s's, so
they fail. `/snap/bin/microk8s` sets it up itself: `microk8s enable nvidia`, `microk8s images import`
(every node), `microk8s ctr …` (this node's containerd, MicroK8s's socket and the k8s.io namespace).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from hybrid_knative.errors import CommandError
from hybrid_knative.system.runner import Result, Runner

ENV = "HYBRID_KNATIVE_MICROK8S_BIN"  # an explicit path (tests point it at a fake)
SNAP_BIN = Path("/snap/bin/microk8s")


def command(environ: Mapping[str, str] | None = None) -> str:
    """``$HYBRID_KNATIVE_MICROK8S_BIN``, else /snap/bin/microk8s (sudo's PATH may lack /snap/bin), else PATH."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV)
    if explicit:
        return explicit
    if SNAP_BIN.is_file():
        return str(SNAP_BIN)
    return shutil.which("microk8s") or "microk8s"


_NO_PERMISSION = "Insufficient permissions to access MicroK8s"


def enable_addon(runner: Runner, name: str, *args: str, timeout: float = 900.0) -> Result:
    """``microk8s enable NAME ARGS…`` through MicroK8s's public command, as root (sudo) or a member of the
    ``microk8s`` group — MicroK8s itself refuses anyone else. A failure is a CommandError saying what to run."""
    argv = [command(), "enable", name, *args]
    try:
        return runner.run(argv, timeout=timeout)
    except CommandError as exc:
        exc.brief = f"`microk8s enable {name}` failed (exit code {exc.returncode})"
        if _NO_PERMISSION in f"{exc.stdout}\n{exc.stderr}":
            exc.resolution = (f"run `sudo microk8s enable {name}` yourself, or add your user to the microk8s group "
                              "(`sudo usermod -a -G microk8s $USER`, then log in again) and retry")
        else:
            exc.resolution = f"run `sudo microk8s enable {name}` to see its whole output, then retry"
        raise
