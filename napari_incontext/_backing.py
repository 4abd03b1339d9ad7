"""The arrays behind the plugin's proposals and confidence layers of a stack.

A stack's layers are written one slice at a time (:meth:`._layers.Workspace.write`). Up to
:data:`LAZY_BYTES` of layer data they are a plain ``np.zeros`` (untouched pages take no
memory, but every slice written stays in RAM); above it they are a zarr array on disk, one
chunk per slice, so only the slices napari displays are in memory (a 2,000 × 2048² uint32
stack would otherwise end at 33 GB).

Each zarr array lives in a folder this module creates (``tempfile.mkdtemp`` under
``<user cache dir>/napari-incontext/layers``) and records; only recorded folders are ever
deleted: when the last layer showing one leaves its viewer (removed, or the viewer closed)
and at interpreter exit. Saving such a layer goes through napari's writers like any other.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

LAZY_BYTES = 256 * 2**20  # layer data above this (bytes) is kept on disk, not in memory
PREFIX = "layer-"  # of the folders' names
_created: set[Path] = set()  # the folders this process made, the only ones ever deleted


def layers_root() -> Path:
    """``<user cache dir>/napari-incontext/layers`` (where the zarr-backed layers live)."""
    from src_models.disk_cache import cache_root

    return cache_root() / "layers"


def new_layer_data(shape: tuple[int, ...], dtype: Any, viewer: Any = None) -> Any:
    """Zeros of ``shape`` and ``dtype``: a numpy array, or for a stack (3 axes) of more
    than :data:`LAZY_BYTES`, a zarr array with chunks (1, Y, X) in a folder of its own
    (deleted when the last layer showing it leaves ``viewer``'s layer list)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(shape) != 3 or nbytes <= LAZY_BYTES:
        return np.zeros(shape, dtype)  # maps untouched pages lazily
    import zarr

    root = layers_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=PREFIX, dir=root)).resolve()
    _created.add(folder)
    if viewer is not None:
        _watch(viewer)
    chunks = (1, *shape[1:])
    return zarr.create_array(
        str(folder), shape=shape, dtype=dtype, chunks=chunks, fill_value=0, zarr_format=3
    )


def backing_folder(data: Any) -> Path | None:
    """The folder of a zarr array this module created, else None (any other data)."""
    root = getattr(getattr(data, "store", None), "root", None)
    if root is None:
        return None
    folder = Path(root).resolve()
    return folder if folder in _created else None


def release(folder: Path) -> None:
    """Delete ``folder`` if (and only if) this module created it."""
    folder = folder.resolve()
    if folder not in _created or not folder.name.startswith(PREFIX):
        return
    _created.discard(folder)
    shutil.rmtree(folder, ignore_errors=True)


def release_all() -> None:
    """Delete every folder this module created (at exit)."""
    for folder in list(_created):
        release(folder)


def _watch(viewer: Any) -> None:
    """Release a folder when the last layer of ``viewer`` showing it is removed (closing
    the viewer removes every layer); connected once per array made, so twice is harmless."""
    layers = viewer.layers

    def on_removed(event: Any) -> None:
        folder = backing_folder(event.value.data)
        if folder is None:
            return
        if all(backing_folder(layer.data) != folder for layer in layers):  # duplicates share
            release(folder)

    layers.events.removed.connect(on_removed)


atexit.register(release_all)
