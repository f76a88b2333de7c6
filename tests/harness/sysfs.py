"""Builders of fake sysfs / procfs / dev trees for GPU detection tests.

Files carry the real names, layout and content formats of a Linux host:

* ``/sys/devices/pci0000:00/<addr>/`` holds ``vendor`` ("0x1002\\n"), ``device``, ``class`` ("0x030000\\n"),
  ``subsystem_vendor``, ``subsystem_device``, ``revision``, amdgpu's ``mem_info_vram_total`` (bytes), a
  ``drm/`` directory with ``cardN`` and ``renderD<minor>`` entries, and a ``driver`` symlink
  (``../../../bus/pci/drivers/amdgpu``);
* ``/sys/bus/pci/devices/<addr>`` is a relative symlink to that directory, as on a real host, and
  ``/sys/bus/pci/drivers/<driver>/<addr>`` links back to it;
* ``/sys/module/amdgpu/drivers/pci:amdgpu`` is a symlink to ``../../../bus/pci/drivers/amdgpu``;
* ``/sys/class/kfd/kfd`` links to ``../../devices/virtual/kfd/kfd``, whose ``topology/nodes/<n>/properties``
  has the "key value" lines the amdkfd driver prints (``gfx_target_version 110000``, ``location_id 768``…);
* ``/dev/kfd`` and ``/dev/dri/renderD128`` are regular files chowned to RENDER_GID (tests run as root; as
  another user the chown is skipped and the files keep the user's group: use ``FakeHost.gid_of``).

Each scenario builder takes a root directory, builds the host there and returns the ``FakeHost``; the
primitives are idempotent enough to combine two scenarios on one root (e.g. an AMD and an NVIDIA card, with
``nvidia_gpu(root, address=...)`` moved to a free slot).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RENDER_GID = 110  # Ubuntu's usual `render` group
VIDEO_GID = 44  # `video`, owns /dev/dri/card*

# Real numbers of the cards used below.
RX7900XTX_VRAM = 25_753_026_560
MI210_VRAM = 68_702_699_520
PHOENIX_VRAM = 536_870_912  # the APU's carve-out

NVIDIA_PROC_VERSION = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
)

_DRIVER_FILES = ("bind", "unbind", "new_id", "remove_id", "uevent")


def location_id(address: str) -> int:
    """KFD's location_id for a PCI address: (bus << 8) | (device << 3) | function."""
    _, bus, rest = address.split(":")
    slot, function = rest.split(".")
    return (int(bus, 16) << 8) | (int(slot, 16) << 3) | int(function)


def kfd_cpu_properties(cores: int = 16) -> dict[str, int]:
    """Properties of a KFD CPU node (gfx_target_version 0, location 0 — which must not match 0000:00:00.0)."""
    zero = [
        "simd_count",
        "mem_banks_count",
        "caches_count",
        "io_links_count",
        "p2p_links_count",
        "cpu_core_id_base",
        "simd_id_base",
        "max_waves_per_simd",
        "lds_size_in_kb",
        "gds_size_in_kb",
        "num_gws",
        "wave_front_size",
        "array_count",
        "simd_arrays_per_engine",
        "cu_per_simd_array",
        "simd_per_cu",
        "max_slots_scratch_cu",
        "gfx_target_version",
        "vendor_id",
        "device_id",
        "location_id",
        "domain",
        "drm_render_minor",
        "hive_id",
        "num_sdma_engines",
        "num_sdma_xgmi_engines",
        "num_sdma_queues_per_engine",
        "num_cp_queues",
        "max_engine_clk_fcompute",
        "local_mem_size",
        "fw_version",
        "capability",
        "debug_prop",
        "sdma_fw_version",
        "unique_id",
        "num_xcc",
    ]
    props = {"cpu_cores_count": cores}
    props.update(dict.fromkeys(zero, 0))
    props["mem_banks_count"] = 1
    props["io_links_count"] = 1
    props["max_engine_clk_ccompute"] = 5_100
    return props


