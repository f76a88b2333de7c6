"""GPU host detection from sysfs, procfs and /dev, read under a root prefix.

Used by ``enable`` for the local node (root ``/``) and by the edge join agent, which may look at a host
filesystem mounted elsewhere (e.g. ``/host``, with the host's /sys, /dev and /proc mounted below it).

The detector only reads files: it never spawns processes and never writes. Every read is guarded, so a
malformed or unreadable tree gives state ``unknown`` (or the best conclusive state) with a reason naming
what could not be read, never an exception.

AMD is usable for ROCm when the ``amdgpu`` driver is bound to the device, ``/dev/kfd`` exists and the KFD
topology has a node with a non-zero ``gfx_target_version`` for it. NVIDIA is usable when the ``nvidia``
driver is bound (or ``/proc/driver/nvidia/version`` exists and the device has no other driver).
Precedence: usable AMD, usable NVIDIA, AMD without driver, NVIDIA without driver, none.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from hybrid_knative.errors import ConfigError
from hybrid_knative.options import GPU_MODES

log = logging.getLogger(__name__)

__all__ = [
    "ANNOTATION_GPU_REASON",
    "ANNOTATION_RENDER_GID",
    "GPU_STATES",
    "LABEL_AMD_GFX_TARGET",
    "LABEL_AMD_GFX_TARGETS",
    "LABEL_AMD_PRESENT",
    "LABEL_GPU_STATE",
    "LABEL_NVIDIA_PRESENT",
    "MANAGED_ANNOTATIONS",
    "MANAGED_LABELS",
    "GpuDevice",
    "GpuReport",
    "GpuState",
    "GpuVendor",
    "detect",
    "gfx_target_from_version",
]

GpuState = Literal["amd", "amd-no-driver", "nvidia", "nvidia-no-driver", "none", "unknown"]
GpuVendor = Literal["amd", "nvidia"]
GPU_STATES: tuple[GpuState, ...] = ("amd", "amd-no-driver", "nvidia", "nvidia-no-driver", "none", "unknown")

LABEL_AMD_PRESENT = "amd.com/gpu.present"
LABEL_AMD_GFX_TARGET = "amd.com/gpu.gfx-target"
LABEL_AMD_GFX_TARGETS = "amd.com/gpu.gfx-targets"
LABEL_GPU_STATE = "hybrid-knative.io/gpu"
LABEL_NVIDIA_PRESENT = "nvidia.com/gpu.present"
ANNOTATION_RENDER_GID = "hybrid-knative.io/render-gid"
ANNOTATION_GPU_REASON = "hybrid-knative.io/gpu-reason"
#: Every key ``labels()`` / ``annotations()`` may return: remove the ones a new report no longer sets.
MANAGED_LABELS: tuple[str, ...] = (
    LABEL_AMD_PRESENT,
    LABEL_AMD_GFX_TARGET,
    LABEL_AMD_GFX_TARGETS,
    LABEL_GPU_STATE,
    LABEL_NVIDIA_PRESENT,
)
MANAGED_ANNOTATIONS: tuple[str, ...] = (ANNOTATION_RENDER_GID, ANNOTATION_GPU_REASON)

AMD_VENDOR_ID = 0x1002
NVIDIA_VENDOR_ID = 0x10DE

_LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE_MAX = 63
_GFX_TARGET_RE = re.compile(r"^gfx[0-9a-f]{3,6}$")
_PCI_ADDRESS_RE = re.compile(r"^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$")
_HEX_RE = re.compile(r"^0x([0-9a-fA-F]{1,8})$")
_DEC_RE = re.compile(r"^[0-9]{1,20}$")
_RENDER_RE = re.compile(r"^renderD([0-9]{1,6})$")
_MAX_READ = 64 * 1024
_MAX_PROBLEMS_SHOWN = 3
_REASON_MAX = 1000

_STATE_RANK: dict[GpuState, int] = {
    "none": 0,
    "nvidia-no-driver": 1,
    "amd-no-driver": 2,
    "nvidia": 3,
    "amd": 4,
}


def gfx_target_from_version(version: int) -> str | None:
    """The LLVM gfx target for a KFD ``gfx_target_version`` (110000 -> gfx1100, 90010 -> gfx90a).

    major = v // 10000, minor = (v // 100) % 100, stepping = v % 100; minor and stepping are one hex digit
    each in the name. Returns None for 0 (CPU nodes) and for values that cannot be a gfx target.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version <= 0:
        return None
    major, minor, stepping = version // 10000, (version // 100) % 100, version % 100
    if not 1 <= major <= 99 or minor > 15 or stepping > 15:
        return None
    return f"gfx{major}{minor:x}{stepping:x}"


