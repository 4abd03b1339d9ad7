"""Proposals written into a chunked zarr store as they come, resumable after an interruption.

The store is one (N, Y, X) integer array, one chunk per slice, created atomically
(:func:`src_models.atomic.write_folder`: our manifest marks the folder as ours) with the
example slices already in it. Its attributes hold our marker, the key of the run's inputs
and options, ``run`` (the last run's backend, options and automatic choices:
:func:`src_models.provenance.run_record`), and ``done``: the slices written so far, updated
after each slice's data, so a slice listed there is complete. A restart with the same key
skips them; a store with another key is replaced only with ``--overwrite``; a store that is
not ours is never touched.

Optionally (``confidence=True``, CLI ``--confidence``) the store also holds each proposal's
confidence: a float16 (N, Y, X) array in [0, 1] under the store folder's ``confidence/``
entry (open it with ``zarr.open_array("out.zarr/confidence")``), one chunk per slice, written
before the slice is marked done, so it resumes with the labels; slices not proposed (the
examples) keep its fill value 0.

One big 2D image (:mod:`src_models.big_image`) uses the same store as one (H, W) array in
chunks of 1024², with the first rows of its finished bands in ``done``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from src_models.atomic import MANIFEST, WRITTEN_BY, write_folder
from src_models.types import SliceResult

CONFIDENCE = "confidence"
ZARR_ENTRIES = {MANIFEST, "zarr.json", "c", CONFIDENCE}


def is_zarr_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() == ".zarr"


def store_problem(path: Path) -> str | None:
    """None when ``path`` is a proposals store this tool created (for ``check_output``)."""
    import zarr

    try:
        marked = json.loads((path / MANIFEST).read_text()).get("written_by") == WRITTEN_BY
        attrs = dict(zarr.open_array(str(path), mode="r").attrs)
    except Exception:  # unreadable: not a store of ours
        return "it was not written by napari-incontext (no marker of ours in it)"
    if not marked or attrs.get("written_by") != WRITTEN_BY:
        return "it was not written by napari-incontext"
    extra = sorted({p.name for p in path.iterdir()} - ZARR_ENTRIES)
    if extra:
        return f"it holds files napari-incontext did not write ({', '.join(extra[:3])})"
    return None


def run_key(record: dict[str, Any], labels: Any) -> str:
    """A key of a run: ``record`` (paths, shapes, options; JSON-able) and the labels' pixels,
    read one slice at a time."""
    h = hashlib.blake2b(json.dumps(record, sort_keys=True, default=str).encode(), digest_size=16)
    for i in range(int(labels.shape[0])):
        h.update(np.ascontiguousarray(labels[i]).tobytes())
    return h.hexdigest()


class ZarrProposals:
    """An open proposals store; :meth:`write` adds one slice and records it as done."""

    def __init__(self, path: Path, mode: Literal["r", "r+"] = "r+") -> None:
        import zarr

        self.path = path
        self.array = zarr.open_array(str(path), mode=mode)
        conf = path / CONFIDENCE
        self.confidence = zarr.open_array(str(conf), mode=mode) if conf.is_dir() else None
        done: Any = self.array.attrs.get("done", [])
        self.done: set[int] = {int(i) for i in done}

    @property
    def key(self) -> str:
        return str(self.array.attrs.get("key", ""))

    def write(self, index: int, labels: np.ndarray, confidence: np.ndarray | None = None) -> None:
        """Slice ``index``'s data (labels, and ``confidence`` (Y, X) in [0, 1] when the store
        keeps it) first, then ``done``: a crash between them rewrites it."""
        write_slice(self.array, self.confidence, index, labels, confidence)
        self.mark_done(index)

    def set_run(self, record: dict[str, Any]) -> None:
        """Record what the run is (its backend, options, automatic choices) in the attrs.
        Through this handle: :meth:`mark_done` rewrites the attrs it holds."""
        self.array.attrs["run"] = record

    def mark_done(self, index: int, **more: Any) -> None:
        """Record slice ``index`` as complete (its data must be written already), with
        ``more`` attributes in the same (atomic) metadata write."""
        self.done.add(index)
        attrs = self.array.attrs
        attrs.put({**attrs.asdict(), **more, "done": sorted(self.done)})


def write_slice(
    labels: Any, confidence: Any, index: int, lab: np.ndarray, conf: np.ndarray | None
) -> None:
    """Write one slice's labels into the zarr array ``labels`` and, when ``confidence`` (the
    store's confidence array) is not None, its ``conf`` (Y, X) as float16."""
    labels[index] = np.asarray(lab).astype(labels.dtype, copy=False)
    if confidence is not None:
        if conf is None:
            raise ValueError("this store keeps confidence: give each slice's confidence")
        confidence[index] = np.clip(np.asarray(conf, np.float32), 0, 1).astype(np.float16)


