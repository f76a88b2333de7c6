"""The logic behind the snap's hooks (snap/hooks/{install,configure,remove} are one-line callers).

    $SNAP/bin/python3 -m hybrid_knative.snaphooks install|configure|remove

Configuration (`sudo snap set hybrid-knative KEY=VALUE`, `snap unset` to clear):

    join.token    an enrolment string (hk1:…) from `hybrid-knative token create` on the hub; setting it
                  stores it 0600 for the agent and starts + enables the `agent` service; unsetting it
                  stops + disables the agent and deletes the stored string
    hub.enabled   true|false: start + enable (or stop + disable) the `hub` service

Everything is validated before anything changes; a bad value makes the hook exit non-zero with a
clear message, and snapd then rolls the `snap set` back.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hybrid_knative.errors import ConfigError, HybridError
from hybrid_knative.join.enrolment import parse_enrolment
from hybrid_knative.system.files import atomic_write
from hybrid_knative.system.runner import Runner
from hybrid_knative.system.snapctl import Snapctl

KNOWN_KEYS: dict[str, tuple[str, ...]] = {"join": ("token",), "hub": ("enabled",)}
ENROLMENT_ENV = "HYBRID_KNATIVE_ENROLMENT_FILE"  # set for the agent app in snapcraft.yaml


@dataclasses.dataclass(frozen=True)
class SnapEnv:
    """Our own snap's folders, from the variables snapd sets for hooks."""

    snap: Path
    snap_data: Path
    snap_common: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SnapEnv:
        missing = [name for name in ("SNAP", "SNAP_DATA", "SNAP_COMMON") if not environ.get(name)]
        if missing:
            raise ConfigError(f"{', '.join(missing)} not set: snap hooks run only under snapd",
                              resolution="this command is run by snapd; use `snap set hybrid-knative …`")
        return cls(Path(environ["SNAP"]), Path(environ["SNAP_DATA"]), Path(environ["SNAP_COMMON"]))

    @property
    def join_dir(self) -> Path:
        return self.snap_common / "join"

    @property
    def enrolment_file(self) -> Path:
        return self.join_dir / "enrolment"

    @property
    def hub_dir(self) -> Path:
        return self.snap_common / "hub"

    @property
    def addon_repo_copy(self) -> Path:
        """Where `bootstrap` keeps the root-owned copy of $SNAP/addon-repo that MicroK8s clones."""
        return self.snap_common / "addon-repo"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The validated snap configuration."""

    enrolment: str | None = None
    hub_enabled: bool = False


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def _check_keys(group: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{group} must be a group of options, not a single value",
                          resolution=f"use `snap set hybrid-knative {group}.{KNOWN_KEYS[group][0]}=…`")
    unknown = sorted(set(value) - set(KNOWN_KEYS[group]))
    if unknown:
        known = ", ".join(f"{group}.{k}" for k in KNOWN_KEYS[group])
        raise ConfigError(f"unknown option {group}.{unknown[0]}", resolution=f"the {group} options are: {known}")
    return value


def parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"{key} must be true or false, got {str(value)[:40]!r}",
                      resolution=f"`sudo snap set hybrid-knative {key}=true` (or false)")


def read_settings(snapctl: Snapctl) -> Settings:
    """Read and validate every option; raises ConfigError (never echoing a secret) on bad input."""
    join = _check_keys("join", snapctl.get_document("join"))
    hub = _check_keys("hub", snapctl.get_document("hub"))
    token = join.get("token")
    enrolment: str | None = None
    if token is not None and token != "":
        if not isinstance(token, str):
            raise ConfigError("join.token must be an enrolment string (hk1:…)",
                              resolution="copy it from `hybrid-knative token create` on the hub")
        try:
            parse_enrolment(token.strip())
        except ConfigError as exc:
            raise ConfigError(f"join.token is invalid: {exc.brief}", details=exc.details,
                              resolution=exc.resolution or "copy the whole hk1:… string from "
                              "`hybrid-knative token create` on the hub") from None
        enrolment = token.strip()
    hub_enabled = parse_bool("hub.enabled", hub["enabled"]) if hub.get("enabled") not in (None, "") else False
    return Settings(enrolment=enrolment, hub_enabled=hub_enabled)


def install(env: SnapEnv) -> None:
    """First install: private state folders; the daemons stay disabled (install-mode: disable)."""
    _private_dir(env.join_dir)
    _private_dir(env.hub_dir)


def configure(env: SnapEnv, snapctl: Snapctl) -> Settings:
    settings = read_settings(snapctl)  # all validation first: nothing changes on bad input
    _private_dir(env.join_dir)
    _private_dir(env.hub_dir)
    if settings.enrolment is not None:
        atomic_write(env.enrolment_file, settings.enrolment + "\n", mode=0o600)
        snapctl.start("agent", enable=True)
    else:
        env.enrolment_file.unlink(missing_ok=True)
        snapctl.stop("agent", disable=True)
    if settings.hub_enabled:
        snapctl.start("hub", enable=True)
    else:
        snapctl.stop("hub", disable=True)
    return settings


def remove(env: SnapEnv) -> None:
    """Removal: delete the stored enrolment secret (snapd deletes the rest of $SNAP_COMMON)."""
    env.enrolment_file.unlink(missing_ok=True)


HOOKS = ("install", "configure", "remove")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    if len(args) != 1 or args[0] not in HOOKS:
        print(f"usage: python3 -m hybrid_knative.snaphooks {'|'.join(HOOKS)}", file=sys.stderr)
        return 2
    try:
        env = SnapEnv.from_environ(environ)
        if args[0] == "install":
            install(env)
        elif args[0] == "configure":
            configure(env, Snapctl(Runner(), binary=environ.get("SNAPCTL", "snapctl")))
        else:
            remove(env)
    except HybridError as exc:
        print(f"hybrid-knative: {exc.brief}", file=sys.stderr)
        if exc.details:
            print(exc.details, file=sys.stderr)
        if exc.resolution:
            print(f"What to do: {exc.resolution}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
