"""`hybrid-knative ros2 bridge|types|health`: ROS 2 topics as Knative events.

The bridge is normally started by its Deployment (rendered by the function workflow for
``events: - ros2: {...}``); running it by hand is useful on a robot without Kubernetes, or to try a
Broker from a laptop.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import click
import yaml

from hybrid_knative.cli.common import handle_errors, verbosity_options
from hybrid_knative.errors import ConfigError

_DEFAULT_LISTEN = "127.0.0.1:8080"


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {value!r}: expected HOST:PORT", resolution="e.g. 127.0.0.1:8080 or 0.0.0.0:8080")
    return host.strip("[]"), int(port)


@click.group("ros2")
def group() -> None:
    """ROS 2 topics as Knative events: a bridge between a robot's DDS graph and a Broker."""


@group.command("bridge")
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Bridge settings (YAML): topics, types, reply_to, qos, rate, msg definitions.")
@click.option("--broker-url", envvar="HK_ROS2_BROKER_URL", required=True,
              help="Broker ingress URL, e.g. http://broker-ingress.knative-eventing.svc.cluster.local/NS/default "
              "(env HK_ROS2_BROKER_URL).")
@click.option("--name", default="ros2-bridge", show_default=True,
              help="Bridge name: the ros2bridge attribute of its events; replies must carry it back.")
@click.option("--listen", default=_DEFAULT_LISTEN, show_default=True,
              help="HOST:PORT of the reply sink, /healthz, /metrics and /blobs.")
@click.option("--public-url", help="How others reach this bridge (claim-check URLs). Default: the --listen URL.")
@click.option("--domain-id", type=int, envvar="ROS_DOMAIN_ID", help="Override the config's ROS_DOMAIN_ID (env too).")
@click.option("--interface", help="Network interface or address for DDS (sets CYCLONEDDS_URI unless it is set).")
@click.option("--max-seconds", type=float, hidden=True, help="Stop after this many seconds (tests).")
@verbosity_options
@handle_errors
def bridge(verbose: int, quiet: bool, config_path: Path, broker_url: str, name: str, listen: str,
           public_url: str | None, domain_id: int | None, interface: str | None, max_seconds: float | None) -> None:
    """Run the bridge until SIGTERM/SIGINT: topics → CloudEvents to the Broker, replies → topics.

    \b
    Config example:
      topics:
        - {topic: /camera/info, type: std_msgs/msg/String, reply_to: /detections, qos: reliable}
        - {topic: /imu, type: sensor_msgs/msg/Imu, rate: 20, qos: {reliability: best_effort, depth: 5}}
      msg:   # your own types, as ROS 2 .msg text
        my_pkg/msg/Detection: "string label\\nfloat32 score\\n"
    """
    import logging

    from hybrid_knative.ros2.bridge import Bridge, apply_interface_env
    from hybrid_knative.ros2.spec import parse_bridge

    logging.basicConfig(level=logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO),
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        data: Any = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {config_path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path} is not valid YAML", details=str(exc)) from None
    if isinstance(data, dict) and domain_id is not None:
        data = {**data, "domain_id": domain_id}
    if isinstance(data, dict) and interface is not None:
        data = {**data, "interface": interface}
    spec = parse_bridge(data, where=str(config_path))
    apply_interface_env(spec.interface)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runner = Bridge(spec, broker_url=broker_url, name=name, listen=_listen(listen), public_url=public_url)
    try:
        runner.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {listen}: {exc.strerror}",
                          resolution="choose another --listen port") from None
    topics = ", ".join(t.topic for t in spec.topics)
    click.echo(f"ros2 bridge {name}: domain {spec.domain_id}, topics {topics}; sink {runner.url}; "
               f"broker {broker_url}", err=True)
    try:
        stop.wait(max_seconds)
    finally:
        runner.stop()
    click.echo(f"ros2 bridge {name}: stopped", err=True)


@group.command("types")
def types() -> None:
    """List the built-in ROS 2 message types (others: give their .msg definition in the config)."""
    from hybrid_knative.ros2.msgtypes import TypeRegistry, dds_type_name

    registry = TypeRegistry()
    for name in registry.names():
        kind = "cdr " if registry.has_binary(name) else "json"
        click.echo(f"{name:<34} {kind}  {dds_type_name(name)}")


@group.command("health")
@click.argument("url")
@click.option("--timeout", type=float, default=3.0, show_default=True)
@handle_errors
def health(url: str, timeout: float) -> None:
    """Show a bridge's topics, rates and last errors (URL: its base URL). Exit 0 only when healthy."""
    from hybrid_knative.ros2.health import read_bridge_health

    h = read_bridge_health(url, timeout=timeout)
    for name, ready, detail in h.rows():
        click.echo(f"{name:<28} {ready:<4} {detail}")
    raise SystemExit(0 if h.healthy else 3)
