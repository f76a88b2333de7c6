"""The component catalog: which upstream files each Knative release line uses (data in components/)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import yaml

from hybrid_knative.config import KubeVersion
from hybrid_knative.errors import ConfigError, PermanentError

COMPONENTS_DIR = Path(__file__).parent / "components"


@dataclasses.dataclass(frozen=True)
class UpstreamFile:
    """One pinned upstream release file."""

    component: str
    version: str
    name: str
    path: str  # relative path inside a vendor folder or mirror, e.g. knative-serving/1.23.0/serving-core.yaml
    url: str
    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class ComponentVersion:
    component: str
    version: str
    files: dict[str, UpstreamFile]
    image_pins: dict[str, str]

    def file(self, name: str) -> UpstreamFile:
        try:
            return self.files[name]
        except KeyError:
            raise PermanentError(f"{self.component} {self.version} has no file {name!r}") from None


@dataclasses.dataclass(frozen=True)
class Release:
    """A Knative release line (e.g. 1.23) with its component versions."""

    line: str
    min_kubernetes: KubeVersion
    components: dict[str, ComponentVersion]

    def component(self, name: str) -> ComponentVersion:
        return self.components[name]


@dataclasses.dataclass(frozen=True)
class Catalog:
    releases: tuple[Release, ...]  # newest first
    min_kubernetes: KubeVersion
    max_tested_kubernetes: KubeVersion
    # components no release references (microk8s's image list, device plugins): every version, vendored too
    extras: tuple[ComponentVersion, ...] = ()

    def extra_component(self, name: str) -> ComponentVersion:
        """The newest listed version of an extra component."""
        found = [c for c in self.extras if c.component == name]
        if not found:
            known = ", ".join(sorted({c.component for c in self.extras})) or "none"
            raise ConfigError(f"unknown component {name!r}", resolution=f"known extra components: {known}")
        return found[-1]

    def matrix(self) -> str:
        """The supported matrix, one line per release, for error messages and --help."""
        return "; ".join(f"Knative {r.line} needs Kubernetes ≥ {r.min_kubernetes.minor_version}" for r in self.releases)

    def release(self, line: str) -> Release:
        for release in self.releases:
            if release.line == line:
                return release
        known = ", ".join(r.line for r in self.releases)
        raise ConfigError(f"unknown Knative release {line!r}", resolution=f"choose one of: {known}")

    def choose(self, server: KubeVersion, requested: str | None = None) -> Release:
        """Pick the newest release the server meets (or check the requested one)."""
        if (server.major, server.minor) < (self.min_kubernetes.major, self.min_kubernetes.minor):
            raise PermanentError(
                f"Kubernetes {server.minor_version} is too old for hybrid-knative",
                details=f"Supported: {self.matrix()}.",
                resolution=f"upgrade MicroK8s to a track ≥ {self.min_kubernetes.minor_version}, "
                f"e.g. `sudo snap refresh microk8s --channel={self.max_tested_kubernetes.minor_version}/stable`",
            )
        candidates = [r for r in self.releases if (server.major, server.minor) >= _mm(r.min_kubernetes)]
        if requested is None:
            return candidates[0]
        release = self.release(requested)
        if release not in candidates:
            raise ConfigError(
                f"Knative {requested} needs Kubernetes ≥ {release.min_kubernetes.minor_version}, "
                f"the server runs {server.minor_version}",
                details=f"Supported: {self.matrix()}.",
                resolution=f"omit --knative to get Knative {candidates[0].line}, or upgrade MicroK8s",
            )
        return release

    def all_files(self) -> list[UpstreamFile]:
        seen: dict[str, UpstreamFile] = {}
        for release in self.releases:
            for comp in release.components.values():
                for f in comp.files.values():
                    seen[f.path] = f
        for comp in self.extras:
            for f in comp.files.values():
                seen[f.path] = f
        return sorted(seen.values(), key=lambda f: f.path)


def _mm(v: KubeVersion) -> tuple[int, int]:
    return (v.major, v.minor)


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when there: `versions` reads 19 files


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_LOADER)  # noqa: S506 - a safe loader


@functools.lru_cache(maxsize=4)
def component_files(root: Path = COMPONENTS_DIR) -> dict[str, Path]:
    """Every ``<folder>/component.yaml`` by the upstream name it declares (``name:``, default the folder
    name with ``_`` → ``-``): the folder of a component holds its own pinned upstream files."""
    found: dict[str, Path] = {}
    for path in sorted(root.glob("*/component.yaml")):
        doc = _load_yaml(path) or {}
        found[str(doc.get("name") or path.parent.name.replace("_", "-"))] = path
    return found


def load_component(name: str, version: str, root: Path = COMPONENTS_DIR) -> ComponentVersion:
    path = component_files(root).get(name)
    if path is None:
        raise PermanentError(f"unknown component {name!r}", details=f"no component.yaml names it under {root}")
    doc = _load_yaml(path)
    versions = doc.get("versions", {})
    if version not in versions:
        raise PermanentError(f"component {name} has no version {version}", details=f"known: {sorted(versions)}")
    entry = versions[version]
    files = {
        fname: UpstreamFile(component=name, version=version, name=fname, path=str(f["path"]),
                            url=str(f["url"]), sha256=str(f["sha256"]).lower(), size=int(f["size"]))
        for fname, f in entry.get("files", {}).items()
    }
    pins = {str(k): str(v) for k, v in (entry.get("image_pins") or {}).items()}
    return ComponentVersion(component=name, version=version, files=files, image_pins=pins)


@functools.lru_cache(maxsize=4)
def load_catalog(root: Path = COMPONENTS_DIR) -> Catalog:
    doc = _load_yaml(root / "releases.yaml")
    releases = []
    for line, entry in doc["releases"].items():
        comps = {name: load_component(name, str(ver), root) for name, ver in entry["components"].items()}
        releases.append(Release(line=str(line), min_kubernetes=KubeVersion.parse(str(entry["min_kubernetes"])),
                                components=comps))
    releases.sort(key=lambda r: _mm(KubeVersion.parse(r.line)), reverse=True)
    support = doc["supported_kubernetes"]
    return Catalog(releases=tuple(releases), min_kubernetes=KubeVersion.parse(str(support["min"])),
                   max_tested_kubernetes=KubeVersion.parse(str(support["max_tested"])),
                   extras=_extras(root, {name for r in releases for name in r.components}))


def _extras(root: Path, referenced: set[str]) -> tuple[ComponentVersion, ...]:
    """Every version of every component folder that no release references (in file order)."""
    out = []
    for name, path in component_files(root).items():
        if name in referenced:
            continue
        for version in (_load_yaml(path) or {}).get("versions") or {}:
            out.append(load_component(name, str(version), root))
    return tuple(out)
