"""What every parity script shares: the official checkout on sys.path, stubbed imports,
small real inputs.

The scripts import the official code from a checkout the user gives (``--official DIR``);
nothing official is copied into this repository. Where an official module imports a
package that only a part we do not run needs (detectron2, cv2, diffusers, pycocotools, ...),
:func:`stub_modules` puts an empty module in ``sys.modules`` for it; every script says which.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class _AnyClass(type):
    """Metaclass of stand-in classes: any attribute is another stand-in class."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _AnyClass(name, (), {})


class _Stub(types.ModuleType):
    """A module whose every attribute is a stand-in class (names imported but never run)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _AnyClass(name, (), {})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = prefixes

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if any(name == p or name.startswith(p + ".") for p in self.prefixes):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _Stub(spec.name)
        module.__path__ = []  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def stub_modules(*prefixes: str) -> None:
    """Stand-ins for packages (and all their submodules) that the official code imports
    but the parts run here never use."""
    sys.meta_path.insert(0, _StubFinder(tuple(prefixes)))


def read_rgb(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8: an image resized (area) to ``size`` = (h, w)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize(size[::-1], Image.BOX))


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: a mask (nonzero = object) resized (nearest) to ``size``."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L").resize(size[::-1], Image.NEAREST)) > 0


def real_or_synthetic(
    image: str, mask: str, size: tuple[int, int], seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """A small real image + mask from ../shared/data, or a synthetic one when it is absent."""
    ip, mp = SHARED / image, SHARED / mask
    if ip.is_file() and mp.is_file():
        return read_rgb(ip, size), read_mask(mp, size), f"shared/data/{image}"
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: size[0], : size[1]]
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    m = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.2 * min(size)) ** 2
    img = rng.integers(0, 80, (*size, 3)) + 150 * m[..., None]
    return img.astype(np.uint8), m, "synthetic"
