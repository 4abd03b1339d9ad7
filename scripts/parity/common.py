"""What every parity script shares: the official checkout on sys.path, stubbed imports,
small real inputs.

The scripts import the official code from a checkout the user gives (``--official DIR``);
nothing official is copied into this repository. Where an official module imports a
package that only a part we do not run needs (detectron2, cv2, diffusers, pycocotools, ...),
:func:`stub_modules` puts an empty module in ``sys.modules`` for it; every script says which.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def parse_official(description: str, default_name: str) -> argparse.Namespace:
    """``--official DIR`` (a checkout at the commit docs/parity.md names)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--official",
        type=Path,
        default=Path("/work/official") / default_name,
        help=f"local checkout of the official {default_name} repository",
    )
    args = parser.parse_args()
    if not args.official.is_dir():
        parser.error(f"{args.official} is not a directory: pass --official PATH")
    sys.path.insert(0, str(args.official.resolve()))
    return args


class _Stub(types.ModuleType):
    """A module whose every attribute is another stub (for names imported but never run)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        child = _Stub(f"{self.__name__}.{name}")
        setattr(self, name, child)
        return child

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"stubbed {self.__name__} was called: the parity run needs it")


def stub_modules(*names: str) -> None:
    """Register empty stand-ins for packages that are imported but not used by the parts run."""
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            if sub not in sys.modules:
                sys.modules[sub] = _Stub(sub)
                if i > 1:
                    setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], sys.modules[sub])
        sys.modules[name].__path__ = []  # type: ignore[attr-defined]


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
