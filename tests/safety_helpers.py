"""Helpers of the safety suites: file-system snapshots and a small workspace of user files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile

from src_models.sample_data import example_labels, synthetic_stack

# Small, fast classic options: a run takes well under a second.
FAST = [
    "--option",
    "sigma_max=2",
    "--option",
    "texture=false",
    "--option",
    "n_estimators=4",
    "--option",
    "samples_per_class=300",
    "--quiet",
]


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under ``root``: relative path → (kind, size, sha256 of the bytes)."""
    found: dict[str, tuple[str, int, str]] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", 0, os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir", 0, "")
            else:
                data = path.read_bytes()
                found[rel] = ("file", len(data), hashlib.sha256(data).hexdigest())
    return found


def make_workspace(root: Path) -> Path:
    """A user's folder: a stack and its labels, a folder of PNGs with a masks folder, and
    unrelated files (notes, another folder, a TIFF of theirs, a home folder)."""
    root.mkdir(parents=True, exist_ok=True)
    image, truth = synthetic_stack(n_slices=4, size=24, seed=3)
    tifffile.imwrite(root / "image.tif", image)
    tifffile.imwrite(root / "labels.tif", example_labels(truth, 1).astype(np.uint8))
    (root / "imgs").mkdir()
    (root / "masks").mkdir()
    for i, name in enumerate("abc"):
        iio.imwrite(root / "imgs" / f"{name}.png", (image[i] >> 8).astype(np.uint8))
    iio.imwrite(root / "masks" / "a.png", truth[0].astype(np.uint8))
    (root / "notes.txt").write_text("my notes")
    (root / "foreign").mkdir()
    (root / "foreign" / "keep.txt").write_text("keep")
    tifffile.imwrite(root / "theirs.tif", truth.astype(np.uint16))
    (root / "home").mkdir()
    return root


def one_error_line(err: str, command: str) -> str:
    """The single stderr line of a failed command (asserts there is exactly one)."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"napari-incontext {command}: error:"), lines
    assert "Traceback" not in err
    return lines[0]
