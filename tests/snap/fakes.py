"""Faithful fakes of the CLIs that cannot run here: `snap`, `microk8s`, `snapctl` (and a `hybrid-knative`).

Each is a small Python executable written into a folder that tests put first on PATH. They keep
their state in one JSON file ($FAKE_STATE) and append every argv to its "calls", and they print
what the real tools print, with the real exit codes:

- `snap version` / `snap list microk8s` ("error: no matching snaps installed", exit 1) /
  `snap install microk8s --classic --channel C` (refuses without --classic like snapd does);
- `microk8s status --wait-ready --timeout N` ("microk8s is running" or "microk8s is not running. Use
  microk8s inspect for a deeper inspection.", exit 1), `status --addon NAME` ("enabled"/"disabled";
  an unknown addon exits 0), `addons repo list` (the real table), `addons repo add NAME SOURCE
  --reference REF` (a real `git clone -b REF`, then MicroK8s's validation — reused from
  tests/unit/test_addon_repo.py — deleting the clone on failure), `enable|disable NAME ARGS…` the way
  MicroK8s's dispatcher (scripts/wrappers/common/utils.py, unprotected_xable) does it: the addon's
  state comes from its check_status ($SNAP_DATA-expanded file marker), "Addon REPO/NAME is already
  enabled|disabled" when it is already in the asked state, else the addon's own script runs with
  MicroK8s's environment and its exit code becomes microk8s's; core addons (dns, nvidia) by name;
  `kubectl get ksvc NAME -n NS -o jsonpath={.status.url}`; "Insufficient permissions to access MicroK8s." (exit
  1) for a user who is neither root nor in the microk8s group (state "permitted": false). An addon of a
  repository folder in $SNAP_COMMON/addons (e.g. a `core` folder a test writes with MicroK8s's `registry`
  entry) goes through the same check_status + script path;
- `hybrid-knative enable|repair|disable|status` at MicroK8s's boundary: the marker (state incomplete /
  enabled), status printed the way the real one prints it (no URL);
- `snapctl get [-d] KEY…`, `set K=V…`, `unset K…`, `start [--enable] SVC`, `stop [--disable] SVC`.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

COMMON = r'''#!{python}
import json, os, sys
sys.path.insert(0, {repo!r})
STATE = os.environ["FAKE_STATE"]

def load():
    with open(STATE) as fh:
        return json.load(fh)

def save(state):
    with open(STATE, "w") as fh:
        json.dump(state, fh, indent=1)

state = load()
state["calls"].append([os.path.basename(sys.argv[0]), *sys.argv[1:]])
save(state)
args = sys.argv[1:]
'''

SNAP = COMMON + r'''
if args[:1] == ["version"]:
    print("snap    2.63\nsnapd   " + state["snapd"] + "\nseries  16\nubuntu  24.04\nkernel  6.8.0-31-generic")
    sys.exit(0)
if args[:1] == ["list"] and args[1:] == ["microk8s"]:
    snap = state["microk8s"]
    if snap is None:
        print("error: no matching snaps installed", file=sys.stderr)
        sys.exit(1)
    print("Name      Version   Rev   Tracking       Publisher   Notes")
    print(f"microk8s  v1.35.0   8250  {snap['channel']:<13}  canonical✓  classic")
    sys.exit(0)
if args[:2] == ["install", "microk8s"]:
    if state["install_fails"]:
        print('error: cannot install "microk8s": Post "https://api.snapcraft.io/v2/snaps/refresh": dial tcp: '
              'lookup api.snapcraft.io: Temporary failure in name resolution', file=sys.stderr)
        sys.exit(1)
    if "--classic" not in args:
        print('error: This revision of snap "microk8s" was published using classic confinement and thus may\n'
              '       perform arbitrary system changes outside of the security sandbox that snaps are usually\n'
              '       confined to, which may put your system at risk.', file=sys.stderr)
        sys.exit(1)
    channel = args[args.index("--channel") + 1] if "--channel" in args else "latest/stable"
    if state["microk8s"] is not None:
        print('snap "microk8s" is already installed, see \'snap help refresh\'')
        sys.exit(0)
    state["microk8s"] = {"channel": channel}
    save(state)
    print(f"microk8s ({channel}) v1.35.0 from Canonical✓ installed")
    sys.exit(0)
print(f"error: unknown command {args!r}", file=sys.stderr)
sys.exit(64)
'''

MICROK8S = COMMON + r'''
import shutil, subprocess, yaml
from pathlib import Path

if state["microk8s"] is None:
    print("microk8s: command not found", file=sys.stderr)
    sys.exit(127)
if not state.get("permitted", True):  # MicroK8s's exit_if_no_permissions: neither root nor in the group
    print("Insufficient permissions to access MicroK8s.")
    print("You can either try again with sudo or add the user tester to the 'microk8s' group:")
    print("")
    print("    sudo usermod -a -G microk8s tester")
    print("    sudo chown -R tester ~/.kube")
    print("")
    print("After this, reload the user groups either via a reboot or by running 'newgrp microk8s'.")
    sys.exit(1)
addons_dir = Path(state["common"]) / "addons"
NOT_RUNNING = "microk8s is not running. Use microk8s inspect for a deeper inspection."

MICROK8S_ENV = {"SNAP": state["snap"], "SNAP_DATA": state["snap_data"], "SNAP_COMMON": state["common"],
                "SNAP_NAME": "microk8s", "SNAP_ARCH": state["arch"], "REAL_PATH": os.environ.get("PATH", "")}

def is_xabled(addon):
    """MicroK8s's get_status/is_enabled: a substring of `kubectl get all,ingress,ingressclass -A` (+ the
    clusterroles), else $VAR-expanded, an existing regular file."""
    check = addon["check_status"]
    if any(check in row for row in state.get("kube_rows", [])):
        return True
    saved = dict(os.environ)
    os.environ.update(MICROK8S_ENV)
    try:
        path = os.path.expandvars(check)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return os.path.isfile(path)

def find(name):
    for repo in sorted(addons_dir.iterdir()) if addons_dir.is_dir() else []:
        try:
            doc = yaml.safe_load((repo / "addons.yaml").read_text())
        except OSError:
            continue
        for addon in doc["microk8s-addons"]["addons"]:
            if addon["name"] == name and state["arch"] in addon["supported_architectures"]:
                return repo.name, addon
    return None

if args[:1] == ["status"]:
    if "--wait-ready" in args:
        if not state["ready"]:
            print(NOT_RUNNING)
            sys.exit(1)
        print("microk8s is running\nhigh-availability: no")
        sys.exit(0)
    if "--addon" in args:
        name = args[args.index("--addon") + 1]
        if name in state["core_addons"]:
            print("enabled" if name in state["core_enabled"] else "disabled")
            sys.exit(0)
        found = find(name)
        if found is None:
            print(f"Addon {name} was not found in any repository")  # ... and exit code 0
            sys.exit(0)
        print("enabled" if is_xabled(found[1]) else "disabled")
        sys.exit(0)
if args[:3] == ["addons", "repo", "list"]:
    print("{:10} {:>6} {}".format("REPO", "ADDONS", "SOURCE"))
    print("{:10} {:>6} {}".format("core", 27, "(built-in)"))
    for repo in sorted(addons_dir.iterdir()) if addons_dir.is_dir() else []:
        origin = subprocess.run(["git", "-C", str(repo), "remote", "get-url", "origin"], capture_output=True,
                                text=True).stdout.strip()
        print("{:10} {:>6} {}".format(repo.name, 1, origin + "@abcdef"))
    sys.exit(0)
if args[:3] == ["addons", "repo", "add"]:
    name, source = args[3], args[4]
    dest = addons_dir / name
    if dest.exists():
        print(f"Error: repository '{name}' already exists!", file=sys.stderr)
        print("Use the --force flag to overwrite it", file=sys.stderr)
        sys.exit(1)
    cmd = ["git", "clone", source, str(dest)]
    if "--reference" in args:
        cmd += ["-b", args[args.index("--reference") + 1]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        sys.exit(done.returncode)
    from tests.unit.test_addon_repo import RepoInvalid, validate_repo  # MicroK8s's own checks

    try:
        validate_repo(dest)
    except RepoInvalid as exc:
        print(exc, file=sys.stderr)
        shutil.rmtree(dest)
        sys.exit(1)
    sys.exit(0)
if args[:1] in (["enable"], ["disable"]):
    # MicroK8s's unprotected_xable: the addon's script runs only when check_status says the opposite state
    action, name, rest = args[0], args[1], args[2:]
    if name in state["core_addons"]:
        xabled = (name in state["core_enabled"]) == (action == "enable")
        if xabled:
            print(f"Addon core/{name} is already {action}d")
            sys.exit(0)
        state.setdefault("core_calls", []).append(
            [action, name, os.environ.get("MICROK8S_ADDONS_SKIP_LOCK", "")])
        save(state)
        if state.get("core_fails") == name:
            print("Infer repository core for addon nvidia")
            print("Deployment of the GPU operator failed", file=sys.stderr)
            sys.exit(1)
        state["core_enabled"] = ([*state["core_enabled"], name] if action == "enable"
                                 else [a for a in state["core_enabled"] if a != name])
        save(state)
        sys.exit(0)
    found = find(name)
    if found is None:
        print(f"Addon {name} was not found in any repository")
        sys.exit(0)  # MicroK8s exits 0 here
    repo, addon = found
    if is_xabled(addon) == (action == "enable"):
        print(f"Addon {repo}/{name} is already {action}d")
        sys.exit(0)
    script = addons_dir / repo / "addons" / name / action
    env = {**os.environ, **MICROK8S_ENV}
    done = subprocess.run([str(script), *rest], env=env)
    sys.exit(done.returncode)
if args[:1] == ["ctr"]:
    # `microk8s ctr -n k8s.io images ls`: MicroK8s's ctr on its containerd socket
    if args[1:] != ["-n", "k8s.io", "images", "ls"] or state.get("ctr_output") is None:
        print("ctr: failed to dial \"/var/snap/microk8s/common/run/containerd.sock\"", file=sys.stderr)
        sys.exit(1)
    print(state["ctr_output"], end="")
    sys.exit(0)
if args[:1] == ["kubectl"]:
    # `microk8s kubectl get ksvc NAME -n NS -o jsonpath={.status.url}`
    if args[1:3] == ["get", "ksvc"]:
        url = state.get("ksvc_url")
        if not url:
            print(f'Error from server (NotFound): services.serving.knative.dev "{args[3]}" not found',
                  file=sys.stderr)
            sys.exit(1)
        print(url, end="")
        sys.exit(0)
print(f"error: unknown command {args!r}", file=sys.stderr)
sys.exit(64)
'''

HYBRID_KNATIVE = COMMON + r'''
# What the real `hybrid-knative` does at MicroK8s's boundary: enable writes the marker check_status reads
# (state incomplete from the first change, enabled at the end), disable removes it, status prints what
# the real status prints (no URL).
data = os.environ.get("HYBRID_KNATIVE_MICROK8S_SNAP_DATA") or os.environ.get("SNAP_DATA") or state["snap_data"]
marker = os.path.join(data, "var", "lock", "hybrid-knative.enabled")

def mark(value):
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker, "w") as fh:
        fh.write(f"knative 1.23\nstate {value}\n")

if args[:1] in (["enable"], ["repair"]):
    state["enable_args"] = args[1:]
    state.setdefault("runs", []).append(args[0])
    save(state)
    if state["enable_fails"]:
        mark("incomplete")
        print("✗ Wait for Kourier to be ready", file=sys.stderr)
        sys.exit(1)
    if state["enable_works"]:
        mark("enabled")
        state["ksvc_url"] = "http://hello-default.hk.internal"
        save(state)
    print(state["enable_output"])
    sys.exit(0)
if args[:1] == ["disable"]:
    state.setdefault("runs", []).append("disable")
    state["ksvc_url"] = None
    save(state)
    if os.path.exists(marker):
        os.unlink(marker)
    print("hybrid-knative: disabled.")
    sys.exit(0)
if args[:1] == ["status"]:
    try:
        text = open(marker).read()
    except OSError:
        text = ""
    shown = "no" if not text else ("incomplete" if "state incomplete" in text else "yes")
    print(f"enabled: {shown}\nknative: 1.23\ndomain: hk.internal\ningress IP: 10.0.0.5")
    sys.exit(0 if shown == "yes" else 3)
sys.exit(64)
'''

SNAPCTL = COMMON + r'''
config = state.setdefault("config", {})
services = state.setdefault("services", {})

def lookup(key):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node

def put(key, value):
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value

def parse(value):
    try:
        return json.loads(value)  # like snapd: JSON when it parses, else a string
    except ValueError:
        return value

cmd, rest = (args[0], args[1:]) if args else ("", [])
if cmd == "get":
    document = "-d" in rest
    keys = [k for k in rest if k != "-d"]
    if not keys:
        print("error: get which option?", file=sys.stderr)
        sys.exit(1)
    if document or len(keys) > 1:
        print(json.dumps({k: lookup(k) for k in keys if lookup(k) is not None}, indent=2))
    else:
        value = lookup(keys[0])
        if value is not None:
            print(value if isinstance(value, str) else json.dumps(value, indent=2))
    sys.exit(0)
if cmd == "set":
    for item in rest:
        key, _, value = item.partition("=")
        put(key, parse(value))
    save(state)
    sys.exit(0)
if cmd == "unset":
    for key in rest:
        put(key, None)
    save(state)
    sys.exit(0)
if cmd in ("start", "stop"):
    flag = "--enable" if cmd == "start" else "--disable"
    for svc in [r for r in rest if not r.startswith("-")]:
        entry = services.setdefault(svc, {"enabled": False, "active": False})
        entry["active"] = cmd == "start"
        if flag in rest:
            entry["enabled"] = cmd == "start"
    save(state)
    sys.exit(0)
print(f'error: unknown command "{cmd}", see \'snapctl help\'', file=sys.stderr)
sys.exit(1)
'''


# MicroK8s's internal wrappers ($SNAP/microk8s-<cmd>.wrapper) begin like this: they need MicroK8s's own
# snap environment (SNAP pointing at MicroK8s, with actions/common/utils.sh inside). Called from another
# snap or a pip install they fail exactly like this (bash: SNAP: unbound variable / No such file).
STRICT_WRAPPER = """#!/usr/bin/env bash
set -eu
source $SNAP/actions/common/utils.sh
use_snap_env
echo "the internal wrapper ran: $0 $*"
"""


def strict_wrappers(snap: Path, names: tuple[str, ...] = ("status", "enable", "ctr", "images")) -> None:
    """A MicroK8s snap folder whose internal wrappers fail without MicroK8s's environment."""
    (snap / "actions" / "common").mkdir(parents=True, exist_ok=True)
    (snap / "actions" / "common" / "utils.sh").write_text("use_snap_env() { :; }\n", encoding="utf-8")
    for name in names:
        path = snap / f"microk8s-{name}.wrapper"
        path.write_text(STRICT_WRAPPER, encoding="utf-8")
        path.chmod(0o755)


