"""npe2 writer for labels layers: a TIFF written atomically that never replaces a file
napari-incontext did not write.

An existing path is replaced only when it is one of our own unchanged earlier outputs (its
TIFF description carries our marker and the sha256 of its pixels, see
:mod:`src_models.outputs`); anything else (your ground truth, a folder) is kept and the
labels go to the first free ``<name>-2.tif``, ``<name>-3.tif``…, with a warning naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from src_models.atomic import write_file
from src_models.io import label_dtype, write_tiff
from src_models.outputs import file_problem


def free_path(path: Path) -> Path:
    """``path`` when it is free or our own earlier output, else the first free ``-N`` name."""
    taken = path.exists() or path.is_symlink()
    if not taken or (path.is_file() and not path.is_symlink() and file_problem(path) is None):
        return path
    n = 2
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists() or (
        candidate.is_symlink()
    ):
        n += 1
    return candidate


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one labels layer's data (a numpy/dask array, or the first level of a
    multiscale list) to ``path``; returns the path actually written."""
    from napari.utils.notifications import show_warning

    if isinstance(data, (list, tuple)):
        data = data[0]  # multiscale: the full-resolution level
    array = np.asarray(data)
    target = Path(path)
    if target.suffix.lower() not in (".tif", ".tiff"):
        target = target.with_name(target.name + ".tif")
    target = free_path(target)
    stored = array.astype(label_dtype([array]), copy=False)
    write_file(target, lambda temp: write_tiff(temp, stored))
    if target != Path(path):
        show_warning(
            f"{path} was kept (it was not written by napari-incontext); "
            f"the labels were saved to {target}"
        )
    return [str(target)]
