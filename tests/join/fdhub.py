"""A hub in its own process with the fd limit systemd gives the snap's service (1024)::

    python -m tests.join.fdhub SETTINGS.json

Prints ``port N`` once listening; stops when stdin closes. Settings unknown to the hub are ignored
(so the same attack runs against older hubs too)."""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
from pathlib import Path

from hybrid_knative.join.hub import Hub, HubSettings, serve
from hybrid_knative.system.runner import Runner


def main() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    values = json.loads(Path(sys.argv[1]).read_text())
    known = {f.name for f in dataclasses.fields(HubSettings)}
    for key in ("state_dir", "kubeconfig", "cluster_tokens_file"):
        values[key] = Path(values[key])
    values["advertise"] = tuple(values["advertise"])
    settings = HubSettings(**{k: v for k, v in values.items() if k in known})
    running = serve(Hub(settings, runner=Runner()))
    print(f"port {running.port}", flush=True)
    sys.stdin.read()
    running.close()


if __name__ == "__main__":
    main()
