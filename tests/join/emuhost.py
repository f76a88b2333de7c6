"""Runs the Kubernetes API emulator inside the hub's network namespace (it binds 127.0.0.1 there).

    ip netns exec HUB python -m tests.join.emuhost DIR

Writes DIR/kubeconfig, turns DIR/joined/<node>.json (written by the fake `microk8s join`) into Ready
Nodes like kubelet registering does, and keeps DIR/nodes.json as a snapshot of every Node for the test,
which runs in the root namespace and cannot reach the emulator. Stops when stdin closes.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path

from tests.harness.emulator import ApiServer


def main() -> None:
    root = Path(sys.argv[1])
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    seen: set[str] = set()
    last = ""
    with ApiServer() as api:
        api.write_kubeconfig(root / "kubeconfig")
        print("ready", flush=True)
        while not stop.wait(0.05):
            joined = root / "joined"
            for path in sorted(joined.glob("*.json")) if joined.is_dir() else []:
                if path.name in seen:
                    continue
                seen.add(path.name)
                node = json.loads(path.read_text())["name"]
                api.put_object("v1", "nodes", {
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node,
                                                          "kubernetes.io/arch": "amd64"}},
                    "status": {"conditions": [{"type": "Ready", "status": "True"}]},
                })
            snapshot = json.dumps(api.list("v1", "nodes"), sort_keys=True)
            if snapshot != last:
                tmp = root / ".nodes.json.tmp"
                tmp.write_text(snapshot)
                os.replace(tmp, root / "nodes.json")
                last = snapshot


if __name__ == "__main__":
    main()
