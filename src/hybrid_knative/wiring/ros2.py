"""The function workflow meets the ROS 2 bridge: a :class:`hybrid_knative.dev.deploy.Companion` that turns a
project's ``ros2`` events into a bridge per function (ros2.objects.render_bridge), built like a function
(same buildah, registry, digest), applied, pruned and deleted with the function's objects.

dev/ and ros2/ are independent use cases (import-linter); this module sits in the layer above both and
passes data between them. docs/architecture.md explains the layer.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hybrid_knative.dev.deploy import ExtraBuild
from hybrid_knative.dev.project import Function, Project
from hybrid_knative.dev.templates import materialize, template_root
from hybrid_knative.errors import CommandError, ConfigError, HybridError
from hybrid_knative.kube.api import KubeApi
from hybrid_knative.kube.objects import Manifest
from hybrid_knative.ros2 import objects as bridge_objects
from hybrid_knative.ros2.health import BridgeHealth, bridge_urls, parse_metrics
from hybrid_knative.ros2.objects import BRIDGE_APP, LABEL_NAME
from hybrid_knative.ros2.spec import BridgeSpec
from hybrid_knative.system import wheels
from hybrid_knative.system.runner import Runner

IMAGE_KEY = "ros2-bridge"  # the bridge image's key among the deploy's built images
TEMPLATE = "ros2-bridge"
PLACEHOLDER_IMAGE = "localhost/hybrid-knative/ros2-bridge:check"  # for validation before the build
# The wheels a bridge image needs: this package and the DDS binding (their dependencies come along).
REQUIRED_WHEELS = {"hybrid_knative": "hybrid-knative", "cyclonedds": "cyclonedds"}
REPRODUCIBLE_EPOCH = "315532800"  # 1980-01-01: wheels built twice from one source are the same bytes


def has_ros2(functions: Sequence[Function]) -> bool:
    return any(e.kind == "ros2" for fn in functions for e in fn.events)


class Ros2Bridges:
    """One bridge per function with ``ros2`` events. ``node`` (``deploy --node``) overrides the project's
    ``ros2.node``; ``wheelhouse`` (``deploy --wheelhouse``, from ``bundle create --with functions``) holds the
    bridge's wheels for offline builds; ``workdir`` is a temporary folder for the build context;
    ``python_version`` is the image base's Python (default: the shipped Dockerfile's)."""

    def __init__(self, workdir: Path, runner: Runner, *, node: str | None = None,
                 wheelhouse: Path | None = None, python_version: str | None = None) -> None:
        self.workdir = workdir
        self.runner = runner
        self.node = node
        self.wheelhouse = wheelhouse
        self.python_version = python_version  # the image base's Python; default: the Dockerfile's FROM

    # --- Companion -------------------------------------------------------------------------------------

    def check(self, project: Project, functions: Sequence[Function]) -> None:
        for fn in functions:
            if project.ros2_events(fn):
                bridge_objects.render_bridge(project.name, fn.name, self.spec(project, fn, PLACEHOLDER_IMAGE),
                                             namespace=project.namespace)

    def builds(self, project: Project, functions: Sequence[Function]) -> list[ExtraBuild]:
        if not has_ros2(functions) or project.ros2.get("image"):
            return []
        context = bridge_context(self.workdir / TEMPLATE, self.runner, wheelhouse=self.wheelhouse,
                                 python_version=self.python_version)
        return [ExtraBuild(IMAGE_KEY, context, context / "Dockerfile", IMAGE_KEY)]

    def render(self, project: Project, functions: Sequence[Function], images: Mapping[str, str]) -> list[Manifest]:
        objs: list[Manifest] = []
        for fn in functions:
            if project.ros2_events(fn):
                image = str(project.ros2.get("image") or images.get(IMAGE_KEY, ""))
                objs += bridge_objects.render_bridge(project.name, fn.name, self.spec(project, fn, image),
                                                     namespace=project.namespace)
        return objs

    def advice(self, project: Project, functions: Sequence[Function]) -> list[str]:
        lines: list[str] = []
        for fn in functions:
            if project.ros2_events(fn):
                spec = self.spec(project, fn, PLACEHOLDER_IMAGE)
                where = spec.node or ",".join(f"{k}={v}" for k, v in spec.node_selector)
                lines.append(f"ROS 2 bridge {bridge_objects.bridge_name(fn.name)} on {where} (domain "
                             f"{spec.domain_id}) → {fn.service}:")
                lines += [f"  {line}" for line in bridge_objects.describe(spec)]
                lines += bridge_objects.min_scale_guidance(fn.service, spec)
        return lines

    # --- the spec ----------------------------------------------------------------------------------------

    def spec(self, project: Project, fn: Function, image: str) -> BridgeSpec:
        """The bridge spec of ``fn``; errors name the project file's line of the offending event."""
        settings = project.ros2
        events = project.ros2_events(fn)
        node = self.node or settings.get("node")
        selector: dict[str, str] = dict(settings.get("node_selector") or {})
        try:
            return bridge_objects.spec_from_events(
                [e.spec for e in events], image=image, node=node, node_selector=selector,
                domain_id=int(settings.get("domain_id", 0)), interface=settings.get("interface"),
                broker=str(settings.get("broker", "default")), msg=settings.get("msg"), where="ros2")
        except ConfigError as exc:
            line = _line_of_error(exc.brief, events) or project.ros2_line or fn.line
            raise ConfigError(f"{project.source}:{line}: functions.{fn.name}: {exc.brief}", details=exc.details,
                              resolution=exc.resolution) from None


