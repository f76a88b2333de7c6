"""The addon repository passes the checks `microk8s addons repo add` runs after its `git clone`.

MicroK8s (scripts/wrappers/addons.py, validate_addons_repo) validates addons.yaml with a JSON
schema, then checks that every addon has executable `enable` and `disable` hooks; a failure
deletes the clone. Listing (common/utils.py, get_available_addons) then filters by architecture
and `confinement`, and `microk8s addons repo list` reads the top-level `description`. The rules
of the MicroK8s contract (microk8s-contract.md in the project's shared notes, read from MicroK8s's
scripts/wrappers/addons.py and common/utils.py) that MicroK8s does not check itself are enforced here too.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ADDON = "hybrid-knative"
HOOKS = ("enable", "disable")

ARCHITECTURES = ["amd64", "arm64", "s390x", "ppc64le"]

# The schema MicroK8s validates addons.yaml with (same required keys, types and enum).
MICROK8S_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["microk8s-addons"],
    "properties": {
        "microk8s-addons": {
            "type": "object",
            "required": ["addons"],
            "properties": {
                "addons": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "description", "version", "check_status",
                                     "supported_architectures"],
                        "properties": {
                            "name": {"type": "string"},
                            "description": {"type": "string"},
                            "version": {"type": "string"},
                            "check_status": {"type": "string"},
                            "supported_architectures": {
                                "type": "array",
                                "items": {"type": "string", "enum": ARCHITECTURES},
                            },
                        },
                    },
                },
            },
        },
    },
}

CONFINEMENTS = {"classic", "strict"}
RESERVED_NAMES = {"knative", "amd"}  # community addons: a clash hides one of them


class RepoInvalid(Exception):
    """What MicroK8s would print before deleting the clone (or what would break the listing)."""


def validate_document(doc: Any) -> None:
    """addons.yaml content as MicroK8s accepts it, plus the contract's extra rules."""
    try:
        jsonschema.validate(doc, schema=MICROK8S_SCHEMA)
    except jsonschema.ValidationError as err:
        raise RepoInvalid(f"Invalid addons.yaml file: {err.message}") from err
    root = doc["microk8s-addons"]
    if not isinstance(root.get("description"), str) or not root["description"].strip():
        raise RepoInvalid("microk8s-addons.description is missing: `microk8s addons repo list` breaks")
    names = [addon["name"] for addon in root["addons"]]
    if len(set(names)) != len(names):
        raise RepoInvalid(f"duplicate addon names: {names}")
    for addon in root["addons"]:
        name = addon["name"]
        if not name or "/" in name or ":" in name:
            raise RepoInvalid(f"addon name {name!r} must be non-empty without '/' or ':'")
        if name in RESERVED_NAMES:
            raise RepoInvalid(f"addon name {name!r} is a community addon's name")
        if not addon["supported_architectures"]:
            raise RepoInvalid(f"{name}: supported_architectures is empty: the addon would never be listed")
        if "confinement" in addon:
            # MicroK8s tests `"strict" in addon["confinement"]`: a string or a list both work.
            value = addon["confinement"]
            values = value.replace(",", " ").split() if isinstance(value, str) else value
            if not isinstance(values, list) or not values or not set(values) <= CONFINEMENTS:
                raise RepoInvalid(f"{name}: confinement {value!r} must be classic and/or strict")


