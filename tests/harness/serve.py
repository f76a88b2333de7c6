"""Serve the Kubernetes API emulator for people: a fresh MicroK8s node's API on 127.0.0.1, until interrupted.

    python -m tests.harness.serve --kubeconfig /tmp/emu/kubeconfig [--port 6443]
    hybrid-knative enable --kubeconfig /tmp/emu/kubeconfig --state-dir /tmp/emu/state \\
        --host-root /tmp/emu/host --offline --no-verify --gpu none

The emulator is seeded like a fresh MicroK8s node (the node, the default namespaces, the dns addon's
CoreDNS and kube-dns on 10.152.183.10) and runs the fake controllers (CRDs established,
Deployments available, EndpointSlices, Pods and Events, Knative Services and Brokers ready), so
``enable`` can finish. Nothing runs: no container, no traffic. See docs/emulator.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from tests.harness.emulator import ApiServer, FakeController
from tests.harness.emulator.microk8s import NODE_IP, seed_microk8s
from tests.harness.knative import with_knative


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0: any free port), not {port}")
    return port


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.serve",
        description="Serve an emulated MicroK8s API server on 127.0.0.1 until interrupted (Ctrl-C).",
    )
    parser.add_argument("--kubeconfig", type=Path, required=True,
                        help="where to write the kubeconfig for the emulator (created 0600)")
    parser.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--kubernetes-version", default="1.34.2", help="the version /version reports")
    parser.add_argument("--node-ip", default=NODE_IP, help="the node's InternalIP address")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server = ApiServer(version=args.kubernetes_version, controller=with_knative(FakeController()), port=args.port)
    try:
        server.__enter__()
    except (RuntimeError, OSError) as exc:
        cause = exc.__cause__ or exc
        print(f"serve: cannot start the emulator on 127.0.0.1:{args.port}: {cause}", file=sys.stderr)
        return 1
    try:
        seed_microk8s(server, node_ip=args.node_ip)
        try:
            kubeconfig = server.write_kubeconfig(args.kubeconfig)
        except OSError as exc:
            print(f"serve: cannot write the kubeconfig {args.kubeconfig}: {exc}", file=sys.stderr)
            return 1
        print(f"Kubernetes API emulator (v{args.kubernetes_version.lstrip('v')}) serving at {server.url}", flush=True)
        print(f"kubeconfig: {kubeconfig}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        while not stop.wait(1.0):
            pass
        print("serve: stopping", flush=True)
    finally:
        try:
            server.__exit__(None, None, None)
        except RuntimeError as exc:  # the emulator failed while serving: say so, exit non-zero
            print(f"serve: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