def _line_of_error(message: str, events: Sequence[Any]) -> int:
    found = re.search(r"topics\[(\d+)\]", message)
    if found and int(found.group(1)) < len(events):
        return int(events[int(found.group(1))].line)
    return 0


# --- the bridge image's build context ---------------------------------------------------------------------

def source_tree() -> Path | None:
    """This package's source checkout (pyproject.toml two levels above the package), when it runs from one."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "hybrid_knative").is_dir() else None


def image_python() -> str:
    """The Python version (``3.12``) of the bridge image's base, from the shipped Dockerfile's ``FROM …python:X.Y``:
    the wheelhouse must hold wheels for that interpreter, whatever Python runs hybrid-knative here."""
    return wheels.image_python(template_root(TEMPLATE).joinpath("Dockerfile").read_text(),
                               what="the ROS 2 bridge image")


def build_wheelhouse(dest: Path, runner: Runner, *, python: str = "python3", pip_args: Sequence[str] = (),
                     python_version: str | None = None, arch: str | None = None) -> list[Path]:
    """This project's wheel (``pip wheel --no-deps``, from its source tree, else the released version), then the
    binary wheels of its ``ros2`` extra and their dependencies for the *image's* interpreter (``pip download
    --only-binary=:all: --python-version X.Y --platform manylinux…_<arch>`` up to glibc 2.36, the
    python:3.12-slim base's Debian), into ``dest`` — the bridge's offline wheelhouse. Needs the package index
    (or pip_args). The host's Python does not matter."""
    from hybrid_knative import __version__

    version = python_version or image_python()
    arch = arch or wheels.machine_arch()
    dest.mkdir(parents=True, exist_ok=True)
    tree = source_tree()
    project = str(tree) if tree is not None else f"hybrid-knative=={__version__}"
    env = runner.with_env({"SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", REPRODUCIBLE_EPOCH)})
    pip = [python, "-m", "pip"]
    try:
        env.run([*pip, "wheel", "--disable-pip-version-check", "--no-deps", "--wheel-dir", str(dest), project,
                 *pip_args], timeout=3600)
        env.run(wheels.download_command(dest, [f"hybrid-knative[ros2]=={__version__}", "cyclonedds"], version, arch,
                                        python=python, extra=["--find-links", str(dest), *pip_args]),
                timeout=3600)
    except CommandError as exc:
        raise ConfigError(f"cannot gather the ROS 2 bridge's wheels ({project} and cyclonedds, for Python {version} "
                          f"on {arch})",
                          details="\n".join((exc.stderr or exc.stdout).strip().splitlines()[-8:]),
                          resolution="offline, pass --wheelhouse with the wheelhouse of a bundle made with "
                          "`bundle create --with functions`; or set ros2.image in the project file to a ready "
                          "bridge image") from None
    return sorted(dest.glob("*.whl"))


def missing_wheels(folder: Path) -> list[str]:
    names = {p.name.split("-", 1)[0].lower() for p in folder.glob("*.whl")}
    return [dist for prefix, dist in REQUIRED_WHEELS.items() if prefix not in names]


def unfit_wheels(folder: Path, python_version: str | None = None, arch: str | None = None) -> list[str]:
    """Distributions in ``folder`` none of whose wheels installs on the image's Python (default the Dockerfile's)
    and this machine's architecture (e.g. a wheelhouse made for Python 3.11: cyclonedds' cp311 wheel)."""
    return wheels.unfit_wheels(folder, python_version or image_python(), arch or wheels.machine_arch())