@dataclasses.dataclass(frozen=True)
class GpuDevice:
    """One AMD or NVIDIA GPU (PCI display or accelerator function)."""

    pci_address: str  # "0000:03:00.0"
    vendor: GpuVendor
    vendor_id: str  # "0x1002"
    device_id: str  # "0x744c"; "unknown" when the device file could not be read
    pci_class: str  # "0x030000"
    driver: str | None  # bound driver ("amdgpu", "nvidia", "vfio-pci", …), None when unbound or unreadable
    gfx_target: str | None  # "gfx1100", from the KFD topology node of this device
    vram_bytes: int | None  # mem_info_vram_total (amdgpu only)
    render_node: str | None  # "renderD128"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GpuDevice:
        """Inverse of ``to_dict`` for data received from elsewhere; raises ValueError when invalid."""
        if not isinstance(data, Mapping):
            raise ValueError("GPU device must be an object")
        address = _field(data, "pci_address", str)
        if not _PCI_ADDRESS_RE.match(address):
            raise ValueError(f"invalid pci_address {address!r}")
        vendor = _field(data, "vendor", str)
        if vendor not in ("amd", "nvidia"):
            raise ValueError(f"invalid vendor {vendor!r}")
        gfx_target = _optional_field(data, "gfx_target", str)
        if gfx_target is not None and not _GFX_TARGET_RE.match(gfx_target):
            raise ValueError(f"invalid gfx_target {gfx_target!r}")
        vram = _optional_field(data, "vram_bytes", int)
        if vram is not None and vram < 0:
            raise ValueError(f"invalid vram_bytes {vram!r}")
        return cls(
            pci_address=address,
            vendor="amd" if vendor == "amd" else "nvidia",
            vendor_id=_field(data, "vendor_id", str),
            device_id=_field(data, "device_id", str),
            pci_class=_field(data, "pci_class", str),
            driver=_optional_field(data, "driver", str),
            gfx_target=gfx_target,
            vram_bytes=vram,
            render_node=_optional_field(data, "render_node", str),
        )


