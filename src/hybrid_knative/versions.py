"""Versions: Kubernetes server versions and Knative release lines (core layer: no imports above errors)."""

from __future__ import annotations

import dataclasses
import re

from hybrid_knative.errors import ConfigError

_KUBE_VERSION = re.compile(r"^v?(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?(?P<rest>[-+][0-9A-Za-z.+-]*)?$")
_RELEASE = re.compile(r"^(?P<major>\d+)\.(?P<minor>\d+)$")


@dataclasses.dataclass(frozen=True, order=True)
class KubeVersion:
    """A Kubernetes server version; only major.minor decide compatibility."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> KubeVersion:
        match = _KUBE_VERSION.match(text.strip())
        if not match:
            raise ConfigError(
                f"not a Kubernetes version: {text!r}",
                resolution="use MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 1.34 or v1.34.2",
            )
        return cls(int(match["major"]), int(match["minor"]), int(match["patch"] or 0))

    @property
    def minor_version(self) -> str:
        return f"{self.major}.{self.minor}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_release(text: str) -> str:
    """Validate a Knative release line such as ``1.23``."""
    if not _RELEASE.match(text.strip()):
        raise ConfigError(f"not a Knative release: {text!r}", resolution="use MAJOR.MINOR, e.g. 1.23")
    return text.strip()