def kfd_gpu_properties(
    *,
    gfx_target_version: int,
    address: str | None,
    vendor_id: int = 0x1002,
    device_id: int,
    simd_count: int,
    drm_render_minor: int,
    domain: int = 0,
) -> dict[str, int]:
    """Properties of a KFD GPU node, in the kernel's order. ``address=None`` omits location_id and domain."""
    props: dict[str, int] = {
        "cpu_cores_count": 0,
        "simd_count": simd_count,
        "mem_banks_count": 1,
        "caches_count": 206,
        "io_links_count": 1,
        "p2p_links_count": 0,
        "cpu_core_id_base": 0,
        "simd_id_base": 2_147_487_744,
        "max_waves_per_simd": 16,
        "lds_size_in_kb": 64,
        "gds_size_in_kb": 0,
        "num_gws": 64,
        "wave_front_size": 32 if gfx_target_version >= 100000 else 64,
        "array_count": 12,
        "simd_arrays_per_engine": 2,
        "cu_per_simd_array": 8,
        "simd_per_cu": 2,
        "max_slots_scratch_cu": 32,
        "gfx_target_version": gfx_target_version,
        "vendor_id": vendor_id,  # decimal in this file: 4098 == 0x1002
        "device_id": device_id,
    }
    if address is not None:
        props["location_id"] = location_id(address)
        props["domain"] = domain
    props.update(
        {
            "drm_render_minor": drm_render_minor,
            "hive_id": 0,
            "num_sdma_engines": 2,
            "num_sdma_xgmi_engines": 0,
            "num_sdma_queues_per_engine": 6,
            "num_cp_queues": 8,
            "max_engine_clk_fcompute": 2_482,
            "local_mem_size": 0,
            "fw_version": 2_140,
            "capability": 671_588_992,
            "debug_prop": 1_495,
            "sdma_fw_version": 21,
            "unique_id": 11_861_392_545_218_125_445,
            "num_xcc": 1,
            "max_engine_clk_ccompute": 3_200,
        }
    )
    return props


