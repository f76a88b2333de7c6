"""GPU host detection against fake sysfs/dev/proc trees (tests/harness/sysfs.py); never the real /sys."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.harness import sysfs
from tests.harness.sysfs import (
    MI210_VRAM,
    PHOENIX_VRAM,
    RENDER_GID,
    RX7900XTX_VRAM,
    FakeHost,
    kfd_cpu_properties,
    kfd_gpu_properties,
)

from hybrid_knative.system import gpu
from hybrid_knative.system.gpu import (
    GPU_STATES,
    MANAGED_ANNOTATIONS,
    MANAGED_LABELS,
    GpuDevice,
    GpuReport,
    detect,
    gfx_target_from_version,
)

# Tests run as root in CI, so the harness can chown /dev/kfd to the render group; as another user the files
# keep the user's group.
GID = RENDER_GID if os.geteuid() == 0 else os.getegid()
LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_KEY_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

NAVI31 = GpuDevice(
    pci_address="0000:03:00.0",
    vendor="amd",
    vendor_id="0x1002",
    device_id="0x744c",
    pci_class="0x030000",
    driver="amdgpu",
    gfx_target="gfx1100",
    vram_bytes=RX7900XTX_VRAM,
    render_node="renderD128",
)
NAVI31_NO_DRIVER = GpuDevice(
    pci_address="0000:03:00.0",
    vendor="amd",
    vendor_id="0x1002",
    device_id="0x744c",
    pci_class="0x030000",
    driver=None,
    gfx_target=None,
    vram_bytes=None,
    render_node=None,
)
MI210 = GpuDevice(
    pci_address="0000:83:00.0",
    vendor="amd",
    vendor_id="0x1002",
    device_id="0x740f",
    pci_class="0x038000",
    driver="amdgpu",
    gfx_target="gfx90a",
    vram_bytes=MI210_VRAM,
    render_node="renderD129",
)
PHOENIX = GpuDevice(
    pci_address="0000:c4:00.0",
    vendor="amd",
    vendor_id="0x1002",
    device_id="0x15bf",
    pci_class="0x038000",
    driver="amdgpu",
    gfx_target="gfx1103",
    vram_bytes=PHOENIX_VRAM,
    render_node="renderD128",
)
RTX4090 = GpuDevice(
    pci_address="0000:01:00.0",
    vendor="nvidia",
    vendor_id="0x10de",
    device_id="0x2684",
    pci_class="0x030000",
    driver="nvidia",
    gfx_target=None,
    vram_bytes=None,
    render_node="renderD128",
)
RTX4090_NO_DRIVER = GpuDevice(
    pci_address="0000:01:00.0",
    vendor="nvidia",
    vendor_id="0x10de",
    device_id="0x2684",
    pci_class="0x030000",
    driver=None,
    gfx_target=None,
    vram_bytes=None,
    render_node=None,
)
PCI = "/sys/bus/pci/devices"


def _with(device: GpuDevice, **changes: object) -> GpuDevice:
    return GpuDevice(**{**device.to_dict(), **changes})


def assert_valid_metadata(report: GpuReport) -> None:
    labels = report.labels()
    for key, value in labels.items():
        assert key in MANAGED_LABELS
        prefix, name = key.split("/")
        assert DNS_SUBDOMAIN.match(prefix) and len(prefix) <= 253, key
        assert LABEL_KEY_NAME.match(name) and len(name) <= 63, key
        assert LABEL_VALUE.match(value) and len(value) <= 63, (key, value)
    assert set(report.annotations()) <= set(MANAGED_ANNOTATIONS)


# --- gfx targets ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "target"),
    [
        (110000, "gfx1100"),
        (110001, "gfx1101"),
        (110003, "gfx1103"),
        (110501, "gfx1151"),
        (120001, "gfx1201"),
        (100300, "gfx1030"),
        (100302, "gfx1032"),
        (90010, "gfx90a"),
        (90008, "gfx908"),
        (90006, "gfx906"),
        (90012, "gfx90c"),
        (90402, "gfx942"),
        (90400, "gfx940"),
        (80003, "gfx803"),
        (0, None),
        (-110000, None),
        (9999, None),  # major 0
        (1_000_000, None),  # major 100
        (91600, None),  # minor 16 has no one-digit name
        (90016, None),  # stepping 16 neither
        (True, None),
    ],
)
def test_gfx_target_from_version(version: int, target: str | None) -> None:
    assert gfx_target_from_version(version) == target


@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_gfx_target_is_a_valid_label_value(version: int) -> None:
    target = gfx_target_from_version(version)
    if target is not None:
        assert re.fullmatch(r"gfx[1-9][0-9]?[0-9a-f][0-9a-f]", target)
        assert LABEL_VALUE.match(target) and len(target) <= 63


# --- the scenarios -------------------------------------------------------------------------------------------------


def test_discrete_amd_gpu(tmp_path: Path) -> None:
    sysfs.discrete_amd_gpu(tmp_path)
    report = detect(tmp_path)
    reason = "AMD GPU ready for ROCm: 0000:03:00.0 (gfx1100)"
    assert report == GpuReport(state="amd", devices=(NAVI31,), render_gid=GID, reason=reason)
    assert report.usable_amd_count == 1
    assert report.gfx_targets == ("gfx1100",)
    assert report.labels() == {
        "hybrid-knative.io/gpu": "amd",
        "amd.com/gpu.present": "true",
        "amd.com/gpu.gfx-target": "gfx1100",
    }
    assert report.annotations() == {
        "hybrid-knative.io/render-gid": str(GID),
        "hybrid-knative.io/gpu-reason": reason,
    }


def test_amd_gpu_without_driver(tmp_path: Path) -> None:
    sysfs.amd_gpu_without_driver(tmp_path)
    report = detect(tmp_path)
    reason = "AMD GPU present (0000:03:00.0), amdgpu driver not loaded"
    # the HDMI audio function (0x040300) on .1 and the AMD PCIe switch (0x060400) are not GPUs
    assert report == GpuReport(state="amd-no-driver", devices=(NAVI31_NO_DRIVER,), render_gid=None, reason=reason)
    assert report.usable_amd_count == 0
    assert report.gfx_targets == ()
    assert report.labels() == {"hybrid-knative.io/gpu": "amd-no-driver"}
    assert report.annotations() == {"hybrid-knative.io/gpu-reason": reason}


def test_amd_apu(tmp_path: Path) -> None:
    sysfs.amd_apu(tmp_path)
    report = detect(tmp_path)
    reason = "AMD GPU ready for ROCm: 0000:c4:00.0 (gfx1103)"
    assert report == GpuReport(state="amd", devices=(PHOENIX,), render_gid=GID, reason=reason)
    assert report.usable_amd_count == 1
    assert report.labels() == {
        "hybrid-knative.io/gpu": "amd",
        "amd.com/gpu.present": "true",
        "amd.com/gpu.gfx-target": "gfx1103",
    }
    assert report.annotations() == {"hybrid-knative.io/render-gid": str(GID), "hybrid-knative.io/gpu-reason": reason}


def test_two_amd_gpus_matched_by_location(tmp_path: Path) -> None:
    # KFD lists the MI210 first: only matching by location_id gives each card its own target
    sysfs.two_amd_gpus(tmp_path)
    report = detect(tmp_path)
    reason = "2 AMD GPUs ready for ROCm: 0000:03:00.0 (gfx1100), 0000:83:00.0 (gfx90a)"
    assert report == GpuReport(state="amd", devices=(NAVI31, MI210), render_gid=GID, reason=reason)
    assert report.usable_amd_count == 2
    assert report.gfx_targets == ("gfx1100", "gfx90a")
    assert report.labels() == {
        "hybrid-knative.io/gpu": "amd",
        "amd.com/gpu.present": "true",
        "amd.com/gpu.gfx-target": "gfx1100",
        "amd.com/gpu.gfx-targets": "gfx1100_gfx90a",
    }
    assert report.annotations() == {"hybrid-knative.io/render-gid": str(GID), "hybrid-knative.io/gpu-reason": reason}


def test_two_amd_gpus_without_locations_match_in_order(tmp_path: Path) -> None:
    sysfs.two_amd_gpus(tmp_path, locations=False)
    report = detect(tmp_path)
    assert report.devices == (NAVI31, MI210)
    assert report.state == "amd"


def test_accelerator_class_0x12(tmp_path: Path) -> None:
    sysfs.two_amd_gpus(tmp_path, mi_class=0x120000)
    report = detect(tmp_path)
    assert report.devices == (NAVI31, _with(MI210, pci_class="0x120000"))
    assert report.usable_amd_count == 2


def test_partitioned_accelerator(tmp_path: Path) -> None:
    """MI300X in a compute-partition mode: several KFD nodes whose location_id carries the partition id."""
    host = FakeHost(tmp_path)
    host.base()
    host.pci_device("0000:05:00.0", vendor=0x1002, device=0x74A1, pci_class=0x120000, driver="amdgpu", render_minor=128)
    host.kfd_node(0, kfd_cpu_properties())
    for part in range(1, 4):
        props = kfd_gpu_properties(
            gfx_target_version=90402, address="0000:05:00.0", device_id=0x74A1, simd_count=152, drm_render_minor=128
        )
        props["location_id"] |= part - 1
        host.kfd_node(part, props)
    host.dev_kfd()
    report = detect(tmp_path)
    assert report.state == "amd"
    assert [(d.pci_address, d.gfx_target, d.render_node) for d in report.devices] == [
        ("0000:05:00.0", "gfx942", "renderD128")
    ]
    assert report.labels()["amd.com/gpu.gfx-target"] == "gfx942"


def test_nvidia_gpu(tmp_path: Path) -> None:
    sysfs.nvidia_gpu(tmp_path)
    report = detect(tmp_path)
    reason = "NVIDIA GPU present (0000:01:00.0) with the nvidia driver"
    # no /dev/kfd: the gid comes from /dev/dri/renderD128
    assert report == GpuReport(state="nvidia", devices=(RTX4090,), render_gid=GID, reason=reason)
    assert report.usable_amd_count == 0
    assert report.labels() == {"hybrid-knative.io/gpu": "nvidia", "nvidia.com/gpu.present": "true"}
    assert report.annotations() == {"hybrid-knative.io/render-gid": str(GID), "hybrid-knative.io/gpu-reason": reason}


def test_nvidia_gpu_without_driver(tmp_path: Path) -> None:
    sysfs.nvidia_gpu_without_driver(tmp_path)
    report = detect(tmp_path)
    reason = "NVIDIA GPU present (0000:01:00.0), nvidia driver not loaded"
    assert report == GpuReport(state="nvidia-no-driver", devices=(RTX4090_NO_DRIVER,), render_gid=None, reason=reason)
    assert report.labels() == {"hybrid-knative.io/gpu": "nvidia-no-driver"}
    assert report.annotations() == {"hybrid-knative.io/gpu-reason": reason}


def test_no_gpu(tmp_path: Path) -> None:
    sysfs.no_gpu(tmp_path)
    report = detect(tmp_path)
    # the Bochs VGA is a display device, but neither AMD nor NVIDIA; its card0 has no render node
    reason = "no AMD or NVIDIA GPU among 5 PCI devices"
    assert report == GpuReport(state="none", devices=(), render_gid=None, reason=reason)
    assert report.labels() == {"hybrid-knative.io/gpu": "none"}
    assert report.annotations() == {"hybrid-knative.io/gpu-reason": reason}


def test_malformed_tree(tmp_path: Path) -> None:
    sysfs.malformed_tree(tmp_path)
    report = detect(tmp_path)
    reason = (
        "GPU state unknown (found AMD GPU 0000:03:00.0): "
        f"could not read {PCI}/0000:00:02.0/vendor (not a hex number: 'garbage'); "
        f"could not read {PCI}/0000:00:03.0/class (not valid UTF-8 text); "
        f"could not read {PCI}/0000:00:04.0/class (not a regular file); and 5 more problems"
    )
    device = _with(NAVI31_NO_DRIVER, device_id="unknown")
    assert report == GpuReport(state="unknown", devices=(device,), render_gid=GID, reason=reason)
    assert report.usable_amd_count == 0
    assert report.labels() == {"hybrid-knative.io/gpu": "unknown"}
    assert report.annotations() == {"hybrid-knative.io/render-gid": str(GID), "hybrid-knative.io/gpu-reason": reason}


def test_malformed_tree_names_every_problem(tmp_path: Path) -> None:
    sysfs.malformed_tree(tmp_path)
    scan = gpu._Scan(tmp_path)
    scan.run()
    assert scan.problems == [
        f"could not read {PCI}/0000:00:02.0/vendor (not a hex number: 'garbage')",
        f"could not read {PCI}/0000:00:03.0/class (not valid UTF-8 text)",
        f"could not read {PCI}/0000:00:04.0/class (not a regular file)",
        f"could not read {PCI}/0000:03:00.0/device (not a hex number: '0xzzzz')",
        f"could not read {PCI}/0000:03:00.0/driver (dangling symlink to '../../../bus/pci/drivers/amdgpu')",
        f"could not read {PCI}/0000:03:00.0/mem_info_vram_total (not a number: 'lots')",
        "could not read /sys/class/kfd/kfd/topology/nodes/0/properties (not a regular file)",
        "could not read /sys/class/kfd/kfd/topology/nodes/1/properties (no valid gfx_target_version)",
    ]


@pytest.mark.parametrize("name", sysfs.SCENARIOS)
def test_every_scenario_has_valid_labels_and_round_trips(tmp_path: Path, name: str) -> None:
    builder: Callable[[Path], FakeHost] = getattr(sysfs, name)
    builder(tmp_path)
    report = detect(tmp_path)
    assert_valid_metadata(report)
    data = json.loads(json.dumps(report.to_dict()))
    assert GpuReport.from_dict(data) == report
    assert data["usable_amd_count"] == report.usable_amd_count
    assert data["gfx_targets"] == list(report.gfx_targets)
    assert "\n" not in report.reason


# --- AMD not (fully) usable --------------------------------------------------------------------------------------


def test_amd_bound_to_vfio(tmp_path: Path) -> None:
    sysfs.discrete_amd_gpu(tmp_path, driver="vfio-pci", kfd=False)
    report = detect(tmp_path)
    assert report.state == "amd-no-driver"
    assert report.devices == (_with(NAVI31_NO_DRIVER, driver="vfio-pci"),)
    assert report.reason == "AMD GPU present (0000:03:00.0), amdgpu driver not bound (0000:03:00.0 uses vfio-pci)"


def test_amdgpu_loaded_but_not_bound(tmp_path: Path) -> None:
    host = sysfs.amd_gpu_without_driver(tmp_path)
    host.driver("amdgpu")  # module loaded, probe failed (e.g. missing firmware)
    report = detect(tmp_path)
    assert report.state == "amd-no-driver"
    assert report.reason == (
        "AMD GPU present (0000:03:00.0), amdgpu driver loaded but not bound to it (see the kernel log)"
    )


def test_amd_without_dev_kfd(tmp_path: Path) -> None:
    sysfs.discrete_amd_gpu(tmp_path, kfd=False)
    report = detect(tmp_path)
    assert report.state == "amd-no-driver"
    assert report.devices == (NAVI31,)  # the gfx target is known, but ROCm cannot use it without /dev/kfd
    assert report.usable_amd_count == 0
    assert report.reason == "AMD GPU present (0000:03:00.0) with the amdgpu driver, but /dev/kfd is missing"
    assert report.labels() == {"hybrid-knative.io/gpu": "amd-no-driver", "amd.com/gpu.gfx-target": "gfx1100"}
    assert report.render_gid == GID  # from /dev/dri/renderD128


def test_amd_without_kfd_gpu_node(tmp_path: Path) -> None:
    sysfs.discrete_amd_gpu(tmp_path, topology=False)
    report = detect(tmp_path)
    assert report.state == "amd-no-driver"
    assert report.devices == (_with(NAVI31, gfx_target=None),)
    assert report.reason == (
        "AMD GPU present (0000:03:00.0) with the amdgpu driver, but the KFD topology lists no GPU node for it"
    )


def test_binding_seen_only_in_module_directory(tmp_path: Path) -> None:
    host = sysfs.discrete_amd_gpu(tmp_path)
    host.remove(f"{host.device_dir('0000:03:00.0')}/driver")
    report = detect(tmp_path)
    assert report.state == "amd"
    assert report.devices == (NAVI31,)


def test_one_of_two_amd_gpus_usable(tmp_path: Path) -> None:
    host = sysfs.two_amd_gpus(tmp_path)
    host.unbind("0000:83:00.0", "amdgpu")
    host.bind("0000:83:00.0", "vfio-pci")
    host.remove("sys/devices/virtual/kfd/kfd/topology/nodes/1")  # the MI210's node goes with amdgpu
    report = detect(tmp_path)
    assert report.state == "amd"
    assert report.usable_amd_count == 1
    assert report.reason == "1 of 2 AMD GPUs ready for ROCm: 0000:03:00.0 (gfx1100)"
    assert report.devices[1].driver == "vfio-pci"
    assert report.devices[1].gfx_target is None


# --- precedence ------------------------------------------------------------------------------------------------------


def test_usable_amd_wins_over_nvidia(tmp_path: Path) -> None:
    sysfs.discrete_amd_gpu(tmp_path)
    sysfs.nvidia_gpu(tmp_path, address="0000:0b:00.0")
    report = detect(tmp_path)
    assert report.state == "amd"
    assert report.devices == (NAVI31, _with(RTX4090, pci_address="0000:0b:00.0"))
    assert report.reason == "AMD GPU ready for ROCm: 0000:03:00.0 (gfx1100); NVIDIA GPU also present (0000:0b:00.0)"
    assert "nvidia.com/gpu.present" not in report.labels()
    assert report.labels()["amd.com/gpu.present"] == "true"


def test_usable_nvidia_wins_over_amd_without_driver(tmp_path: Path) -> None:
    sysfs.amd_gpu_without_driver(tmp_path)
    sysfs.nvidia_gpu(tmp_path, address="0000:0b:00.0")
    report = detect(tmp_path)
    assert report.state == "nvidia"
    assert report.reason == "NVIDIA GPU present (0000:0b:00.0) with the nvidia driver"
    assert report.labels() == {"hybrid-knative.io/gpu": "nvidia", "nvidia.com/gpu.present": "true"}


def test_amd_without_driver_wins_over_nvidia_without_driver(tmp_path: Path) -> None:
    sysfs.amd_gpu_without_driver(tmp_path)
    sysfs.nvidia_gpu(tmp_path, address="0000:0b:00.0", driver=None)
    report = detect(tmp_path)
    assert report.state == "amd-no-driver"
    assert [d.vendor for d in report.devices] == ["amd", "nvidia"]


def test_nvidia_bound_to_nouveau(tmp_path: Path) -> None:
    sysfs.nvidia_gpu(tmp_path, driver="nouveau")
    report = detect(tmp_path)
    assert report.state == "nvidia-no-driver"
    assert report.devices == (_with(RTX4090_NO_DRIVER, driver="nouveau"),)
    assert report.reason == "NVIDIA GPU present (0000:01:00.0), nvidia driver not bound (0000:01:00.0 uses nouveau)"


def test_nvidia_proc_version_without_driver_symlink(tmp_path: Path) -> None:
    host = sysfs.nvidia_gpu(tmp_path, driver=None)
    host.nvidia_proc()
    assert detect(tmp_path).state == "nvidia"


def test_nvidia_3d_controller_class(tmp_path: Path) -> None:
    host = sysfs.nvidia_gpu(tmp_path)
    host.write(f"{host.device_dir('0000:01:00.0')}/class", "0x030200\n")
    report = detect(tmp_path)
    assert report.state == "nvidia"
    assert report.devices[0].pci_class == "0x030200"


# --- render gid --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the fake device files")
def test_render_gid_prefers_dev_kfd(tmp_path: Path) -> None:
    host = sysfs.discrete_amd_gpu(tmp_path)
    host.dev_kfd(gid=992)
    host.write("dev/dri/renderD128", "", gid=109)
    assert detect(tmp_path).render_gid == 992
    assert detect(tmp_path).annotations()["hybrid-knative.io/render-gid"] == "992"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown the fake device files")
def test_render_gid_from_lowest_render_node_without_kfd(tmp_path: Path) -> None:
    host = sysfs.two_amd_gpus(tmp_path)
    host.remove("dev/kfd")
    host.write("dev/dri/renderD129", "", gid=300)
    host.write("dev/dri/renderD128", "", gid=109)
    host.write("dev/dri/renderD1280", "", gid=301)
    assert detect(tmp_path).render_gid == 109


# --- broken trees, one thing at a time ----------------------------------------------------------------------------


def test_garbage_elsewhere_does_not_hide_a_usable_gpu(tmp_path: Path) -> None:
    host = sysfs.discrete_amd_gpu(tmp_path)
    host.write(f"{host.device_dir('0000:00:01.1')}/vendor", b"\x00\x01\x02")
    report = detect(tmp_path)
    assert report.state == "amd"
    assert report.devices == (NAVI31,)
    assert report.reason == (
        f"AMD GPU ready for ROCm: 0000:03:00.0 (gfx1100); could not read {PCI}/0000:00:01.1/vendor "
        "(not a hex number: '\\x00\\x01\\x02')"
    )


def test_unreadable_device_makes_no_gpu_unknown(tmp_path: Path) -> None:
    host = sysfs.no_gpu(tmp_path)
    host.write(f"{host.device_dir('0000:00:02.0')}/vendor", "0x12345\n")
    report = detect(tmp_path)
    assert report == GpuReport(
        state="unknown",
        devices=(),
        render_gid=None,
        reason=f"GPU state unknown (no GPU found): could not read {PCI}/0000:00:02.0/vendor "
        "(not a hex number: '0x12345')",
    )


def test_missing_class_file(tmp_path: Path) -> None:
    host = sysfs.no_gpu(tmp_path)
    host.remove(f"{host.device_dir('0000:00:03.0')}/class")
    report = detect(tmp_path)
    assert report.state == "unknown"
    assert report.reason == f"GPU state unknown (no GPU found): {PCI}/0000:00:03.0/class is missing"


def test_dangling_device_link(tmp_path: Path) -> None:
    host = sysfs.no_gpu(tmp_path)
    host.symlink("sys/bus/pci/devices/0000:00:05.0", "../../../devices/pci0000:00/0000:00:05.0")
    report = detect(tmp_path)
    assert report.state == "unknown"
    assert report.reason == (
        f"GPU state unknown (no GPU found): could not read {PCI}/0000:00:05.0 (not a directory or dangling)"
    )


def test_dangling_driver_symlink(tmp_path: Path) -> None:
    host = sysfs.amd_gpu_without_driver(tmp_path)
    host.symlink(f"{host.device_dir('0000:03:00.0')}/driver", "../../../bus/pci/drivers/amdgpu")
    report = detect(tmp_path)
    assert report.state == "unknown"  # it might be bound: we cannot say "no driver"
    assert report.devices == (NAVI31_NO_DRIVER,)
    assert report.reason == (
        f"GPU state unknown (found AMD GPU 0000:03:00.0): could not read {PCI}/0000:03:00.0/driver "
        "(dangling symlink to '../../../bus/pci/drivers/amdgpu')"
    )


def test_driver_is_a_file(tmp_path: Path) -> None:
    host = sysfs.nvidia_gpu(tmp_path, driver=None)
    host.write(f"{host.device_dir('0000:01:00.0')}/driver", "nvidia\n")
    report = detect(tmp_path)
    assert report.state == "unknown"
    assert report.reason.endswith(f"could not read {PCI}/0000:01:00.0/driver (not a symlink)")


def test_unreadable_topology_with_bound_gpu(tmp_path: Path) -> None:
    host = sysfs.discrete_amd_gpu(tmp_path)
    node = "sys/devices/virtual/kfd/kfd/topology/nodes/1"
    host.remove(f"{node}/properties")
    host.mkdir(f"{node}/properties")
    report = detect(tmp_path)
    assert report.state == "unknown"
    assert report.devices == (_with(NAVI31, gfx_target=None),)
    assert report.reason == (
        "GPU state unknown (found AMD GPU 0000:03:00.0): "
        "could not read /sys/class/kfd/kfd/topology/nodes/1/properties (not a regular file)"
    )


def test_invalid_utf8_properties(tmp_path: Path) -> None:
    host = sysfs.discrete_amd_gpu(tmp_path)
    host.kfd_node(1, b"gfx_target_version 110000\n\xc3\x28\n")
    report = detect(tmp_path)
    assert report.state == "unknown"
    assert "nodes/1/properties (not valid UTF-8 text)" in report.reason


def test_unreadable_cpu_node_does_not_matter_once_the_gpu_is_found(tmp_path: Path) -> None:
    host = sysfs.discrete_amd_gpu(tmp_path)
    host.kfd_node(0, "cpu_cores_count sixteen\n")
    report = detect(tmp_path)
    assert report.state == "amd"
    assert report.reason == (
        "AMD GPU ready for ROCm: 0000:03:00.0 (gfx1100); "
        "could not read /sys/class/kfd/kfd/topology/nodes/0/properties (no valid gfx_target_version)"
    )


def test_unrecognised_gfx_version(tmp_path: Path) -> None:
    host = sysfs.discrete_amd_gpu(tmp_path)
    host.kfd_node(1, "gfx_target_version 99999999\nlocation_id 768\n")
    report = detect(tmp_path)
    assert report.state == "unknown"
    assert report.reason.endswith("nodes/1/properties (unrecognised gfx_target_version 99999999)")


def test_fifo_instead_of_a_file_does_not_hang(tmp_path: Path) -> None:
    host = sysfs.no_gpu(tmp_path)
    vendor = host.at(f"{host.device_dir('0000:00:02.0')}/vendor")
    vendor.unlink()
    os.mkfifo(vendor)
    report = detect(tmp_path)
    assert report.state == "unknown"
    assert report.reason.endswith(f"could not read {PCI}/0000:00:02.0/vendor (not a regular file)")


def test_symlink_loop(tmp_path: Path) -> None:
    host = sysfs.no_gpu(tmp_path)
    dev = host.device_dir("0000:00:02.0")
    host.remove(f"{dev}/class")
    host.symlink(f"{dev}/class", "class")
    report = detect(tmp_path)
    assert report.state == "unknown"
    assert f"{PCI}/0000:00:02.0/class" in report.reason


def test_no_sysfs(tmp_path: Path) -> None:
    report = detect(tmp_path)
    assert report == GpuReport(
        state="unknown",
        devices=(),
        render_gid=None,
        reason="GPU state unknown (no GPU found): could not read /sys/bus (is sysfs mounted under the root?); "
        "/dev is missing",
    )
    assert detect(tmp_path / "does-not-exist").state == "unknown"


def test_no_pci_bus(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    host.mkdir("sys/bus/platform/devices")
    host.mkdir("dev")
    report = detect(tmp_path)
    assert report == GpuReport(
        state="none", devices=(), render_gid=None, reason="no PCI devices, so no AMD or NVIDIA GPU"
    )


def test_devices_dir_is_a_file(tmp_path: Path) -> None:
    host = FakeHost(tmp_path)
    host.base()
    host.remove("sys/bus/pci/devices")
    host.write("sys/bus/pci/devices", "")
    report = detect(tmp_path)
    assert report.state == "unknown"
    assert report.reason == "GPU state unknown (no GPU found): could not list /sys/bus/pci/devices (Not a directory)"


def test_bound_gpu_without_dev(tmp_path: Path) -> None:
    """The join agent forgot to mount /dev: not "no driver", but unknown."""
    host = sysfs.discrete_amd_gpu(tmp_path)
    host.remove("dev")
    report = detect(tmp_path)
    assert report.state == "unknown"
    assert report.reason == "GPU state unknown (found AMD GPU 0000:03:00.0): /dev is missing"


def test_internal_error_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: object) -> GpuReport:
        raise RuntimeError("bug")

    monkeypatch.setattr(gpu._Scan, "run", boom)
    report = detect(tmp_path)
    assert report == GpuReport(
        state="unknown",
        devices=(),
        render_gid=None,
        reason="GPU state unknown: internal error in GPU detection (RuntimeError('bug'))",
    )


# --- labels and serialisation ------------------------------------------------------------------------------------


def _amd(address: str, target: str | None) -> GpuDevice:
    return _with(NAVI31, pci_address=address, gfx_target=target)


def test_many_gfx_targets_fit_a_label_value() -> None:
    targets = ["gfx1100", "gfx1101", "gfx1102", "gfx1103", "gfx1150", "gfx1151", "gfx1200", "gfx1201", "gfx90a"]
    devices = tuple(_amd(f"0000:{i + 1:02x}:00.0", t) for i, t in enumerate(targets))
    report = GpuReport(state="amd", devices=devices, render_gid=None, reason="x")
    labels = report.labels()
    assert labels["amd.com/gpu.gfx-target"] == "gfx1100"
    assert labels["amd.com/gpu.gfx-targets"] == "gfx1100_gfx1101_gfx1102_gfx1103_gfx1150_gfx1151_gfx1200_gfx1201"
    assert_valid_metadata(report)


def test_labels_only_for_amd_devices_and_unique_targets() -> None:
    devices = (_amd("0000:03:00.0", "gfx1100"), _amd("0000:04:00.0", "gfx1100"), _amd("0000:05:00.0", None))
    report = GpuReport(state="amd", devices=devices, render_gid=0, reason="x")
    assert report.gfx_targets == ("gfx1100",)
    assert report.usable_amd_count == 2
    assert "amd.com/gpu.gfx-targets" not in report.labels()
    assert report.annotations()["hybrid-knative.io/render-gid"] == "0"


def test_from_dict_rejects_bad_input() -> None:
    good = GpuReport(state="amd", devices=(NAVI31,), render_gid=110, reason="ok").to_dict()
    assert GpuReport.from_dict(good).devices == (NAVI31,)
    bad: list[object] = [
        [],
        {**good, "state": "purple"},
        {**good, "devices": {}},
        {**good, "render_gid": "110"},
        {**good, "render_gid": True},
        {**good, "render_gid": -1},
        {**good, "reason": None},
        {**good, "devices": [{**NAVI31.to_dict(), "vendor": "intel"}]},
        {**good, "devices": [{**NAVI31.to_dict(), "gfx_target": "gfx 1100"}]},
        {**good, "devices": [{**NAVI31.to_dict(), "pci_address": "03:00.0"}]},
        {**good, "devices": [{**NAVI31.to_dict(), "vram_bytes": "24G"}]},
        {**good, "devices": ["x"]},
    ]
    for data in bad:
        with pytest.raises(ValueError):
            GpuReport.from_dict(data)  # type: ignore[arg-type]


# --- fuzzing: detect() never raises ------------------------------------------------------------------------------

DIR, MISSING, DANGLING = object(), object(), object()
_hexish = st.integers(min_value=0, max_value=2**40).map(lambda n: f"0x{n:x}\n")
_content = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40),
    _hexish,
    st.sampled_from(["0x1002\n", "0x10de\n", "0x030000\n", "0x038000\n", "0x120000\n", "0x040300\n", "", "0x\n"]),
)
_entry = st.one_of(_content, st.sampled_from([DIR, MISSING, DANGLING]))
_prop_keys = st.sampled_from(["gfx_target_version", "location_id", "domain", "drm_render_minor", "simd_count"])
_prop_values = st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), st.text(max_size=12))
_properties = st.one_of(
    st.lists(st.tuples(st.one_of(_prop_keys, st.text(max_size=12)), _prop_values), max_size=8).map(
        lambda pairs: "".join(f"{k} {v}\n" for k, v in pairs)
    ),
    st.binary(max_size=80),
)


def _put(host: FakeHost, rel: str, entry: object) -> None:
    if entry is DIR:
        host.remove(rel)
        host.mkdir(rel)
    elif entry is MISSING:
        host.remove(rel)
    elif entry is DANGLING:
        host.symlink(rel, "nowhere")
    else:
        assert isinstance(entry, str | bytes)
        host.write(rel, entry)


def _check_invariants(report: GpuReport) -> None:
    assert report.state in GPU_STATES
    assert "internal error" not in report.reason
    assert report.reason and "\n" not in report.reason
    assert (report.state == "amd") == (report.usable_amd_count > 0)
    assert_valid_metadata(report)
    data = json.loads(json.dumps(report.to_dict()))
    assert GpuReport.from_dict(data) == report


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    address=st.sampled_from(["0000:03:00.0", "0000:03:00.1", "0000:01:00.0"]),
    vendor=_entry,
    pci_class=_entry,
    device=_entry,
    vram=_entry,
    driver=st.one_of(st.sampled_from([DIR, MISSING, DANGLING]), st.sampled_from(["amdgpu", "nvidia", "x"]), _content),
    cpu_node=st.one_of(_properties, st.sampled_from([DIR, MISSING])),
    gpu_node=st.one_of(_properties, st.sampled_from([DIR, MISSING, DANGLING])),
)
def test_detect_never_raises(
    address: str,
    vendor: object,
    pci_class: object,
    device: object,
    vram: object,
    driver: object,
    cpu_node: object,
    gpu_node: object,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        host = sysfs.discrete_amd_gpu(Path(tmp))
        dev = host.device_dir(address)
        _put(host, f"{dev}/vendor", vendor)
        _put(host, f"{dev}/class", pci_class)
        _put(host, f"{dev}/device", device)
        _put(host, f"{dev}/mem_info_vram_total", vram)
        if driver in ("amdgpu", "nvidia", "x"):
            assert isinstance(driver, str)
            host.symlink(f"{dev}/driver", f"../../../bus/pci/drivers/{driver}")
        else:
            _put(host, f"{dev}/driver", driver)
        nodes = "sys/devices/virtual/kfd/kfd/topology/nodes"
        _put(host, f"{nodes}/0/properties", cpu_node)
        _put(host, f"{nodes}/1/properties", gpu_node)
        _check_invariants(detect(Path(tmp)))


_version_values = st.one_of(
    st.sampled_from([110000, 90010, 90402, 110003, 0, 1, 9999, 91600]),
    st.integers(min_value=-(10**6), max_value=2**70),
    st.text(alphabet="abcxyz-+.0123456789", min_size=1, max_size=8).filter(lambda t: not t.isdigit()),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    version=st.one_of(_version_values, st.none()),
    location=st.one_of(st.none(), st.integers(min_value=-5, max_value=2**20)),
    domain=st.one_of(st.none(), st.integers(min_value=-5, max_value=2**33)),
    extra=st.dictionaries(st.sampled_from(["simd_count", "drm_render_minor", "cpu_cores_count"]), _prop_values),
)
def test_properties_fuzz_gives_the_expected_state(
    version: int | str | None, location: int | None, domain: int | None, extra: dict[str, str]
) -> None:
    props: dict[str, object] = dict(extra)
    if version is not None:
        props["gfx_target_version"] = version
    if location is not None:
        props["location_id"] = location
    if domain is not None:
        props["domain"] = domain
    text = "".join(f"{k} {v}\n" for k, v in props.items())
    if isinstance(version, int) and 0 <= version < 10**20:
        target = gfx_target_from_version(version)
        expected = "amd-no-driver" if version == 0 else "amd" if target else "unknown"
    else:
        expected, target = "unknown", None
    with tempfile.TemporaryDirectory() as tmp:
        host = sysfs.discrete_amd_gpu(Path(tmp))
        host.kfd_node(1, text)
        report = detect(Path(tmp))
    _check_invariants(report)
    assert report.state == expected, (text, report.reason)
    assert report.gfx_targets == ((target,) if target else ())