@dataclasses.dataclass(frozen=True)
class GpuReport:
    """What ``detect`` found on one host."""

    state: GpuState
    devices: tuple[GpuDevice, ...]
    render_gid: int | None  # gid owning /dev/kfd (else the first /dev/dri/renderD*), for supplementalGroups
    reason: str  # one human sentence

    @property
    def usable_amd_count(self) -> int:
        """AMD devices ROCm can use: amdgpu bound and a KFD GPU node (and /dev/kfd, implied by state amd)."""
        if self.state != "amd":
            return 0
        return sum(1 for d in self.devices if d.vendor == "amd" and d.driver == "amdgpu" and d.gfx_target)

    @property
    def gfx_targets(self) -> tuple[str, ...]:
        return tuple(sorted({d.gfx_target for d in self.devices if d.vendor == "amd" and d.gfx_target}))

    def labels(self) -> dict[str, str]:
        """Node labels. Keys in MANAGED_LABELS that are absent here should be removed from the node."""
        labels: dict[str, str] = {LABEL_GPU_STATE: self.state}
        if self.state == "amd":
            labels[LABEL_AMD_PRESENT] = "true"
        targets = [t for t in self.gfx_targets if _valid_label_value(t)]
        if targets:
            labels[LABEL_AMD_GFX_TARGET] = targets[0]
        if len(targets) > 1:
            joined = targets[0]
            for target in targets[1:]:  # whole targets only, within the 63-character limit
                if len(joined) + 1 + len(target) > _LABEL_VALUE_MAX:
                    break
                joined = f"{joined}_{target}"
            labels[LABEL_AMD_GFX_TARGETS] = joined
        if self.state == "nvidia":
            labels[LABEL_NVIDIA_PRESENT] = "true"
        return labels

    def annotations(self) -> dict[str, str]:
        """Node annotations. Keys in MANAGED_ANNOTATIONS that are absent here should be removed."""
        annotations: dict[str, str] = {}
        if self.render_gid is not None:
            annotations[ANNOTATION_RENDER_GID] = str(self.render_gid)
        annotations[ANNOTATION_GPU_REASON] = self.reason
        return annotations

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the join agent's enrolment request); ``from_dict`` reads it back."""
        return {
            "state": self.state,
            "devices": [d.to_dict() for d in self.devices],
            "render_gid": self.render_gid,
            "reason": self.reason,
            "gfx_targets": list(self.gfx_targets),
            "usable_amd_count": self.usable_amd_count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GpuReport:
        """Parse a report received from another host; raises ValueError when invalid.

        ``gfx_targets`` and ``usable_amd_count`` are derived, so they are ignored on input.
        """
        if not isinstance(data, Mapping):
            raise ValueError("GPU report must be an object")
        state = _field(data, "state", str)
        if state not in GPU_STATES:
            raise ValueError(f"invalid GPU state {state!r}")
        devices = data.get("devices", [])
        if not isinstance(devices, list):
            raise ValueError("GPU report field 'devices' must be a list")
        gid = _optional_field(data, "render_gid", int)
        if gid is not None and gid < 0:
            raise ValueError(f"invalid render_gid {gid!r}")
        reason = _field(data, "reason", str)
        return cls(
            state=next(s for s in GPU_STATES if s == state),
            devices=tuple(GpuDevice.from_dict(d) for d in devices),
            render_gid=gid,
            reason=reason[:_REASON_MAX],
        )


def detect(root: Path = Path("/")) -> GpuReport:
    """Detect the GPUs of the host whose filesystem is at ``root``. Never raises."""
    try:
        return _Scan(Path(root)).run()
    except Exception as exc:  # a bug here must not break `enable` or the join agent
        log.exception("GPU detection failed under %s", root)
        return GpuReport("unknown", (), None, f"GPU state unknown: internal error in GPU detection ({exc!r})"[:300])


# --- implementation ---------------------------------------------------------------------------------------------


class _Unreadable(Exception):
    """A file exists but could not be read as text; the message says why."""


def _read_small(path: Path) -> str | None:
    """Text of a small regular file; None if it does not exist; raises _Unreadable otherwise.

    Opens non-blocking and refuses anything but regular files, so a FIFO or device node in a broken tree
    cannot hang or flood the detector.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise _Unreadable("dangling symlink") from None
        return None
    except OSError as exc:
        raise _Unreadable(exc.strerror or type(exc).__name__) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Unreadable("not a regular file")
        data = os.read(fd, _MAX_READ)
    except OSError as exc:
        raise _Unreadable(exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unreadable("not valid UTF-8 text") from None


def _parse_hex(text: str, max_value: int) -> int | None:
    match = _HEX_RE.match(text.strip())
    if not match:
        return None
    value = int(match.group(1), 16)
    return value if value <= max_value else None


def _parse_properties(text: str) -> dict[str, str]:
    """KFD ``properties``: one "key value" pair per line."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            props[parts[0]] = parts[1]
    return props


def _prop_int(props: Mapping[str, str], key: str) -> int | None:
    value = props.get(key)
    return int(value) if value is not None and _DEC_RE.match(value) else None


def _valid_label_value(value: str) -> bool:
    return len(value) <= _LABEL_VALUE_MAX and bool(_LABEL_VALUE_RE.match(value))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclasses.dataclass
class _Pci:
    address: str
    vendor: GpuVendor
    vendor_id: int
    device_id: int | None
    pci_class: int
    driver: str | None = None
    driver_known: bool = True  # False when the driver symlink exists but could not be read/resolved
    gfx_target: str | None = None
    vram_bytes: int | None = None
    render_node: str | None = None

    def freeze(self) -> GpuDevice:
        return GpuDevice(
            pci_address=self.address,
            vendor=self.vendor,
            vendor_id=f"0x{self.vendor_id:04x}",
            device_id=f"0x{self.device_id:04x}" if self.device_id is not None else "unknown",
            pci_class=f"0x{self.pci_class:06x}",
            driver=self.driver,
            gfx_target=self.gfx_target,
            vram_bytes=self.vram_bytes,
            render_node=self.render_node,
        )


@dataclasses.dataclass(frozen=True)
class _KfdNode:
    index: int
    gfx_target: str
    domain: int | None
    location_id: int | None
    render_minor: int | None


class _Scan:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.problems: list[str] = []
        self.pci_incomplete = False  # some PCI device could not be classified: it might be a GPU
        self.topology_incomplete = False

    # -- helpers

    def path(self, rel: str) -> Path:
        return self.root / rel

    def show(self, path: Path) -> str:
        try:
            return "/" + path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def problem(self, text: str) -> None:
        log.debug("GPU detection: %s", text)
        self.problems.append(text)

    def bad_number(self, path: Path, text: str, kind: str) -> None:
        self.problem(f"could not read {self.show(path)} (not a {kind}: {text.strip()[:20]!r})")

    def read(self, path: Path, *, missing_is_problem: bool) -> str | None:
        try:
            text = _read_small(path)
        except _Unreadable as exc:
            self.problem(f"could not read {self.show(path)} ({exc})")
            return None
        if text is None and missing_is_problem:
            self.problem(f"{self.show(path)} is missing")
        return text

    def listdir(self, path: Path, *, missing_is_problem: bool) -> list[str] | None:
        """Sorted entries; None (and a problem unless simply missing and allowed to be) on failure."""
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            if missing_is_problem or os.path.lexists(path):
                self.problem(f"could not list {self.show(path)} (missing or dangling)")
            return None
        except OSError as exc:
            self.problem(f"could not list {self.show(path)} ({exc.strerror or type(exc).__name__})")
            return None

    def exists(self, rel: str) -> bool:
        try:
            return os.path.exists(self.path(rel))
        except (OSError, ValueError):
            return False

    # -- scan

    def run(self) -> GpuReport:
        pci_count, gpus = self.scan_pci()
        amd_bound = self.amdgpu_bound_addresses()
        for gpu in gpus:
            if gpu.vendor == "amd" and gpu.address in amd_bound and gpu.driver != "amdgpu":
                gpu.driver, gpu.driver_known = "amdgpu", True
        nodes = self.scan_kfd_topology() if any(g.vendor == "amd" for g in gpus) else []
        self.match_kfd_nodes(gpus, nodes)
        if not os.path.isdir(self.path("dev")):
            self.problem("/dev is missing")
        render_gid = self.render_gid()
        state, reason = self.decide(pci_count, gpus)
        devices = tuple(g.freeze() for g in sorted(gpus, key=lambda g: g.address))
        return GpuReport(state=state, devices=devices, render_gid=render_gid, reason=reason)

    def scan_pci(self) -> tuple[int, list[_Pci]]:
        if not os.path.isdir(self.path("sys/bus")):
            self.problem("could not read /sys/bus (is sysfs mounted under the root?)")
            self.pci_incomplete = True
            return 0, []
        if not os.path.lexists(self.path("sys/bus/pci")):
            return 0, []  # no PCI bus at all (some ARM boards): no PCI GPU either
        devices_dir = self.path("sys/bus/pci/devices")
        names = self.listdir(devices_dir, missing_is_problem=True)
        if names is None:
            self.pci_incomplete = True
            return 0, []
        gpus: list[_Pci] = []
        count = 0
        for name in names:
            if not _PCI_ADDRESS_RE.match(name):
                continue
            count += 1
            gpu = self.read_pci_device(name, devices_dir / name)
            if gpu is not None:
                gpus.append(gpu)
        return count, gpus

    def read_pci_device(self, address: str, dev: Path) -> _Pci | None:
        if not os.path.isdir(dev):
            self.problem(f"could not read {self.show(dev)} (not a directory or dangling)")
            self.pci_incomplete = True
            return None
        vendor_text = self.read(dev / "vendor", missing_is_problem=True)
        class_text = self.read(dev / "class", missing_is_problem=True)
        if vendor_text is None or class_text is None:
            self.pci_incomplete = True
            return None
        vendor_id = _parse_hex(vendor_text, 0xFFFF)
        pci_class = _parse_hex(class_text, 0xFFFFFF)
        if vendor_id is None:
            self.bad_number(dev / "vendor", vendor_text, "hex number")
        if pci_class is None:
            self.bad_number(dev / "class", class_text, "hex number")
        if vendor_id is None or pci_class is None:
            self.pci_incomplete = True
            return None
        vendor: GpuVendor
        if vendor_id == AMD_VENDOR_ID and (pci_class >> 16) in (0x03, 0x12):  # display / processing accelerator
            vendor = "amd"
        elif vendor_id == NVIDIA_VENDOR_ID and (pci_class >> 8) in (0x0300, 0x0302):  # VGA / 3D controller
            vendor = "nvidia"
        else:
            return None  # not a GPU (bridges, HDMI audio 0x0403xx, NICs, …)
        device_id: int | None = None
        device_text = self.read(dev / "device", missing_is_problem=True)
        if device_text is not None:
            device_id = _parse_hex(device_text, 0xFFFF)
            if device_id is None:
                self.bad_number(dev / "device", device_text, "hex number")
        gpu = _Pci(address=address, vendor=vendor, vendor_id=vendor_id, device_id=device_id, pci_class=pci_class)
        self.read_driver(gpu, dev / "driver")
        gpu.vram_bytes = self.read_vram(dev / "mem_info_vram_total")
        gpu.render_node = self.read_render_node(dev / "drm")
        return gpu

    def read_driver(self, gpu: _Pci, link: Path) -> None:
        if not os.path.lexists(link):
            return  # no driver bound
        if not os.path.islink(link):
            self.problem(f"could not read {self.show(link)} (not a symlink)")
            gpu.driver_known = False
            return
        try:
            target = os.readlink(link)
        except OSError as exc:
            self.problem(f"could not read {self.show(link)} ({exc.strerror or 'not a symlink'})")
            gpu.driver_known = False
            return
        name = os.path.basename(target.rstrip("/"))
        if not os.path.isdir(link) or not name:
            self.problem(f"could not read {self.show(link)} (dangling symlink to {target[:80]!r})")
            gpu.driver_known = False
            return
        gpu.driver = name

    def read_vram(self, path: Path) -> int | None:
        text = self.read(path, missing_is_problem=False)
        if text is None:
            return None
        value = text.strip()
        if not _DEC_RE.match(value):
            self.bad_number(path, text, "number")
            return None
        return int(value)

    def read_render_node(self, drm: Path) -> str | None:
        if not os.path.isdir(drm):
            return None
        names = self.listdir(drm, missing_is_problem=False) or []
        found = [(int(m.group(1)), n) for n in names if (m := _RENDER_RE.match(n))]
        return min(found)[1] if found else None

    def amdgpu_bound_addresses(self) -> set[str]:
        bound = self.path("sys/module/amdgpu/drivers/pci:amdgpu")
        if not os.path.lexists(bound):
            return set()
        names = self.listdir(bound, missing_is_problem=True)
        return {n for n in names or () if _PCI_ADDRESS_RE.match(n)}

    def scan_kfd_topology(self) -> list[_KfdNode]:
        nodes_dir = self.path("sys/class/kfd/kfd/topology/nodes")
        if not os.path.lexists(nodes_dir):
            return []
        names = self.listdir(nodes_dir, missing_is_problem=True)
        if names is None:
            self.topology_incomplete = True
            return []
        nodes: list[_KfdNode] = []
        for index in sorted(int(n) for n in names if n.isascii() and n.isdigit() and len(n) < 6):
            node = self.read_kfd_node(index, nodes_dir / str(index) / "properties")
            if node is not None:
                nodes.append(node)
        return nodes

    def read_kfd_node(self, index: int, path: Path) -> _KfdNode | None:
        text = self.read(path, missing_is_problem=True)
        if text is None:
            self.topology_incomplete = True
            return None
        props = _parse_properties(text)
        version = _prop_int(props, "gfx_target_version")
        if version is None:
            self.problem(f"could not read {self.show(path)} (no valid gfx_target_version)")
            self.topology_incomplete = True
            return None
        if version == 0:
            return None  # a CPU node
        target = gfx_target_from_version(version)
        if target is None:
            self.problem(f"could not read {self.show(path)} (unrecognised gfx_target_version {version})")
            self.topology_incomplete = True
            return None
        minor = _prop_int(props, "drm_render_minor")
        return _KfdNode(
            index=index,
            gfx_target=target,
            domain=_prop_int(props, "domain"),
            location_id=_prop_int(props, "location_id"),
            render_minor=minor if minor else None,
        )

    def match_kfd_nodes(self, gpus: list[_Pci], nodes: list[_KfdNode]) -> None:
        """Give each AMD device the gfx target of its KFD node: by PCI location, else in order."""
        amd = sorted((g for g in gpus if g.vendor == "amd"), key=lambda g: g.address)
        by_address = {g.address: g for g in amd}
        unmatched: list[_KfdNode] = []
        for node in nodes:
            gpu = self.locate(node, by_address, amd)
            if gpu is None:
                unmatched.append(node)
            elif gpu.gfx_target is None:
                self.attach(gpu, node)
        waiting = [g for g in amd if g.gfx_target is None and g.driver == "amdgpu"]
        for gpu, node in zip(waiting, unmatched, strict=False):
            self.attach(gpu, node)

    @staticmethod
    def locate(node: _KfdNode, by_address: Mapping[str, _Pci], amd: list[_Pci]) -> _Pci | None:
        if node.location_id is None or not 0 <= node.location_id <= 0xFFFF:
            return None
        domain = node.domain or 0
        loc = node.location_id
        bus, slot, function = loc >> 8, (loc >> 3) & 0x1F, loc & 0x7
        exact = by_address.get(f"{domain:04x}:{bus:02x}:{slot:02x}.{function}")
        if exact is not None:
            return exact
        # Partitioned accelerators (e.g. MI300 compute partitions) put the partition id in the low bits.
        prefix = f"{domain:04x}:{bus:02x}:{slot:02x}."
        return next((g for g in amd if g.address.startswith(prefix)), None)

    @staticmethod
    def attach(gpu: _Pci, node: _KfdNode) -> None:
        gpu.gfx_target = node.gfx_target
        if gpu.render_node is None and node.render_minor is not None:
            gpu.render_node = f"renderD{node.render_minor}"

    def render_gid(self) -> int | None:
        candidates = [self.path("dev/kfd")]
        dri = self.path("dev/dri")
        if os.path.isdir(dri):
            names = self.listdir(dri, missing_is_problem=False) or []
            renders = sorted((int(m.group(1)), n) for n in names if (m := _RENDER_RE.match(n)))
            candidates += [dri / n for _, n in renders]
        for path in candidates:
            try:
                return os.stat(path).st_gid
            except FileNotFoundError:
                continue
            except OSError as exc:
                self.problem(f"could not stat {self.show(path)} ({exc.strerror or type(exc).__name__})")
        return None

    # -- decision

    def decide(self, pci_count: int, gpus: list[_Pci]) -> tuple[GpuState, str]:
        amd = sorted((g for g in gpus if g.vendor == "amd"), key=lambda g: g.address)
        nvidia = sorted((g for g in gpus if g.vendor == "nvidia"), key=lambda g: g.address)
        kfd = self.exists("dev/kfd")
        nvidia_proc = self.exists("proc/driver/nvidia/version")
        usable_amd = [g for g in amd if g.driver == "amdgpu" and g.gfx_target and kfd]
        usable_nvidia = [
            g for g in nvidia if g.driver == "nvidia" or (g.driver is None and g.driver_known and nvidia_proc)
        ]

        confirmed: GpuState
        if usable_amd:
            confirmed, reason = "amd", self.amd_ready_reason(amd, usable_amd)
        elif usable_nvidia:
            confirmed, reason = "nvidia", f"NVIDIA GPU present ({_addresses(usable_nvidia)}) with the nvidia driver"
        elif amd:
            confirmed, reason = "amd-no-driver", self.amd_not_ready_reason(amd, kfd)
        elif nvidia:
            confirmed, reason = "nvidia-no-driver", _no_driver_reason("NVIDIA", "nvidia", nvidia, loaded=nvidia_proc)
        elif pci_count:
            confirmed, reason = "none", f"no AMD or NVIDIA GPU among {_plural(pci_count, 'PCI device')}"
        else:
            confirmed, reason = "none", "no PCI devices, so no AMD or NVIDIA GPU"
        if nvidia and confirmed == "amd":
            reason += f"; NVIDIA GPU also present ({_addresses(nvidia)})"

        # Could what we failed to read change the answer? Then the answer is "unknown".
        potential = _STATE_RANK[confirmed]
        if self.pci_incomplete or any(not g.driver_known for g in amd):
            potential = _STATE_RANK["amd"]
        if self.topology_incomplete and kfd and any(g.driver == "amdgpu" and not g.gfx_target for g in amd):
            potential = _STATE_RANK["amd"]
        if not os.path.isdir(self.path("dev")) and any(g.driver == "amdgpu" for g in amd):
            potential = _STATE_RANK["amd"]
        if any(not g.driver_known for g in nvidia):
            potential = max(potential, _STATE_RANK["nvidia"])

        problems = self.problems_text()
        if potential > _STATE_RANK[confirmed]:
            found = ", ".join(f"{'AMD' if g.vendor == 'amd' else 'NVIDIA'} GPU {g.address}" for g in amd + nvidia)
            return "unknown", _cap(f"GPU state unknown ({'found ' + found if found else 'no GPU found'}): {problems}")
        return confirmed, _cap(f"{reason}; {problems}" if problems else reason)

    @staticmethod
    def amd_ready_reason(amd: list[_Pci], usable: list[_Pci]) -> str:
        listed = ", ".join(f"{g.address} ({g.gfx_target})" for g in usable)
        if len(usable) == len(amd):
            noun = "AMD GPU" if len(usable) == 1 else f"{len(usable)} AMD GPUs"
        else:
            noun = f"{len(usable)} of {len(amd)} AMD GPUs"
        return f"{noun} ready for ROCm: {listed}"

    def amd_not_ready_reason(self, amd: list[_Pci], kfd: bool) -> str:
        bound = [g for g in amd if g.driver == "amdgpu"]
        if not bound:
            loaded = os.path.isdir(self.path("sys/module/amdgpu"))
            return _no_driver_reason("AMD", "amdgpu", amd, loaded=loaded)
        head = f"{_gpus('AMD', bound)} present ({_addresses(bound)}) with the amdgpu driver"
        if not kfd:
            return f"{head}, but /dev/kfd is missing"
        return f"{head}, but the KFD topology lists no GPU node for it"

    def problems_text(self) -> str:
        shown = self.problems[:_MAX_PROBLEMS_SHOWN]
        more = len(self.problems) - len(shown)
        text = "; ".join(shown)
        return f"{text}; and {_plural(more, 'more problem')}" if more else text


def _addresses(gpus: list[_Pci]) -> str:
    return ", ".join(g.address for g in gpus)


def _gpus(vendor: str, gpus: list[_Pci]) -> str:
    return f"{vendor} GPU" if len(gpus) == 1 else f"{vendor} GPUs"


def _no_driver_reason(vendor: str, driver: str, gpus: list[_Pci], *, loaded: bool) -> str:
    head = f"{_gpus(vendor, gpus)} present ({_addresses(gpus)})"
    others = [g for g in gpus if g.driver is not None]
    if others:
        uses = ", ".join(f"{g.address} uses {g.driver}" for g in others)
        return f"{head}, {driver} driver not bound ({uses})"
    if loaded:
        return f"{head}, {driver} driver loaded but not bound to it (see the kernel log)"
    return f"{head}, {driver} driver not loaded"


def _cap(text: str) -> str:
    return text if len(text) <= _REASON_MAX else text[: _REASON_MAX - 1] + "…"


def _field(data: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"GPU report field {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _optional_field(data: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    return None if data.get(key) is None else _field(data, key, kind)


def choose_vendor(mode: str, report: GpuReport | None) -> GpuVendor | None:
    """What to install for ``--gpu MODE`` given what the host has. Raises ConfigError for `amd` without one."""
    if mode not in GPU_MODES:
        raise ConfigError(f"unknown --gpu {mode!r}", resolution=f"use one of: {', '.join(GPU_MODES)}")
    if mode == "none":
        return None
    state = report.state if report is not None else "unknown"
    if mode == "amd":
        if state != "amd":
            reason = report.reason if report is not None else "no GPU facts for this host"
            raise ConfigError(
                "--gpu amd: this node has no usable AMD GPU",
                details=reason,
                resolution="install the amdgpu driver (e.g. `sudo apt install amdgpu-dkms` from AMD's ROCm "
                "repository) and reboot, or use --gpu auto / --gpu none",
            )
        return "amd"
    if mode == "nvidia":
        return "nvidia"
    if state == "amd":
        return "amd"
    if state == "nvidia":
        return "nvidia"
    return None
