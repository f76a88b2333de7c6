"""User input, validated once, frozen: every command builds a Config before touching anything."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from hybrid_knative.errors import ConfigError
from hybrid_knative.options import (
    DOMAIN_MODES,
    EXTRAS,
    GPU_MODES,
    INGRESS_MODES,
    PROFILES,
    DomainMode,
    Extra,
    GpuMode,
    IngressMode,
    ProfileName,
)
from hybrid_knative.validate import parse_ip, split_server, validate_domain
from hybrid_knative.versions import KubeVersion, parse_release

__all__ = ["PROFILES", "ClusterTarget", "Config", "KubeVersion", "SnapPaths", "parse_release"]

_CONTEXT = re.compile(r"^[^\s]{1,253}$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # RFC 1123 label (namespace names)


@dataclasses.dataclass(frozen=True)
class SnapPaths:
    """Where MicroK8s keeps its files (from the SNAP* variables, or the defaults of the microk8s snap)."""

    snap: Path = Path("/snap/microk8s/current")
    snap_data: Path = Path("/var/snap/microk8s/current")
    snap_common: Path = Path("/var/snap/microk8s/common")

    @property
    def kubeconfig(self) -> Path:
        return self.snap_data / "credentials" / "client.config"

    @property
    def marker(self) -> Path:
        """The file ``check_status`` in addons.yaml looks for."""
        return self.snap_data / "var" / "lock" / "hybrid-knative.enabled"

    @property
    def state_dir(self) -> Path:
        return self.snap_common / "hybrid-knative" / "state"

    @classmethod
    def from_environ(cls, environ: dict[str, str]) -> SnapPaths:
        """MicroK8s's paths: the addon shim's HYBRID_KNATIVE_MICROK8S_* first (they survive `snap run`
        of our own snap), then SNAP* when they are MicroK8s's, else the microk8s snap's defaults."""
        default = cls()
        own = environ.get("SNAP_NAME", "microk8s") == "microk8s"

        def pick(name: str, fallback: Path) -> Path:
            value = environ.get(f"HYBRID_KNATIVE_MICROK8S_{name}") or (environ.get(name) if own else None)
            return Path(value) if value else fallback

        return cls(snap=pick("SNAP", default.snap), snap_data=pick("SNAP_DATA", default.snap_data),
                   snap_common=pick("SNAP_COMMON", default.snap_common))


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClusterTarget:
    """Which cluster, and where this node keeps its state: all that commands which only talk to a
    cluster (`status`, `doctor`, `disable`, later `deploy`, `clone`) need."""

    kubeconfig: Path | None = None
    context: str | None = None
    snap: SnapPaths = dataclasses.field(default_factory=SnapPaths)
    state_dir: Path | None = None
    marker: Path | None = None
    wait_timeout: float = 600.0
    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.kubeconfig is not None and not self.kubeconfig.is_file():
            raise ConfigError(
                f"kubeconfig not found: {self.kubeconfig}",
                resolution="pass --kubeconfig with the path of an existing kubeconfig file",
            )
        if self.context is not None and not _CONTEXT.match(self.context):
            raise ConfigError(f"invalid kubeconfig context name: {self.context!r}")
        if not 0.001 <= self.poll_interval <= 60:
            raise ConfigError(f"poll interval must be between 0.001 and 60 seconds, got {self.poll_interval:g}")
        if not 1 <= self.wait_timeout <= 24 * 3600:
            raise ConfigError(
                f"--timeout must be between 1 and 86400 seconds, got {self.wait_timeout:g}",
            )

    @property
    def target(self) -> ClusterTarget:
        """Only the cluster target (a Config is one, with install options on top)."""
        return ClusterTarget(kubeconfig=self.kubeconfig, context=self.context, snap=self.snap,
                             state_dir=self.state_dir, marker=self.marker, wait_timeout=self.wait_timeout,
                             poll_interval=self.poll_interval)

    @property
    def effective_kubeconfig(self) -> Path:
        return self.kubeconfig if self.kubeconfig is not None else self.snap.kubeconfig

    @property
    def effective_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else self.snap.state_dir

    @property
    def effective_marker(self) -> Path:
        return self.marker if self.marker is not None else self.snap.marker


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config(ClusterTarget):
    """A cluster target plus the install options of enable/plan, validated."""

    kubernetes_version: KubeVersion | None = None  # stand-in for the server's (plan without a cluster)
    knative: str | None = None  # release line, e.g. "1.23"; default: newest the server supports
    upstream_dirs: tuple[Path, ...] = ()  # searched first for upstream files (a mirror, a bundle's files)
    offline: bool = False  # never download upstream files
    adopt: bool = False  # take over a Knative install that hybrid-knative did not make
    bundle: Path | None = None  # air-gap bundle: upstream files and images from it, no network
    domain_mode: DomainMode = "local"  # see options.DOMAIN_MODES and hybrid_knative.dns
    domain: str | None = None  # the zone (local) or the user's wildcard domain (custom)
    ingress_ip: str | None = None  # overrides the detected node address for Kourier
    host_root: Path = Path("/")  # where host files (systemd-resolved drop-in) live; tests use a tmp folder
    dns_servers: tuple[str, ...] = ()  # resolvers for the magic/custom checks (IP[:PORT]); default: the host's
    eventing: bool = True  # Knative Eventing + a default Broker (--no-eventing skips them)
    broker_namespace: str = "default"  # where the default Broker goes (an RFC 1123 label)
    verify: bool = True  # deploy the smoke service and GET it from the host and a pod before marking enabled
    verify_always: bool = False  # --verify: also when nothing changed since the last verified enable
    overlap: bool = True  # install components that need nothing of each other side by side (--no-overlap: in order)
    gpu: GpuMode = "auto"  # see options.GPU_MODES and system.gpu.choose_vendor
    profile: ProfileName = "standard"  # standard (upstream requests) or edge (single replicas, low requests)
    # node: a node address (externalIPs) unless a load balancer has one; loadbalancer: wait for the cloud's load
    # balancer to give Kourier an address, never touch externalIPs (clone's cloud profile)
    ingress_mode: IngressMode = "node"
    extras: tuple[Extra, ...] = ()  # `--with ml` …: optional stacks (see options.EXTRAS)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.knative is not None:
            parse_release(self.knative)
        for folder in self.upstream_dirs:
            if not folder.is_dir():
                raise ConfigError(f"upstream folder not found: {folder}",
                                  resolution="pass --upstream-dir with an existing folder (e.g. a mirror)")
        if self.bundle is not None and not self.bundle.is_file():
            raise ConfigError(f"bundle not found: {self.bundle}",
                              resolution="pass --bundle with the file made by `hybrid-knative bundle create`")
        self._validate_dns()
        self._validate_platform()

    def _validate_dns(self) -> None:
        if self.domain_mode not in DOMAIN_MODES:
            raise ConfigError(f"unknown --domain-mode {self.domain_mode!r}",
                              resolution=f"use one of: {', '.join(DOMAIN_MODES)}")
        if self.domain is not None:
            object.__setattr__(self, "domain", validate_domain(self.domain))
        if self.domain_mode == "custom" and self.domain is None:
            raise ConfigError("--domain-mode custom needs --domain",
                              resolution="pass the wildcard domain you own, e.g. --domain apps.example.com")
        if self.domain_mode == "magic" and self.domain is not None:
            raise ConfigError("--domain cannot be used with --domain-mode magic",
                              resolution="magic mode derives the domain from the ingress address "
                              "(<ip>.sslip.io); drop --domain, or use --domain-mode custom")
        if self.ingress_ip is not None:
            object.__setattr__(self, "ingress_ip", parse_ip(self.ingress_ip))
        for server in self.dns_servers:
            split_server(server)

    def _validate_platform(self) -> None:
        if not _LABEL.fullmatch(self.broker_namespace):
            raise ConfigError(f"--broker-namespace {self.broker_namespace!r} is not a valid namespace name",
                              resolution="use an RFC 1123 label: lower-case letters, digits and '-', "
                              "starting and ending with a letter or digit, at most 63 characters")
        if self.gpu not in GPU_MODES:
            raise ConfigError(f"unknown --gpu {self.gpu!r}", resolution=f"use one of: {', '.join(GPU_MODES)}")
        if self.ingress_mode not in INGRESS_MODES:
            raise ConfigError(f"unknown ingress mode {self.ingress_mode!r}",
                              resolution=f"use one of: {', '.join(INGRESS_MODES)}")
        if self.ingress_mode == "loadbalancer" and self.domain_mode == "local":
            raise ConfigError("a load-balancer ingress needs a public domain",
                              resolution="use --domain-mode custom (your wildcard domain) or magic")
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown profile {self.profile!r}", resolution=f"choose one of: {', '.join(PROFILES)}")
        for extra in self.extras:
            if extra not in EXTRAS:
                raise ConfigError(f"unknown --with {extra!r}", resolution=f"choose from: {', '.join(EXTRAS)}")

    def has(self, extra: Extra) -> bool:
        """Whether ``--with extra`` was given (``ml-gridfs`` implies ``ml``)."""
        return extra in self.extras or (extra == "ml" and "ml-gridfs" in self.extras)