def bridge_context(dest: Path, runner: Runner, *, wheelhouse: Path | None = None,
                   python_version: str | None = None) -> Path:
    """The bridge's build context: the shipped Dockerfile and a wheels/ folder (from ``wheelhouse``, else built
    with :func:`build_wheelhouse`) for the image's Python (``python_version``, default the Dockerfile's). The
    Dockerfile installs with ``--no-index``: nothing is fetched in the build."""
    version = python_version or image_python()
    if dest.exists():
        shutil.rmtree(dest)
    materialize(TEMPLATE, dest)
    wheel_dir = dest / "wheels"
    wheel_dir.mkdir()
    if wheelhouse is not None:
        missing = missing_wheels(wheelhouse)
        if missing:
            raise ConfigError(f"the wheelhouse {wheelhouse} lacks what the ROS 2 bridge image needs: "
                              f"{', '.join(missing)}",
                              resolution="make it with `hybrid-knative bundle create --with functions` (it carries "
                              "the bridge's wheels), or set ros2.image in the project file to a ready bridge image")
        for whl in sorted(wheelhouse.glob("*.whl")):
            shutil.copyfile(whl, wheel_dir / whl.name)
    else:
        build_wheelhouse(wheel_dir, runner, python_version=version)
        missing = missing_wheels(wheel_dir)
        if missing:
            raise ConfigError(f"pip wheel did not produce {', '.join(missing)} for the ROS 2 bridge image",
                              resolution="check the package index is reachable, or pass --wheelhouse")
    # a wheelhouse made for another Python (the bridge's own wheels tell: cyclonedds is a binary wheel)
    unfit = [REQUIRED_WHEELS[d] for d in unfit_wheels(wheel_dir, version) if d in REQUIRED_WHEELS]
    if unfit:
        raise ConfigError(f"the ROS 2 bridge's wheels for {', '.join(unfit)} do not install on the image's Python "
                          f"{version} ({wheels.machine_arch()})",
                          resolution="make the wheelhouse again with this version of hybrid-knative (`bundle create "
                          "--with functions` fetches wheels for the image's Python), or set ros2.image")
    return dest


# --- status / doctor: each bridge, its topics, rates and last errors ----------------------------------------

def bridges_health(kube: KubeApi, *, namespace: str | None = None, timeout: float = 5.0) -> list[BridgeHealth]:
    """Every bridge Service's ``/metrics`` (all namespaces unless one is given), read through the API server's
    service proxy — this machine need not reach the pod network. Never raises for a broken bridge: an
    unreachable one is a row that says why."""
    try:
        services = kube.list("v1", "Service", namespace=namespace, labels={LABEL_NAME: BRIDGE_APP})
    except HybridError as exc:
        return [BridgeHealth(url="-", reachable=False, healthy=False, name="ROS 2 bridges",
                             detail=f"cannot list them: {exc.brief}")]
    found = []
    for ns, name, url in bridge_urls([{**s, "kind": "Service"} for s in services]):
        label = f"{ns}/{name}"
        try:
            code, body = kube.service_proxy("GET", ns, f"{name}:http", "/metrics", timeout=timeout)
        except HybridError as exc:
            found.append(BridgeHealth(url=url, reachable=False, healthy=False, name=label, detail=exc.brief))
            continue
        if code != 200:
            why = "no ready bridge pod behind the Service" if code == 503 else f"/metrics answered HTTP {code}"
            found.append(BridgeHealth(url=url, reachable=False, healthy=False, name=label, detail=why))
            continue
        try:
            doc = json.loads(body[:1024 * 1024])
        except ValueError:
            found.append(BridgeHealth(url=url, reachable=True, healthy=False, name=label,
                                      detail="/metrics is not JSON"))
            continue
        found.append(dataclasses.replace(parse_metrics(url, doc), name=label))
    return found


def health_rows(found: Sequence[BridgeHealth]) -> list[tuple[str, str, str]]:
    """(name, ready, detail) rows for the status table: a bridge, then its topics and last errors."""
    return [row for health in found for row in health.rows()]


def doctor_lines(found: Sequence[BridgeHealth]) -> list[str]:
    """doctor's lines: ✓/✗ per bridge, with cause and fix when it is not healthy."""
    lines = []
    for h in found:
        if h.healthy:
            lines.append(f"✓ ROS 2 bridge {h.name}: {h.detail}")
            continue
        lines.append(f"✗ ROS 2 bridge {h.name}")
        lines.append(f"  cause:    {h.detail}")
        if h.last_errors:
            lines.append(f"  evidence: {h.last_errors[-1]}")
        ns, _, name = h.name.partition("/")
        if h.broker_up is False:
            fix = f"check the Broker of namespace {ns} (`kubectl -n {ns} get broker`) and Knative Eventing's pods"
        else:
            fix = (f"see `kubectl -n {ns} get pods -l app.kubernetes.io/instance={name} -o wide` (is the robot's "
                   f"node Ready?) and `kubectl -n {ns} logs deploy/{name}`")
        lines.append(f"  fix:      {fix}")
    return lines
