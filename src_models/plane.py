"""One 2D image opened lazily from a file, read one window at a time.

:func:`open_plane` opens a zarr store (:func:`src_models.lazy.open_zarr`), an NPY file
(memory-mapped) or a TIFF (memory-mapped when uncompressed, else through tifffile's zarr
view) without reading its pixels, and returns a :class:`Plane` when it holds ONE image:
(Y, X), (Y, X, C) channel-last (a colour image as :mod:`src_models.io` tells one apart, or
any 3D file with ``channel_axis``), or either with leading length-1 axes (a stack of one).
``plane[rows, cols]`` reads that window only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from src_models.channels import MAX_CHANNELS_LAST, check_axis


class Plane:
    """A (Y, X[, C]) view of ``source`` without its first ``lead`` (length-1) axes and with
    ``axis`` (of what remains, None = none or already last) moved last."""

    def __init__(self, source: Any, lead: int, axis: int | None) -> None:
        self.source, self.lead, self.axis = source, lead, axis
        shape = list(source.shape[lead:])
        if axis is not None:
            shape.append(shape.pop(axis))
        self.shape, self.ndim, self.dtype = tuple(shape), len(shape), np.dtype(source.dtype)

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        index: list[Any] = list(key) + [slice(None)] * (self.ndim - 2)
        if self.axis is not None:
            index.insert(self.axis, index.pop())
        window = np.asarray(self.source[(0,) * self.lead + tuple(index)])
        return window if self.axis is None else np.moveaxis(window, self.axis, -1)


def _open(path: Path) -> tuple[Any, str]:
    """The file's array, nothing read, and its tifffile axes ('' when the format does not
    say); ``ValueError`` when it is no zarr, NPY or TIFF file."""
    from src_models.io import is_zarr

    if is_zarr(path):
        from src_models.lazy import open_zarr

        return open_zarr(path), ""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, mmap_mode="r", allow_pickle=False), ""
    if suffix not in (".tif", ".tiff"):
        raise ValueError(f"{path}: not a zarr, NPY or TIFF file")
    import tifffile
    import zarr

    with tifffile.TiffFile(path) as tif:
        if len(tif.series) != 1:
            raise ValueError(f"{path} holds several images")
        axes = str(tif.series[0].axes)
    try:
        return tifffile.memmap(path, mode="r"), axes
    except ValueError:  # compressed or tiled: chunks decoded on demand
        return zarr.open(tifffile.imread(path, aszarr=True), mode="r"), axes


def open_plane(path: str | Path, channel_axis: int | None = None) -> Plane | None:
    """The image at ``path`` as a lazy :class:`Plane`, or None when the file is not one 2D
    image or cannot be opened lazily (a folder, a stack, another format: the caller's
    ordinary path reads it and reports its problems)."""
    try:
        source, axes = _open(Path(path).expanduser())
    except Exception:  # any reader's error: the ordinary path reads the file and says why
        return None
    shape = tuple(int(n) for n in source.shape)
    if channel_axis is not None:
        try:
            axis = check_axis(channel_axis, len(shape), "the image")
        except ValueError:
            return None
        lead = len(shape) - 3
        if lead < 0 or axis < lead or any(n != 1 for n in shape[:lead]):
            return None
        return Plane(source, lead, None if axis == len(shape) - 1 else axis - lead)
    lead = 0
    while len(shape) - lead > 2 and shape[lead] == 1:
        lead += 1
    rest = shape[lead:]
    if len(rest) == 2:
        return Plane(source, lead, None)
    colour = axes.endswith("S") if axes else (rest[-1] in (3, 4) and rest[-2] > 4)
    if len(rest) == 3 and (colour or (lead and rest[-1] <= MAX_CHANNELS_LAST)):
        return Plane(source, lead, None)
    return None
