"""Every enumeration of the command line, typed, in one place: Config validates against these and
click's choices are built from them (cli/common.py), so a new mode is added here once."""

from __future__ import annotations

from typing import Literal, get_args

GpuMode = Literal["auto", "amd", "nvidia", "none"]
GPU_MODES: tuple[GpuMode, ...] = get_args(GpuMode)

DomainMode = Literal["local", "magic", "custom"]
DOMAIN_MODES: tuple[DomainMode, ...] = get_args(DomainMode)

ProfileName = Literal["standard", "edge"]
PROFILES: tuple[ProfileName, ...] = get_args(ProfileName)

GpuVendor = Literal["amd", "nvidia"]

IngressMode = Literal["node", "loadbalancer"]  # loadbalancer: a cloud's LB gives Kourier its address (clone)
INGRESS_MODES: tuple[IngressMode, ...] = get_args(IngressMode)
# `--with NAME` (repeatable): optional stacks on top of the platform
Extra = Literal["ml", "ml-gridfs"]  # ml: KServe + model store + Training Operator; ml-gridfs: also gridfs://
EXTRAS: tuple[Extra, ...] = get_args(Extra)