@dataclass
class FakeHost:
    """A fake host filesystem rooted at ``root``; pass ``root`` to ``detect``."""

    root: Path

    # -- raw primitives

    def at(self, rel: str) -> Path:
        return self.root / rel.lstrip("/")

    def write(self, rel: str, content: str | bytes, *, gid: int | None = None) -> Path:
        """Write a file (replacing a file, symlink or directory already there)."""
        path = self.at(rel)
        self._clear(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        if gid is not None:
            self.chgrp(path, gid)
        return path

    def mkdir(self, rel: str) -> Path:
        path = self.at(rel)
        if path.is_symlink() or path.is_file():
            path.unlink()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def symlink(self, rel: str, target: str) -> Path:
        """A (relative) symlink at ``rel``; ``target`` need not exist (dangling links are a test case)."""
        path = self.at(rel)
        self._clear(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
        return path

    def remove(self, rel: str) -> None:
        self._clear(self.at(rel))

    @staticmethod
    def chgrp(path: Path, gid: int) -> None:
        with contextlib.suppress(PermissionError):  # not root: keep the user's group
            os.chown(path, -1, gid, follow_symlinks=False)

    def gid_of(self, rel: str) -> int:
        return self.at(rel).stat().st_gid

    @staticmethod
    def _clear(path: Path) -> None:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if child.is_symlink() or child.is_file():
                    child.unlink()
                else:
                    child.rmdir()
            path.rmdir()

    # -- sysfs

    def device_dir(self, address: str) -> str:
        return f"sys/devices/pci0000:00/{address}"

    def pci_device(
        self,
        address: str,
        *,
        vendor: int,
        device: int,
        pci_class: int,
        driver: str | None = None,
        subsystem_vendor: int | None = None,
        subsystem_device: int = 0,
        revision: int = 0,
        vram_bytes: int | None = None,
        drm_card: int | None = None,
        render_minor: int | None = None,
    ) -> str:
        """A PCI function; returns its device directory (relative to root)."""
        dev = self.device_dir(address)
        self.mkdir(dev)
        self.write(f"{dev}/vendor", f"0x{vendor:04x}\n")
        self.write(f"{dev}/device", f"0x{device:04x}\n")
        self.write(f"{dev}/class", f"0x{pci_class:06x}\n")
        self.write(f"{dev}/subsystem_vendor", f"0x{(vendor if subsystem_vendor is None else subsystem_vendor):04x}\n")
        self.write(f"{dev}/subsystem_device", f"0x{subsystem_device:04x}\n")
        self.write(f"{dev}/revision", f"0x{revision:02x}\n")
        self.write(f"{dev}/enable", "1\n")
        self.write(f"{dev}/numa_node", "-1\n")
        self.symlink(f"sys/bus/pci/devices/{address}", f"../../../devices/pci0000:00/{address}")
        if vram_bytes is not None:
            self.write(f"{dev}/mem_info_vram_total", f"{vram_bytes}\n")
            self.write(f"{dev}/mem_info_vram_used", f"{vram_bytes // 100}\n")
        if drm_card is not None:
            self.mkdir(f"{dev}/drm/card{drm_card}")
            self.write(f"{dev}/drm/card{drm_card}/dev", f"226:{drm_card}\n")
        if render_minor is not None:
            self.mkdir(f"{dev}/drm/renderD{render_minor}")
            self.write(f"{dev}/drm/renderD{render_minor}/dev", f"226:{render_minor}\n")
        if driver is not None:
            self.bind(address, driver)
        return dev

    def driver(self, name: str, *, module: bool = True) -> None:
        """/sys/bus/pci/drivers/<name> (and /sys/module/<name> linking to it when ``module``)."""
        drv = f"sys/bus/pci/drivers/{name}"
        self.mkdir(drv)
        for file in _DRIVER_FILES:
            if not self.at(f"{drv}/{file}").exists():
                self.write(f"{drv}/{file}", "")
        if module:
            self.load_module(name)
            self.symlink(f"{drv}/module", f"../../../../module/{name}")
            self.symlink(f"sys/module/{name}/drivers/pci:{name}", f"../../../bus/pci/drivers/{name}")

    def load_module(self, name: str) -> None:
        self.write(f"sys/module/{name}/initstate", "live\n")
        self.write(f"sys/module/{name}/refcnt", "0\n")

    def bind(self, address: str, driver: str) -> None:
        """Bind a PCI function to a driver: both symlinks, as the kernel makes them."""
        self.driver(driver, module=driver not in ("pcieport",))
        self.symlink(f"{self.device_dir(address)}/driver", f"../../../bus/pci/drivers/{driver}")
        self.symlink(f"sys/bus/pci/drivers/{driver}/{address}", f"../../../../devices/pci0000:00/{address}")

    def unbind(self, address: str, driver: str) -> None:
        self.remove(f"{self.device_dir(address)}/driver")
        self.remove(f"sys/bus/pci/drivers/{driver}/{address}")

    # -- KFD topology

    def kfd_topology(self) -> str:
        top = "sys/devices/virtual/kfd/kfd/topology"
        if not self.at("sys/class/kfd/kfd").is_symlink():
            self.symlink("sys/class/kfd/kfd", "../../devices/virtual/kfd/kfd")
            self.write(f"{top}/generation_id", "1\n")
            self.write(f"{top}/system_properties", "platform_oem 0\nplatform_id 0\nplatform_rev 0\n")
        self.mkdir(f"{top}/nodes")
        return top

    def kfd_node(self, index: int, properties: Mapping[str, int] | str | bytes, *, gpu_id: int = 0) -> str:
        """KFD node ``index``; ``properties`` as a mapping (written "key value" per line) or raw content."""
        node = f"{self.kfd_topology()}/nodes/{index}"
        self.mkdir(node)
        for sub in ("mem_banks", "caches", "io_links", "p2p_links"):
            self.mkdir(f"{node}/{sub}")
        content = properties if isinstance(properties, str | bytes) else _properties_text(properties)
        self.write(f"{node}/properties", content)
        self.write(f"{node}/gpu_id", f"{gpu_id}\n")
        return f"{node}/properties"

    # -- /dev and /proc

    def base(self) -> None:
        self.mkdir("dev")
        self.mkdir("proc")
        self.mkdir("sys/bus/pci/devices")
        self.mkdir("sys/module")

    def dev_kfd(self, gid: int = RENDER_GID) -> None:
        self.write("dev/kfd", "", gid=gid)

    def dev_dri(self, *, card: int, render_minor: int | None, render_gid: int = RENDER_GID) -> None:
        self.write(f"dev/dri/card{card}", "", gid=VIDEO_GID)
        if render_minor is not None:
            self.write(f"dev/dri/renderD{render_minor}", "", gid=render_gid)

    def nvidia_proc(self) -> None:
        self.write("proc/driver/nvidia/version", NVIDIA_PROC_VERSION)


def _properties_text(properties: Mapping[str, int]) -> str:
    return "".join(f"{key} {value}\n" for key, value in properties.items())


# --- scenarios --------------------------------------------------------------------------------------------------


def discrete_amd_gpu(
    root: Path,
    *,
    address: str = "0000:03:00.0",
    driver: str | None = "amdgpu",
    kfd: bool = True,
    topology: bool = True,
) -> FakeHost:
    """Radeon RX 7900 XTX (0x744c, gfx1100, 24 GiB) behind AMD's PCIe switch, with its HDMI audio on .1.

    ``driver``: "amdgpu", None (unbound) or another driver ("vfio-pci"); ``kfd``: create /dev/kfd;
    ``topology``: add the GPU's KFD node (the CPU node is always there when amdgpu is bound).
    """
    host = FakeHost(root)
    host.base()
    host.pci_device("0000:00:00.0", vendor=0x1022, device=0x14D8, pci_class=0x060000)
    host.pci_device("0000:00:01.1", vendor=0x1022, device=0x14DB, pci_class=0x060400, driver="pcieport")
    host.pci_device("0000:01:00.0", vendor=0x1002, device=0x1478, pci_class=0x060400, driver="pcieport")
    host.pci_device("0000:02:00.0", vendor=0x1002, device=0x1479, pci_class=0x060400, driver="pcieport")
    bus = address.rsplit(".", 1)[0]
    host.pci_device(
        address,
        vendor=0x1002,
        device=0x744C,
        pci_class=0x030000,
        driver=driver,
        subsystem_vendor=0x1DA2,
        subsystem_device=0x471E,
        revision=0xC8,
        vram_bytes=RX7900XTX_VRAM if driver == "amdgpu" else None,
        drm_card=1 if driver == "amdgpu" else None,
        render_minor=128 if driver == "amdgpu" else None,
    )
    host.pci_device(f"{bus}.1", vendor=0x1002, device=0xAB30, pci_class=0x040300, driver="snd_hda_intel")
    if driver == "amdgpu":
        host.dev_dri(card=1, render_minor=128)
        host.kfd_node(0, kfd_cpu_properties())
        if topology:
            props = kfd_gpu_properties(
                gfx_target_version=110000, address=address, device_id=0x744C, simd_count=192, drm_render_minor=128
            )
            host.kfd_node(1, props, gpu_id=45_616)
    if kfd:
        host.dev_kfd()
    return host


def amd_gpu_without_driver(root: Path) -> FakeHost:
    """The same card with amdgpu not loaded: display 0x030000 + HDMI audio 0x040300, no driver on the GPU, no
    /dev/kfd, no KFD topology, no render node."""
    return discrete_amd_gpu(root, driver=None, kfd=False)


def amd_apu(root: Path) -> FakeHost:
    """Ryzen 7040 "Phoenix" APU: Radeon 780M 0x15bf (gfx1103) with class 0x038000 at 0000:c4:00.0, its HDMI
    audio and PSP functions; KFD has the CPU node (gfx_target_version 0) and the GPU node."""
    host = FakeHost(root)
    host.base()
    host.pci_device("0000:00:00.0", vendor=0x1022, device=0x14E8, pci_class=0x060000)
    host.pci_device("0000:00:08.1", vendor=0x1022, device=0x14EB, pci_class=0x060400, driver="pcieport")
    host.pci_device(
        "0000:c4:00.0",
        vendor=0x1002,
        device=0x15BF,
        pci_class=0x038000,
        driver="amdgpu",
        revision=0xC1,
        vram_bytes=PHOENIX_VRAM,
        drm_card=0,
        render_minor=128,
    )
    host.pci_device("0000:c4:00.1", vendor=0x1002, device=0x1640, pci_class=0x040300, driver="snd_hda_intel")
    host.pci_device("0000:c4:00.2", vendor=0x1022, device=0x15C7, pci_class=0x108000, driver="ccp")
    host.dev_dri(card=0, render_minor=128)
    host.kfd_node(0, kfd_cpu_properties(cores=16))
    props = kfd_gpu_properties(
        gfx_target_version=110003, address="0000:c4:00.0", device_id=0x15BF, simd_count=24, drm_render_minor=128
    )
    host.kfd_node(1, props, gpu_id=1_234)
    host.dev_kfd()
    return host


def two_amd_gpus(root: Path, *, mi_class: int = 0x038000, locations: bool = True) -> FakeHost:
    """An RX 7900 XTX (gfx1100, 0000:03:00.0, renderD128) and an Instinct MI210 (0x740f, gfx90a, 0000:83:00.0,
    renderD129, class ``mi_class``: 0x038000 display-other or 0x120000 processing accelerator).

    With ``locations`` the KFD nodes carry location_id/domain and are listed MI210 first (so matching by
    location, not order, is exercised); without, they are listed in PCI order with no location.
    """
    host = discrete_amd_gpu(root, topology=False)
    host.pci_device(
        "0000:83:00.0",
        vendor=0x1002,
        device=0x740F,
        pci_class=mi_class,
        driver="amdgpu",
        subsystem_vendor=0x1002,
        subsystem_device=0x0C34,
        revision=0x02,
        vram_bytes=MI210_VRAM,
        drm_card=2,
        render_minor=129,
    )
    host.dev_dri(card=2, render_minor=129)
    navi = kfd_gpu_properties(
        gfx_target_version=110000,
        address="0000:03:00.0" if locations else None,
        device_id=0x744C,
        simd_count=192,
        drm_render_minor=128,
    )
    mi210 = kfd_gpu_properties(
        gfx_target_version=90010,
        address="0000:83:00.0" if locations else None,
        device_id=0x740F,
        simd_count=416,
        drm_render_minor=129,
    )
    first, second = (mi210, navi) if locations else (navi, mi210)
    host.kfd_node(1, first, gpu_id=111)
    host.kfd_node(2, second, gpu_id=222)
    return host


def nvidia_gpu(root: Path, *, address: str = "0000:01:00.0", driver: str | None = "nvidia") -> FakeHost:
    """GeForce RTX 4090 (0x10de:0x2684) with its HDMI audio. ``driver="nvidia"`` loads the proprietary driver
    (/proc/driver/nvidia/version, /dev/dri/renderD128 from nvidia-drm); None leaves it unbound; "nouveau" binds
    the open driver."""
    host = FakeHost(root)
    host.base()
    if not host.at("sys/bus/pci/devices/0000:00:00.0").exists():
        host.pci_device("0000:00:00.0", vendor=0x8086, device=0xA700, pci_class=0x060000)
    bus = address.rsplit(".", 1)[0]
    loaded = driver == "nvidia"
    host.pci_device(
        address,
        vendor=0x10DE,
        device=0x2684,
        pci_class=0x030000,
        driver=driver,
        subsystem_vendor=0x1043,
        subsystem_device=0x889D,
        revision=0xA1,
        drm_card=0 if loaded else None,
        render_minor=128 if loaded else None,
    )
    host.pci_device(f"{bus}.1", vendor=0x10DE, device=0x22BA, pci_class=0x040300, driver="snd_hda_intel")
    if loaded:
        host.nvidia_proc()
        host.write("dev/nvidia0", "")
        host.write("dev/nvidiactl", "")
        host.dev_dri(card=0, render_minor=128)
    return host


def nvidia_gpu_without_driver(root: Path) -> FakeHost:
    return nvidia_gpu(root, driver=None)


def no_gpu(root: Path) -> FakeHost:
    """A QEMU/KVM guest: i440FX, PIIX3, virtio NIC and disk, and the Bochs VGA (a display class, but neither
    AMD nor NVIDIA)."""
    host = FakeHost(root)
    host.base()
    host.pci_device("0000:00:00.0", vendor=0x8086, device=0x1237, pci_class=0x060000, subsystem_vendor=0x1AF4)
    host.pci_device("0000:00:01.0", vendor=0x8086, device=0x7000, pci_class=0x060100, subsystem_vendor=0x1AF4)
    host.pci_device("0000:00:02.0", vendor=0x1234, device=0x1111, pci_class=0x030000, driver="bochs-drm")
    host.pci_device("0000:00:03.0", vendor=0x1AF4, device=0x1000, pci_class=0x020000, driver="virtio-pci")
    host.pci_device("0000:00:04.0", vendor=0x1AF4, device=0x1001, pci_class=0x010000, driver="virtio-pci")
    host.dev_dri(card=0, render_minor=None)
    return host


def malformed_tree(root: Path) -> FakeHost:
    """Everything that can go wrong at once (root can read anything, so no chmod tricks):

    * 0000:00:02.0 ``vendor`` holds "garbage";
    * 0000:00:03.0 ``class`` is not valid UTF-8;
    * 0000:00:04.0 ``class`` is a directory;
    * 0000:03:00.0, an AMD display function, has ``device`` "0xzzzz", ``mem_info_vram_total`` "lots", and a
      dangling ``driver`` symlink (no /sys/bus/pci/drivers/amdgpu);
    * /dev/kfd exists, KFD node 0's ``properties`` is a directory and node 1's has garbage numbers.
    """
    host = FakeHost(root)
    host.base()
    host.pci_device("0000:00:00.0", vendor=0x8086, device=0x1237, pci_class=0x060000)
    host.pci_device("0000:00:02.0", vendor=0x8086, device=0x100E, pci_class=0x020000)
    host.write(f"{host.device_dir('0000:00:02.0')}/vendor", "garbage\n")
    host.pci_device("0000:00:03.0", vendor=0x8086, device=0x2922, pci_class=0x010601)
    host.write(f"{host.device_dir('0000:00:03.0')}/class", b"\xff\xfe0x0106\x00\n")
    host.pci_device("0000:00:04.0", vendor=0x1AF4, device=0x1001, pci_class=0x010000)
    host.mkdir(f"{host.device_dir('0000:00:04.0')}/class")
    dev = host.pci_device("0000:03:00.0", vendor=0x1002, device=0x744C, pci_class=0x030000)
    host.write(f"{dev}/device", "0xzzzz\n")
    host.write(f"{dev}/mem_info_vram_total", "lots\n")
    host.symlink(f"{dev}/driver", "../../../bus/pci/drivers/amdgpu")
    host.dev_kfd()
    host.kfd_node(0, kfd_cpu_properties())
    host.remove(f"{host.kfd_topology()}/nodes/0/properties")
    host.mkdir(f"{host.kfd_topology()}/nodes/0/properties")
    host.kfd_node(1, "cpu_cores_count 0\nsimd_count lots\ngfx_target_version 11OOOO\nlocation_id -\n")
    return host


SCENARIOS: Sequence[str] = (
    "discrete_amd_gpu",
    "amd_gpu_without_driver",
    "amd_apu",
    "two_amd_gpus",
    "nvidia_gpu",
    "nvidia_gpu_without_driver",
    "no_gpu",
    "malformed_tree",
)
