"""Big 2D images in overlapping tiles, blended, so memory follows the tile, not the image.

A slice with a side longer than its backend's ``tile_size`` (:class:`TilingOption`: classic
2048, model backends 4 × their input size) is cut into a :class:`TileGrid` of overlapping
tiles. Each tile goes through the ordinary contract (``compute_features`` on the tile only,
then ``predict``), and the tiles' answers are blended: every tile votes for its label with its
confidence, weighted by a window that ramps linearly from the tile's inner edges over the
overlap (never at the image's border), and each pixel takes the id with the largest weighted
vote (background included); its confidence is that vote over the sum of the weights. Outside
overlaps this is exactly the tile's own answer. The votes are accumulated per id over one
band of tile rows at a time, so the extra memory is about (ids + 2) × tile × width float32.

A slice that fits is never tiled: the engine takes its old path, bit for bit.

Examples larger than a tile are fitted on their tiles that hold painted pixels (objects in
dense mode; any stroke in scribble mode), at most :data:`MAX_FIT_TILES` of them (the most
painted ones), each with the example's weight: the head sees full-resolution features, as
on the targets, and their memory stays bounded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from src_models.timing import Timer

CLASSIC_TILE = 2048
MODEL_TILE_FACTOR = 4  # model backends: tiles of 4 × the backbone's input size
DEFAULT_INPUT_SIZE = 518
MAX_FIT_TILES = 8

Features = Callable[[np.ndarray], tuple[Any, dict[str, float]]]
"""tile (h, w, C) float32 → (its features, timings of that call) (the engine's cache)."""

Band = tuple[int, np.ndarray, np.ndarray]
"""(first row, labels (rows, W) int32, confidence (rows, W) float32) of a finished band."""


def _tiling_config(backend: Any) -> Any:
    """The config holding ``tile_size``: the backend's, or a wrapper's inner backend's."""
    while backend is not None:
        config = getattr(backend, "config", None)
        if hasattr(config, "tile_size"):
            return config
        backend = getattr(backend, "inner", None)
    return None


def tile_options(backend: Any) -> tuple[int, int] | None:
    """(tile side, overlap) in pixels of ``backend``; None for a backend without the options."""
    config = _tiling_config(backend)
    if config is None:
        return None
    tile = config.tile_size
    if tile is None:
        size = getattr(config, "input_size", None)
        if hasattr(config, "sigma_max"):  # classic: a filter bank, no input size
            tile = CLASSIC_TILE
        else:
            tile = MODEL_TILE_FACTOR * int(size or DEFAULT_INPUT_SIZE)
    overlap = tile // 8 if config.tile_overlap is None else config.tile_overlap
    return int(tile), min(int(overlap), (int(tile) - 1) // 2)


@dataclass(frozen=True)
class TileGrid:
    """Overlapping tiles covering an (H, W) image.

    Attributes:
        shape: (H, W) of the image.
        tile: tile side in pixels (tiles at a short side are shorter).
        overlap: least overlap of neighbouring tiles; the starts are spread evenly, so the
            actual overlap may be larger.
    """

    shape: tuple[int, int]
    tile: int
    overlap: int

    @property
    def fits(self) -> bool:
        """The image is one tile (the untiled path)."""
        return self.shape[0] <= self.tile and self.shape[1] <= self.tile

    def starts(self, axis: int) -> list[int]:
        """Tile starts along ``axis`` (0 = rows, 1 = columns), first 0, last ``n - tile``."""
        n = self.shape[axis]
        if n <= self.tile:
            return [0]
        count = math.ceil((n - self.overlap) / (self.tile - self.overlap))
        return [int(round(v)) for v in np.linspace(0, n - self.tile, count)]

    def span(self, start: int, axis: int) -> slice:
        return slice(start, min(start + self.tile, self.shape[axis]))

    def __len__(self) -> int:
        return len(self.starts(0)) * len(self.starts(1))

    def bands(self) -> list[slice]:
        """The rows of each band :func:`tiled_bands` yields: from a tile row's start to the
        next one's (the last to the image's end)."""
        starts = self.starts(0)
        return [slice(y, z) for y, z in zip(starts, [*starts[1:], self.shape[0]], strict=True)]

    def tile_rows_for(self, skip: Collection[int]) -> list[bool]:
        """Per tile row, whether a band NOT in ``skip`` (first rows) needs its votes: a band
        is blended from every tile row that overlaps it, the one above it included."""
        todo = [b for b in self.bands() if b.start not in skip]
        spans = [self.span(y, 0) for y in self.starts(0)]
        return [any(t.start < b.stop and b.start < t.stop for b in todo) for t in spans]

    def tiles(self) -> Iterator[tuple[slice, slice]]:
        """Every tile's (rows, columns), in raster order."""
        for y in self.starts(0):
            for x in self.starts(1):
                yield self.span(y, 0), self.span(x, 1)

    def ramp(self, span: slice, axis: int) -> np.ndarray:
        """(length,) float32 blending weights of a tile along ``axis``: a linear ramp over
        ``overlap`` pixels at each side inside the image, 1 elsewhere (always > 0)."""
        start, stop = span.start, span.stop
        i = np.arange(stop - start, dtype=np.float32) + 0.5
        weight = np.ones_like(i)
        if self.overlap and start > 0:
            weight = np.minimum(weight, i / self.overlap)
        if self.overlap and stop < self.shape[axis]:
            weight = np.minimum(weight, (stop - start - i) / self.overlap)
        return weight


def grid_for(backend: Any, shape: tuple[int, ...]) -> TileGrid | None:
    """The tile grid of an (H, W[, C]) slice for ``backend``; None when it is not tiled."""
    options = tile_options(backend)
    if options is None:
        return None
    grid = TileGrid((int(shape[0]), int(shape[1])), *options)
    return None if grid.fits else grid


class _Votes:
    """Per-id weighted votes over a band of rows ``[top, top + rows)`` of full width."""

    def __init__(self, width: int) -> None:
        self.top = 0
        self.width = width
        self.weight = np.zeros((0, width), np.float32)
        self.votes: dict[int, np.ndarray] = {}

    def _grow(self, array: np.ndarray, rows: int) -> np.ndarray:
        return np.concatenate([array, np.zeros((rows - len(array), self.width), np.float32)])

    def extend(self, bottom: int) -> None:
        """Make room for rows up to ``bottom`` (exclusive)."""
        rows = bottom - self.top
        if rows > len(self.weight):
            self.weight = self._grow(self.weight, rows)
            self.votes = {k: self._grow(v, rows) for k, v in self.votes.items()}

    def add(
        self, rows: slice, cols: slice, labels: np.ndarray, conf: np.ndarray, window: np.ndarray
    ) -> None:
        band = slice(rows.start - self.top, rows.stop - self.top)
        self.weight[band, cols] += window
        vote = window * conf
        for k in np.unique(labels).tolist():
            if k not in self.votes:
                self.votes[k] = np.zeros_like(self.weight)
            self.votes[k][band, cols] += np.where(labels == k, vote, 0)

    def flush(self, bottom: int) -> Band:
        """The final rows ``[top, bottom)`` (no later tile reaches them), dropped here."""
        n = bottom - self.top
        # an id without votes here has 0, as in an argmax over every id: a pixel without a
        # vote is 0, whichever ids earlier bands saw (so a resumed run gives the same)
        best = np.zeros((n, self.width), np.float32)
        winner = np.zeros((n, self.width), np.int32)
        for k in sorted(self.votes):  # ties go to the smaller id, as argmax does
            better = self.votes[k][:n] > best
            best[better] = self.votes[k][:n][better]
            winner[better] = k
        band = (self.top, winner, np.clip(best / np.maximum(self.weight[:n], 1e-12), 0, 1))
        self.weight = self.weight[n:].copy()
        self.votes = {k: v[n:].copy() for k, v in self.votes.items()}
        self.top = bottom
        return band


def _add_timings(total: dict[str, float], timings: dict[str, float]) -> None:
    for key, value in timings.items():
        total[key] = total.get(key, 0.0) + value


def tiled_predict(
    backend: Any, image: Any, grid: TileGrid, features: Features, timer: Timer
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Predict an image tile by tile and blend the tiles' votes (:func:`tiled_bands` into
    full-size arrays).

    Returns:
        labels (H, W) int32, confidence (H, W) float32 in [0, 1], and the feature timings
        summed over the tiles (``cached`` = the share of tiles found in the cache) plus
        ``tiles`` (their number).
    """
    labels = np.zeros(grid.shape, np.int32)
    conf = np.zeros(grid.shape, np.float32)
    totals: dict[str, float] = {}
    for top, lab, c in tiled_bands(backend, image, grid, features, timer, totals):
        labels[top : top + len(lab)] = lab
        conf[top : top + len(lab)] = c
    return labels, conf, totals


def tiled_bands(
    backend: Any,
    image: Any,
    grid: TileGrid,
    features: Features,
    timer: Timer,
    totals: dict[str, float],
    skip: Collection[int] = (),
) -> Iterator[Band]:
    """Predict an image tile by tile, blend the tiles' votes and yield each finished band of
    rows, top to bottom: beyond what the caller keeps, memory is one band of tile rows.

    Args:
        backend: the backend (fitted).
        image: (H, W, C) float32 of the grid's shape, or anything whose ``image[rows, cols]``
            gives that window so (e.g. :class:`src_models.big_image.TileReader`, which reads
            it from a lazy array): only tile windows are read, one at a time.
        grid: its tiles.
        features: computes (or fetches) one tile's features; never sees the whole image.
        timer: records the head's stages, summed over the tiles.
        totals: filled with the feature timings summed over the tiles (``cached`` = the
            share of tiles found in the cache) and ``tiles`` (their number), complete when
            the last band is yielded.
        skip: first rows of bands already done (a resumed run): they are not yielded, and
            only the tile rows that overlap the others are read and predicted (the one
            above a band too, for its blended overlap), so the bands yielded are those of a
            full pass, bit for bit.

    Yields:
        (first row, labels (rows, W) int32, confidence (rows, W) float32 in [0, 1]) of
        each band (:meth:`TileGrid.bands`) not in ``skip``.
    """
    votes = _Votes(grid.shape[1])
    col_starts, needed = grid.starts(1), grid.tile_rows_for(skip)
    computed = 0
    for r, band in enumerate(grid.bands()):
        rows = grid.span(band.start, 0)
        votes.extend(rows.stop)
        wy = grid.ramp(rows, 0)[:, None]
        for x in col_starts if needed[r] else ():
            cols = grid.span(x, 1)
            feats, timings = features(image[rows, cols])
            _add_timings(totals, timings)
            lab, c = backend.predict(feats, (rows.stop - rows.start, cols.stop - x), timer)
            votes.add(rows, cols, lab, c, wy * grid.ramp(cols, 1)[None, :])
            computed += 1
        if band.stop == grid.shape[0]:  # complete before the last band is handed on
            totals["cached"] = totals.get("cached", 0.0) / max(computed, 1)
            totals["tiles"] = float(computed)
        finished = votes.flush(band.stop)
        if band.start not in skip:
            yield finished


def painted_tiles(
    labels: np.ndarray, grid: TileGrid, limit: int = MAX_FIT_TILES
) -> list[tuple[slice, slice]]:
    """The tiles of a large example to fit on: those with painted pixels (ids > 0; in
    scribble mode, where -1 marks unpainted pixels, any id >= 0), at most ``limit``, the most
    painted first; in raster order."""
    painted = labels >= 0 if (labels < 0).any() else labels > 0
    tiles = list(grid.tiles())
    counts = [int(painted[rows, cols].sum()) for rows, cols in tiles]
    ranked = sorted(range(len(tiles)), key=lambda i: -counts[i])
    chosen = sorted(i for i in ranked[:limit] if counts[i] > 0)
    return [tiles[i] for i in chosen]


def example_pieces(
    backend: Any, image: np.ndarray, labels: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, labels) to fit on for one example: itself when it fits, else its
    :func:`painted_tiles` (views, not copies)."""
    grid = grid_for(backend, image.shape)
    if grid is None:
        return [(image, labels)]
    return [(image[rows, cols], labels[rows, cols]) for rows, cols in painted_tiles(labels, grid)]