class Fakes:
    """The fake executables in ``bin`` and their shared state file."""

    def __init__(self, root: Path, **state: Any) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.state_file = root / "state.json"
        initial = {"calls": [], "snapd": "2.63", "microk8s": None, "install_fails": False, "ready": True,
                   "common": str(root / "microk8s-common"), "snap_data": str(root / "microk8s-data"),
                   "snap": str(root / "microk8s-snap"), "arch": "amd64", "core_addons": ["dns", "nvidia"],
                   "core_enabled": ["dns"], "enable_works": True, "enable_fails": False, "ksvc_url": None,
                   "enable_output": "hybrid-knative: Knative 1.23 is enabled (120 writes).\n"
                                    "Try it: curl http://hello-default.hk.internal",
                   "config": {}, "services": {}}
        initial.update(state)
        self.write(initial)
        for name, body in (("snap", SNAP), ("microk8s", MICROK8S), ("snapctl", SNAPCTL),
                           ("hybrid-knative", HYBRID_KNATIVE)):
            path = self.bin / name
            path.write_text(body.replace("{python}", sys.executable).replace("{repo!r}", repr(str(REPO))),
                            encoding="utf-8")
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def read(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.state_file.read_text(encoding="utf-8"))
        return result

    def write(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state), encoding="utf-8")

    def update(self, **changes: Any) -> None:
        state = self.read()
        state.update(changes)
        self.write(state)

    @property
    def calls(self) -> list[list[str]]:
        return self.read()["calls"]

    @property
    def microk8s(self) -> str:
        """For HYBRID_KNATIVE_MICROK8S_BIN: the fake `microk8s` command."""
        return str(self.bin / "microk8s")

    def env(self) -> dict[str, str]:
        return {"FAKE_STATE": str(self.state_file), "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"}