def _create_array(
    where: Path, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...] | None
) -> Any:
    import zarr

    chunks = (1, *shape[1:]) if chunks is None else chunks
    return zarr.create_array(
        str(where), shape=shape, dtype=dtype, chunks=chunks, fill_value=0, zarr_format=3
    )


def _create(
    temp: Path, shape: tuple[int, ...], dtype: np.dtype, key: str, chunks: tuple[int, ...] | None
) -> None:
    array = _create_array(temp / "x", shape, dtype, chunks)  # zarr wants an empty folder
    array.attrs.update({"written_by": WRITTEN_BY, "key": key, "done": []})
    for entry in (temp / "x").iterdir():
        entry.rename(temp / entry.name)
    (temp / "x").rmdir()


def create_store(
    path: Path,
    shape: tuple[int, ...],
    dtype: np.dtype,
    key: str,
    confidence: bool,
    chunks: tuple[int, ...] | None = None,
) -> ZarrProposals:
    """A new store at ``path`` (atomically swapped in, see the module's notes), chunked
    ``chunks`` (default one per slice); with its confidence array when ``confidence``."""
    write_folder(path, lambda temp: _create(temp, shape, dtype, key, chunks))
    if confidence:  # after the swap: the manifest lists files, zarr.json is in a folder
        _create_array(path / CONFIDENCE, shape, np.float16, chunks)
    return ZarrProposals(path)


def _mismatch(path: Path) -> ValueError:
    return ValueError(
        f"--out {path} holds proposals of other inputs or options: pass --overwrite to "
        "replace it, or choose another name"
    )


def done_slices(path: Path, shape: tuple[int, ...], key: str, overwrite: bool) -> set[int]:
    """The slices an earlier run with the same ``key`` wrote to ``path`` (empty when it is
    missing or empty, or will be replaced); writes nothing, so a run can check this before
    its inputs are validated. ``ValueError`` for a store of another key without
    ``overwrite``."""
    if not (path.is_dir() and any(path.iterdir())):
        return set()
    store = ZarrProposals(path, mode="r")
    if store.key == key and store.array.shape == shape:
        return store.done
    if not overwrite:
        raise _mismatch(path)
    return set()


def open_store(
    path: Path,
    shape: tuple[int, ...],
    dtype: np.dtype,
    key: str,
    overwrite: bool,
    confidence: bool = False,
    chunks: tuple[int, ...] | None = None,
) -> ZarrProposals:
    """The store at ``path`` to resume (same ``key`` and ``shape``) or a new one (see
    :func:`create_store`); ``confidence``: a new store keeps each proposal's confidence too
    (make it part of ``key``: a store is resumed as it was created).

    ``path`` must have passed ``check_output(..., owner=store_problem)``: it is missing,
    empty or ours. Raises ``ValueError`` when it holds a run of other inputs and
    ``overwrite`` is off.
    """
    store = ZarrProposals(path) if path.is_dir() and any(path.iterdir()) else None
    if store is not None and (store.key != key or store.array.shape != shape):
        if not overwrite:
            raise _mismatch(path)
        store = None
    if store is None:
        return create_store(path, shape, dtype, key, confidence, chunks)
    if confidence and store.confidence is None:  # cut short between the two creations
        _create_array(path / CONFIDENCE, shape, np.float16, chunks)
        store = ZarrProposals(path)
    return store


def open_proposals(
    path: Path, labels: Any, dtype: np.dtype, key: str, overwrite: bool, confidence: bool = False
) -> ZarrProposals:
    """:func:`open_store` for a stack of the shape of ``labels``, holding its example slices
    not yet proposed (rewritten each time: a cut-short first write is finished)."""
    shape = tuple(int(s) for s in labels.shape)
    store = open_store(path, shape, dtype, key, overwrite, confidence)
    for i in range(shape[0]):  # the examples, as the TIFF output holds them
        if i in store.done:  # proposed already (scribble mode proposes its examples too)
            continue
        lab = np.asarray(labels[i])
        if lab.any():
            store.array[i] = lab.astype(store.array.dtype)
    return store


def write_proposals(
    results: Iterable[SliceResult], open_store: Callable[[], ZarrProposals]
) -> Generator[SliceResult, None, None]:
    """Write each result into the store as it comes, then pass it on.

    The store is opened (created, its examples written) with the first result, once the
    engine has accepted the inputs, or at the end of a run that proposed nothing; a run
    refused before any result writes nothing.
    """
    store = None
    for res in results:
        store = open_store() if store is None else store
        store.write(res.index, res.labels, res.confidence)
        yield res
    if store is None:
        open_store()


def record_run(
    results: Iterable[SliceResult],
    store: Callable[[], ZarrProposals],
    describe: Callable[[SliceResult], dict[str, Any]],
) -> Generator[SliceResult, None, None]:
    """Pass the results on; with the first, record ``describe(first)`` (the run's backend,
    options and automatic choices) in the ``store`` it was written to (open by then)."""
    for n, res in enumerate(results):
        if n == 0:
            store().set_run(describe(res))
        yield res
