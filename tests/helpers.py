"""Helpers shared by the tests (data paths, metrics, synthetic images)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from src_models.evaluation.metrics import iou  # noqa: F401  (re-exported for the tests)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """``scripts/NAME.py`` of this checkout as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared_data(name: str) -> Path:
    """Path of a folder in ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data is only beside the CI checkout)")
    return path


def disks_image(size: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A float32 image with two bright disks on a textured background, and their labels {0,1,2}."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    one = (yy - 0.4 * size) ** 2 + (xx - 0.45 * size) ** 2 < (0.24 * size) ** 2
    two = (yy - 0.78 * size) ** 2 + (xx - 0.78 * size) ** 2 < (0.13 * size) ** 2
    image = 0.2 + 0.05 * ndi.gaussian_filter(rng.standard_normal((size, size)), 2)
    image = image + 0.5 * one + 0.3 * two + 0.02 * rng.standard_normal((size, size))
    return image.astype(np.float32), (one + 2 * two).astype(np.int32)
