"""One big 2D image labelled in bounded memory: tiles read on demand, bands written out.

:func:`propagate_image` fits the backend on small in-memory examples, then proposes labels
for one (H, W[, C]) image that may be lazy (a zarr or dask array, a numpy memmap): each tile
window is read from it, normalised and blended (:func:`src_models.tiling.tiled_bands`), and
each finished band of tile rows is yielded, so memory holds one band of votes, never the
whole image or a full-size output. :func:`write_image` writes the bands into a zarr store
(labels, optionally their confidence as float16) as they come.

The proposals equal those of ``propagate([*example_images, image], [*example_labels,
None], backend)`` for the image when its pixels are uint8 (scaled by 1/255 either way);
other dtypes are scaled by robust percentiles of :data:`SAMPLE_WINDOWS` sampled windows of
the image alone, so they may differ slightly.

The store resumes: each band's data is written before the band is marked done, so a run
killed mid-way and restarted with the same inputs and options (the same ``key``) skips the
bands done (:func:`resume_bands`, ``propagate_image(..., skip=...)``) and recomputes only
the tiles the others need (the row of tiles above the first band left, for its blended
overlap), giving the uninterrupted run's store bit for bit; a store of another key is
refused unless replaced. The store's attributes hold the run's record (``run``) and its
``mean_confidence`` (the proposal's foreground, as in the review score). There is no review
score (its object statistics need the whole proposal) and no linking.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.engine import fit_run, slice_features
from src_models.inputs import intensity_range, normalise, prepare
from src_models.provenance import automatic_choices
from src_models.scribbles import DEFAULT_BACKGROUND_ID, Unpainted
from src_models.tiling import Band, grid_for, tiled_bands
from src_models.timing import Timer

SAMPLE_WINDOWS = 16  # windows of SAMPLE_SIDE² read for a non-uint8 image's intensity range
SAMPLE_SIDE = 256
BAND_CHUNK = 1024  # the output store's chunk side


class TileReader:
    """A (H, W[, C]) array-like read one window at a time: ``reader[rows, cols]`` is that
    window as (h, w, C) float32 scaled by ``lo``/``span`` (:func:`~src_models.inputs.normalise`)."""

    def __init__(self, source: Any, lo: np.ndarray | None, span: np.ndarray | None) -> None:
        if len(source.shape) not in (2, 3):
            raise ValueError(
                f"a big image must be (Y, X) or (Y, X, C), not of shape {source.shape}"
            )
        self.source, self.lo, self.span = source, lo, span
        channels = int(source.shape[2]) if len(source.shape) == 3 else 1
        self.shape = (int(source.shape[0]), int(source.shape[1]), channels)

    def raw(self, rows: slice, cols: slice) -> np.ndarray:
        window = np.asarray(self.source[rows, cols])
        if window.dtype.kind not in "biuf":
            raise ValueError(f"pixels of type {window.dtype}: give integer or float values")
        if window.dtype.kind == "f" and not np.isfinite(window).all():
            raise ValueError("the image holds NaN or inf pixels: replace them first")
        return window.reshape(*window.shape[:2], self.shape[2])

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        return normalise(self.raw(*key), self.lo, self.span)


def tile_reader(source: Any) -> TileReader:
    """A :class:`TileReader` of ``source``: /255 for uint8, else the robust range of
    :data:`SAMPLE_WINDOWS` windows spread over the image (only those are read)."""
    reader = TileReader(source, None, None)
    if np.dtype(source.dtype) == np.uint8:
        return reader
    height, width, channels = reader.shape
    side = min(SAMPLE_SIDE, height, width)
    per_axis = int(np.ceil(np.sqrt(SAMPLE_WINDOWS)))
    ys = np.linspace(0, height - side, per_axis).astype(int)
    xs = np.linspace(0, width - side, per_axis).astype(int)
    pixels = [
        reader.raw(slice(y, y + side), slice(x, x + side)).reshape(-1, channels)
        for y in ys
        for x in xs
    ]
    reader.lo, reader.span = intensity_range(np.concatenate(pixels))
    return reader


@dataclass
class ImageBand:
    """One finished band of rows of the proposal.

    Attributes:
        top: its first row.
        labels: (rows, W) in the examples' ids and dtype.
        confidence: (rows, W) float32 in [0, 1].
        done: rows finished so far (``top + rows``); total: the image's height.
        timings: after the last band, the run's (``fit``, ``features``, ``tiles``, ...).
        choices: the backend's automatic choices (:func:`~src_models.provenance.
            automatic_choices`), on every band.
    """

    top: int
    labels: np.ndarray
    confidence: np.ndarray
    done: int
    total: int
    timings: dict[str, float]
    choices: dict[str, float] = field(default_factory=dict)


def propagate_image(
    image: Any,
    examples: Sequence[tuple[np.ndarray, np.ndarray]],
    backend: Backend,
    cache: FeatureCache | None = None,
    unpainted: Unpainted = "background",
    background_id: int = DEFAULT_BACKGROUND_ID,
    skip: Collection[int] = (),
) -> Iterator[ImageBand]:
    """Fit on ``examples`` ((image, labels) pairs in memory, as for
    :func:`~src_models.engine.propagate`), then propose ``image`` band by band.

    Args:
        image: (H, W[, C]) array-like of any numeric dtype, read one tile window at a time.
        examples: (Y, X[, C]) images with (Y, X) integer labels, 0 = background.
        backend: any backend; ``image`` is cut in its tiles (one tile when it fits).
        cache: feature cache (default: none, a pass never reads a tile twice).
        unpainted, background_id: scribble mode, as in :func:`~src_models.inputs.prepare`.
        skip: first rows of the bands done already (:func:`resume_bands`): not yielded, and
            only the tiles that overlap the others are read (nothing is fitted when every
            band is done). The bands yielded equal those of a full run, bit for bit.

    Yields:
        :class:`ImageBand` top to bottom (the bands of :func:`image_bands`).
    """
    if all(band.start in skip for band in image_bands(image, backend)):
        return
    cache = FeatureCache(0) if cache is None else cache
    reader = tile_reader(image)
    data = prepare(
        [im for im, _ in examples],
        [lab for _, lab in examples],
        unpainted=unpainted,
        background_id=background_id,
    )
    if data.images[0].shape[-1] != reader.shape[2]:
        raise ValueError(
            f"the examples have {data.images[0].shape[-1]} channels but the image has "
            f"{reader.shape[2]}: give images with the same channels"
        )
    with cache.running():
        _, timings, _ = fit_run(backend, data, cache, stack=False, lazy=True)
        choices = automatic_choices(timings, link_auto=False)
        height, width = reader.shape[:2]
        grid = grid_for(backend, reader.shape)
        totals: dict[str, float] = {}
        timer = Timer()

        def features(tile: np.ndarray) -> tuple[object, dict[str, float]]:
            return slice_features(backend, cache, tile)

        bands: Iterator[Band]
        if grid is None:  # it fits: read whole and predicted as the engine does, one band
            feats, totals = features(reader[slice(0, height), slice(0, width)])
            bands = iter([(0, *backend.predict(feats, (height, width), timer))])
        else:
            bands = tiled_bands(backend, reader, grid, features, timer, totals, skip)
        for top, lab, conf in bands:
            done = top + len(lab)
            extra = timings | totals | timer.seconds if done == height else {}
            yield ImageBand(top, data.ids.to_user(lab), conf, done, height, extra, choices)


def image_bands(image: Any, backend: Backend) -> list[slice]:
    """The rows of each band :func:`propagate_image` yields for the (H, W[, C]) ``image``
    with ``backend``: those of its tile grid, or the whole image when it fits one tile."""
    grid = grid_for(backend, tuple(int(n) for n in image.shape))
    return [slice(0, int(image.shape[0]))] if grid is None else grid.bands()


def label_box(labels: Any, margin: int = 0) -> tuple[slice, slice]:
    """The (rows, columns) window around every nonzero pixel of the (H, W) array-like
    ``labels``, grown by ``margin`` pixels and clipped to the image; the labels are scanned
    :data:`BAND_CHUNK` rows at a time (a memmap's pages given back after each band).

    Raises:
        ValueError: nothing is painted.
    """
    from src_models.lazy import drop_pages

    height, width = int(labels.shape[0]), int(labels.shape[1])
    rows: list[int] = []
    cols = np.zeros(width, bool)
    for top in range(0, height, BAND_CHUNK):
        band = np.asarray(labels[top : top + BAND_CHUNK, 0:width]) != 0
        drop_pages(getattr(labels, "source", labels))
        hit = np.flatnonzero(band.any(axis=1))
        if len(hit):
            rows += [top + int(hit[0]), top + int(hit[-1])]
            cols |= band.any(axis=0)
    if not rows:
        raise ValueError("no example: paint at least one region (a nonzero label) on the image")
    x = np.flatnonzero(cols)
    return (
        slice(max(min(rows) - margin, 0), min(max(rows) + 1 + margin, height)),
        slice(max(int(x[0]) - margin, 0), min(int(x[-1]) + 1 + margin, width)),
    )


def example_window(
    image: Any, labels: Any, margin: int = 0
) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    """The painted part of a big image as an in-memory example: the window of
    :func:`label_box` read from ``image`` ((H, W[, C]) array-like, its own dtype) and from
    ``labels`` ((H, W)); only that window of the image is read. Returns (image crop, label
    crop, (rows, columns))."""
    if tuple(labels.shape[:2]) != tuple(image.shape[:2]) or len(labels.shape) != 2:
        raise ValueError(
            f"labels of shape {tuple(labels.shape)} for an image of shape "
            f"{tuple(image.shape)}: give one (Y, X) label image of the image's size"
        )
    box = label_box(labels, margin)
    return np.asarray(image[box]), np.asarray(labels[box]), box


def resume_bands(
    path: str | Path, shape: tuple[int, int], key: str, overwrite: bool = False
) -> set[int]:
    """First rows of the bands an earlier run with the same ``key`` wrote completely into
    the store at ``path`` (empty when it is missing or will be replaced): give them to
    :func:`propagate_image` as ``skip`` and ``key`` to :func:`write_image`. Writes nothing.

    Raises:
        ValueError: ``path`` is not a store of ours, or one of another key (inputs,
            options) and ``overwrite`` is off.
    """
    from src_models.outputs import check_output
    from src_models.zarr_out import done_slices, store_problem

    out = check_output(path, overwrite=True, kind="folder", owner=store_problem)
    return done_slices(out, tuple(shape), key, overwrite)


def write_image(
    bands: Iterable[ImageBand],
    path: str | Path,
    dtype: np.dtype,
    shape: tuple[int, int],
    confidence: bool = False,
    overwrite: bool = False,
    key: str | None = None,
    run: Callable[[ImageBand], dict[str, Any]] | None = None,
) -> Iterator[ImageBand]:
    """Write each band into a zarr store at ``path`` as it comes, then pass it on.

    The store (one (H, W) array of ``dtype``, chunks of :data:`BAND_CHUNK`², with a float16
    ``confidence/`` array when ``confidence``) is opened with the first band (see
    :mod:`src_models.zarr_out`). ``path`` is checked before any work: a store this tool did
    not create is never touched. Without ``key`` the store is new (one of ours replaced
    only with ``overwrite``); with ``key`` (the run's inputs and options) one of ours with
    the same key and shape is resumed, one of another key replaced only with ``overwrite``.

    Each band's data is written first, then its first row is added to the ``done``
    attribute (chunk and metadata writes are atomic, so a band listed there is complete),
    with its confidence sums in ``bands``; once every band is done, ``mean_confidence``:
    the mean confidence of the proposal's foreground (every pixel when it has none), as the
    review score's confidence term. ``run``: first band → the run's record
    (:func:`src_models.provenance.run_record`), written to the ``run`` attribute.
    """
    from src_models.outputs import check_output
    from src_models.zarr_out import create_store, open_store, store_problem

    replace = overwrite or key is not None  # ours: resumed, or refused by open_store
    out = check_output(path, overwrite=replace, kind="folder", owner=store_problem)
    chunks = (min(BAND_CHUNK, shape[0]), min(BAND_CHUNK, shape[1]))
    store = None
    for band in bands:  # opened with the first band: a refused input writes nothing
        if store is None:
            if key is None:
                store = create_store(out, shape, np.dtype(dtype), "image", confidence, chunks)
            else:
                store = open_store(out, shape, np.dtype(dtype), key, overwrite, confidence, chunks)
            if run is not None:
                store.set_run(run(band))
        rows = slice(band.top, band.done)
        store.array[rows] = band.labels.astype(store.array.dtype, copy=False)
        if store.confidence is not None:
            store.confidence[rows] = band.confidence.astype(np.float16)
        store.mark_done(band.top, **_band_sums(store.array.attrs.get("bands", {}), band))
        yield band


def _band_sums(sums: Any, band: ImageBand) -> dict[str, Any]:
    """The ``bands`` attribute with ``band``'s [rows, foreground confidence sum, foreground
    pixels, confidence sum] added, and ``mean_confidence`` once they cover the image."""
    foreground, conf = band.labels != 0, band.confidence
    fg_sum = np.sum(conf, where=foreground, dtype=np.float64)  # no float64 copy of the band
    this = [len(conf), fg_sum, int(foreground.sum()), np.sum(conf, dtype=np.float64)]
    sums = dict(sums) | {str(band.top): this}
    sums = {k: [float(v) for v in sums[k]] for k in sorted(sums, key=int)}
    out: dict[str, Any] = {"bands": sums}
    rows, fg_sum, fg_count, conf_sum = np.sum(list(sums.values()), axis=0)
    if rows == band.total:
        width = band.labels.shape[1]
        out["mean_confidence"] = float(fg_sum / fg_count if fg_count else conf_sum / (rows * width))
    return out