def validate_repo(repo: Path) -> None:
    """validate_addons_repo(): the file, then the hooks of every addon."""
    try:
        doc = yaml.safe_load((repo / "addons.yaml").read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise RepoInvalid(f"Error: repository {repo.name} does not contain an addons.yaml file") from err
    except yaml.YAMLError as err:
        raise RepoInvalid(f"Yaml format error in addons.yaml file: {err}") from err
    validate_document(doc)
    for addon in doc["microk8s-addons"]["addons"]:
        for hook_name in HOOKS:
            hook = repo / "addons" / addon["name"] / hook_name
            if not hook.exists():
                raise RepoInvalid(f"Missing {hook_name} hook for {addon['name']} addon")
            if not os.access(hook, os.X_OK):
                raise RepoInvalid(f"{hook_name} hook for {addon['name']} addon needs execute permissions")


def load() -> dict[str, Any]:
    return yaml.safe_load((REPO / "addons.yaml").read_text(encoding="utf-8"))


def our_addon(doc: dict[str, Any]) -> dict[str, Any]:
    (addon,) = [a for a in doc["microk8s-addons"]["addons"] if a["name"] == ADDON]
    return addon


# ------------------------------------------------------------------------------- the real repo


def test_repository_passes_microk8s_validation() -> None:
    validate_repo(REPO)


def test_addon_entry_is_what_we_promise() -> None:
    addon = our_addon(load())
    assert addon["version"] == "0.1.0"
    assert addon["check_status"] == "${SNAP_DATA}/var/lock/hybrid-knative.enabled"
    assert addon["supported_architectures"] == ["amd64", "arm64"]
    assert addon["confinement"] == "classic"
    for word in ("Knative Serving", "Kourier", "Eventing", "DNS", "GPU", "air-gap"):
        assert word in addon["description"]


def test_check_status_is_a_file_marker_not_a_substring() -> None:
    # A value MicroK8s would search for in `kubectl get all …` output must look like a path.
    check = our_addon(load())["check_status"]
    assert check.startswith("${SNAP_DATA}/") and check.endswith(".enabled")


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_are_executable_on_disk(hook: str) -> None:
    path = REPO / "addons" / ADDON / hook
    assert path.is_file()
    assert path.stat().st_mode & stat.S_IXUSR and path.stat().st_mode & stat.S_IXOTH
    assert path.read_text(encoding="utf-8").startswith("#!/usr/bin/env python3\n")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_hooks_are_executable_in_git() -> None:
    """A clone gets the index's mode, not the working tree's: both hooks must be 100755."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [f"addons/{ADDON}/{hook}" for hook in HOOKS]
    out = subprocess.run(["git", "-c", f"safe.directory={REPO}", "ls-files", "-s", "--", *paths],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    modes = {line.split("\t")[1]: line.split()[0] for line in out.splitlines()}
    assert modes == dict.fromkeys(paths, "100755"), out


# ------------------------------------------------------------------- the validator can say no

GOOD = {
    "microk8s-addons": {
        "description": "a repo",
        "addons": [{"name": "x", "description": "d", "version": "1.0", "check_status": "pod/x",
                    "supported_architectures": ["amd64"], "confinement": "classic"}],
    },
}


def _mutated(path: tuple[str, ...], value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    target: Any = doc
    for key in path[:-1]:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


ADDON_PATH = ("microk8s-addons", "addons", "0")


def test_good_document_is_accepted() -> None:
    validate_document(GOOD)
    validate_document(_mutated((*ADDON_PATH, "confinement"), ["classic", "strict"]))
    validate_document(_mutated((*ADDON_PATH, "confinement"), delete=True))
    validate_document(_mutated((*ADDON_PATH, "extra_key"), "tolerated"))


@pytest.mark.parametrize(
    ("doc", "complaint"),
    [
        (_mutated((*ADDON_PATH, "version"), 1.0), "is not of type 'string'"),
        (_mutated((*ADDON_PATH, "version"), delete=True), "'version' is a required property"),
        (_mutated((*ADDON_PATH, "check_status"), delete=True), "'check_status' is a required property"),
        (_mutated((*ADDON_PATH, "supported_architectures"), ["amd64", "riscv64"]), "is not one of"),
        (_mutated((*ADDON_PATH, "supported_architectures"), "amd64"), "is not of type 'array'"),
        (_mutated((*ADDON_PATH, "name"), "repo/x"), "without '/' or ':'"),
        (_mutated((*ADDON_PATH, "name"), "x:y"), "without '/' or ':'"),
        (_mutated((*ADDON_PATH, "name"), "knative"), "community addon"),
        (_mutated((*ADDON_PATH, "confinement"), "devmode"), "classic and/or strict"),
        (_mutated(("microk8s-addons", "description"), delete=True), "description is missing"),
        (_mutated(("microk8s-addons", "addons"), delete=True), "'addons' is a required property"),
        ({"addons": []}, "'microk8s-addons' is a required property"),
    ],
)
def test_bad_document_is_rejected(doc: dict[str, Any], complaint: str) -> None:
    with pytest.raises(RepoInvalid) as caught:
        validate_document(doc)
    assert complaint in str(caught.value)


def _fake_repo(tmp_path: Path, *, mode: int = 0o755, hooks: tuple[str, ...] = HOOKS) -> Path:
    tmp_path.mkdir(parents=True)
    (tmp_path / "addons.yaml").write_text(yaml.safe_dump(GOOD), encoding="utf-8")
    folder = tmp_path / "addons" / "x"
    folder.mkdir(parents=True)
    for hook in hooks:
        (folder / hook).write_text("#!/bin/sh\n", encoding="utf-8")
        (folder / hook).chmod(mode)
    return tmp_path


def test_repo_checks_hooks(tmp_path: Path) -> None:
    validate_repo(_fake_repo(tmp_path / "ok"))
    with pytest.raises(RepoInvalid, match="Missing disable hook for x addon"):
        validate_repo(_fake_repo(tmp_path / "missing", hooks=("enable",)))
    with pytest.raises(RepoInvalid, match="needs execute permissions"):
        validate_repo(_fake_repo(tmp_path / "mode", mode=0o644))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RepoInvalid, match=r"does not contain an addons\.yaml"):
        validate_repo(tmp_path / "empty")


def test_cited_docs_exist_and_no_plug_is_claimed_that_snapcraft_lacks() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in (Path(__file__), root / "addons.yaml"):
        for cited in re.findall(r"\bdocs/[\w.-]+\.md\b", path.read_text(encoding="utf-8")):
            assert (root / cited).is_file(), f"{path.name} cites {cited}, which does not exist"
    snapcraft = yaml.safe_load((root / "snapcraft.yaml").read_text(encoding="utf-8"))
    has_content = any((i or {}).get("interface") == "content"
                      for section in ("plugs", "slots") for i in (snapcraft.get(section) or {}).values())
    claims = re.search(r"served instead by the companion-snap path|content plug \+", (root / "addons.yaml").read_text())
    assert has_content or not claims, "addons.yaml describes a content plug/slot that snapcraft.yaml does not have"
