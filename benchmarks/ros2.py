"""`make bench` section: ROS 2 topic → CloudEvent → function → reply → topic (printed, never asserted).

In a private network namespace: one client process measures round trips (one message in flight:
p50/p99) and a burst (messages per second) two ways in the same run —
  direct:  client → DDS → echo process → DDS → client                (the baseline)
  bridged: client → DDS → bridge → HTTP Broker stand-in → function stand-in → reply → Broker →
           bridge /reply → DDS → client
The Broker and function stand-ins are small Python HTTP servers (tests/ros2/peers.py), so the bridged
figure includes their cost as well as the bridge's; a one-way burst into a minimal HTTP endpoint
that only answers 202 shows the bridge's own ceiling. Needs root and iproute2; prints a note otherwise.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.ros2.conftest import World, free_port, netns_unavailable, wait_until  # noqa: E402

N, WARMUP, BURST, ONEWAY = 300, 30, 1000, 3000


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_ros2() -> None:
    print("\n## ROS 2 bridge round trip (network namespace, loopback; cyclonedds + HTTP stand-ins)")
    reason = netns_unavailable()
    if reason is not None:
        print(f"skipped: {reason}")
        return
    from hybrid_knative.ros2.objects import render_bridge, spec_from_events

    world = World(Path(tempfile.mkdtemp(prefix="hk-bench-ros2-")))
    try:
        broker_port, function_port, sink_port = free_port(), free_port(), free_port()
        events = [{"topic": "/camera/info", "type": "std_msgs/msg/String", "reply_to": "/detections",
                   "qos": {"reliability": "reliable", "depth": 2000}}]
        objs = render_bridge("bench", "detect", spec_from_events(
            events, image="registry.example/ros2-bridge@sha256:" + "c" * 64, node="robot-1"))
        import yaml

        config = yaml.safe_load(next(o for o in objs if o["kind"] == "ConfigMap")["data"]["bridge.yaml"])
        config["buffer_events"] = 5000
        triggers = [o for o in objs if o["kind"] == "Trigger"]
        refs = {"Service/detect": f"http://127.0.0.1:{function_port}",
                "Service/detect-ros2": f"http://127.0.0.1:{sink_port}"}
        world.broker(triggers, refs, port=broker_port, function_port=function_port, workers=2, lifetime=600)
        world.bridge(config, broker_url=f"http://127.0.0.1:{broker_port}/default/default", port=sink_port,
                     extra=["-q"])
        lean_port, lean_sink = free_port(), free_port()
        lean = world.tmp / "lean.json"
        world.python("lean", "-m", "tests.ros2.peers", "ingress", str(lean_port), str(lean), "600")
        wait_until(lambda: Path(str(lean) + ".ready").exists(), 20, "the lean ingress")
        world.bridge({"topics": [{"topic": "/load", "type": "std_msgs/msg/String",
                                  "qos": {"reliability": "reliable", "depth": 5000}}], "buffer_events": 5000},
                     broker_url=f"http://127.0.0.1:{lean_port}/default/default", port=lean_sink, name="load-ros2",
                     extra=["-q"])
        world.python("echo", "-m", "tests.ros2.peers", "echo", "/ping", "/pong", "600")
        plan = world.tmp / "rtt.json"
        plan.write_text(json.dumps({"pairs": {"direct": ["/ping", "/pong"], "bridged": ["/camera/info", "/detections"]},
                                    "n": N, "warmup": WARMUP, "burst": BURST, "oneway": ["/load", ONEWAY]}))
        done = world.run("-m", "tests.ros2.peers", "rtt", str(plan), timeout=300)
        if done.returncode != 0:
            print(f"failed: {done.stdout[-500:]} {done.stderr[-1500:]}")
            return
        results = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{'path':<8} {'p50 ms':>8} {'p99 ms':>8} {'msgs/s':>8} {'replies':>9}")
        figures = {}
        for name in ("direct", "bridged"):
            r = results[name]
            lat = r["latencies_ms"]
            p50, p99 = statistics.median(lat), _percentile(lat, 0.99)
            rate = r["replies"] / r["seconds"] if r["seconds"] else 0.0
            figures[name] = (p50, p99, rate)
            print(f"{name:<8} {p50:>8.2f} {p99:>8.2f} {rate:>8.0f} {r['replies']:>4}/{r['burst']}")
        (d50, d99, drate), (b50, b99, brate) = figures["direct"], figures["bridged"]
        print(f"bridge overhead: p50 +{b50 - d50:.2f} ms, p99 +{b99 - d99:.2f} ms; "
              f"throughput {brate / drate if drate else 0:.2f}x of direct ({N} round trips, burst {BURST})")
        oneway = results["oneway"]

        def accepted() -> dict[str, float]:
            with contextlib.suppress(OSError, ValueError):
                return dict(json.loads(lean.read_text()))
            return {"count": 0, "last": 0.0}

        with contextlib.suppress(AssertionError):
            wait_until(lambda: accepted()["count"] >= oneway["count"], 60, "the one-way burst", interval=0.5)
        got = accepted()
        if got["count"]:
            seconds = got["last"] - oneway["start"]
            print(f"one way, topic → bridge → a minimal HTTP 202 endpoint: {got['count']:.0f}/{oneway['count']} "
                  f"events, {got['count'] / seconds:.0f} msgs/s (the bridge's own ceiling)")
    finally:
        world.close()


if __name__ == "__main__":
    bench_ros2()
