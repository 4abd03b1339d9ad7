"""Refuse a run whose estimated peak memory exceeds what the machine has available.

The estimate (bytes) adds: the normalised float32 copy of every slice (of the slices in flight
for a lazy input, :mod:`src_models.lazy`), the cached features
of every slice (at most the feature cache's cap), the transient buffers of one slice (feature
computation and prediction; of one tile for a slice larger than the backend's tile, plus the
blending band, :mod:`src_models.tiling`) and the per-slice outputs (labels + confidence).
Feature sizes follow each backend's options (:func:`feature_bytes`). It is an estimate, not a
bound: set ``NAPARI_INCONTEXT_NO_MEMORY_CHECK=1`` to run anyway.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from typing import Any

from src_models.tiling import grid_for

SKIP_ENV = "NAPARI_INCONTEXT_NO_MEMORY_CHECK"
GB = 1e9
_WIDTH = {"vits": 384, "vitb": 768, "vitl": 1024, "vitg": 1536}
_OUTPUT_BYTES_PER_PIXEL = 16  # compact + user labels, confidence, probabilities' argmax
_PREDICT_BYTES_PER_PIXEL = 48  # per-class probabilities at full size, a few float32 copies
_VOTE_MAPS = 4  # tiled slices: float32 vote maps (weight, background and two ids) of a band


def human(nbytes: float) -> str:
    """``1.2 GB``, ``350 MB``, ``12 kB``."""
    for unit, size in (("GB", GB), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{int(nbytes)} B"


def available_bytes() -> int:
    """Memory the OS can give this process now (psutil's ``available``)."""
    import psutil

    return int(psutil.virtual_memory().available)


def _config(backend: Any) -> Any:
    while getattr(backend, "config", None) is None and getattr(backend, "inner", None):
        backend = backend.inner
    return getattr(backend, "config", None)


def _classic_features(config: Any, channels: int) -> int:
    """Filter-bank features per pixel of the classic backend: the ilastik bank or skimage's
    sigma ladder ("basic")."""
    if getattr(config, "features", "basic") == "ilastik":
        from src_models.backends.classic_features import feature_count, ilastik_scales

        scales = ilastik_scales(config.sigma_min, config.sigma_max, strict=False)
        return feature_count(len(scales), channels)
    sigmas = int(math.log2(config.sigma_max) - math.log2(config.sigma_min) + 1)
    return sigmas * (2 + (2 if config.texture else 0)) * channels


def feature_bytes(backend: Any, shape: tuple[int, int], channels: int) -> tuple[int, int]:
    """(cached bytes, transient bytes while computing) of one (H, W) slice's features."""
    config = _config(backend)
    pixels = shape[0] * shape[1]
    if config is not None and hasattr(config, "sigma_max"):
        n = _classic_features(config, channels)
        return 4 * n * pixels, 10 * n * pixels  # float32 kept; float32 list + stack
    cached = 0
    if config is not None and hasattr(config, "input_size"):
        name = str(getattr(config, "backbone", "vitl"))
        width = next((w for key, w in _WIDTH.items() if key in name), 1024)
        patch = 16 if "dinov3" in name or "16" in name[-2:] else 14
        side = config.input_size or 512
        cached += math.ceil(side / patch) ** 2 * width * 4 + 2 * pixels  # tokens + guide
    if config is not None and hasattr(config, "sam_model"):
        cached += 256 * 64 * 64 * 2  # SAM embedding, float16
    if cached == 0:
        cached = 64 * pixels  # unknown backend: as much as a wide filter bank
    return cached, cached + 4 * pixels * 3 * 4  # + the resized float32 input


def estimate(
    shapes: Sequence[tuple[int, ...]],
    backend: Any,
    cache_bytes: int,
    raw_bytes: int = 0,
    lazy: bool = False,
) -> dict[str, int]:
    """Estimated peak bytes of a run, by part.

    Args:
        shapes: each slice's (H, W[, C]) shape.
        backend: the backend that will run (its options size the features).
        cache_bytes: cap of the feature cache.
        raw_bytes: bytes of the input still to be read (0 when it is already in memory).
        lazy: the input is read per slice: images and outputs are held for the slices in
            flight (at most the intensity sample, ``lazy.SAMPLE_SLICES``), not for all.
    """
    if lazy:  # the features of every slice, everything else for the slices in flight
        from src_models.lazy import SAMPLE_SLICES

        shown = shapes[:SAMPLE_SLICES]
        features = estimate(shapes, backend, cache_bytes, raw_bytes)["features"]
        return estimate(shown, backend, cache_bytes, raw_bytes) | {"features": features}
    channels = max((int(s[-1]) for s in shapes if len(s) == 3), default=1)
    pixels = [int(s[0]) * int(s[1]) for s in shapes]
    per_slice = [_slice_bytes(backend, (int(s[0]), int(s[1])), channels) for s in shapes]
    return {
        "input": raw_bytes,
        "images": sum(pixels) * channels * 4 + (max(pixels, default=0) * channels * 8),
        "features": min(sum(c for c, _, _ in per_slice), cache_bytes)
        + max((t for _, t, _ in per_slice), default=0),
        "outputs": sum(pixels) * _OUTPUT_BYTES_PER_PIXEL
        + max((p for _, _, p in per_slice), default=0),
    }


def _slice_bytes(backend: Any, shape: tuple[int, int], channels: int) -> tuple[int, int, int]:
    """(cached feature bytes, transient feature bytes, transient prediction bytes) of one
    slice; a slice larger than the backend's tile counts its tiles (:mod:`src_models.tiling`)
    and the tile-row band of blending votes."""
    grid = grid_for(backend, shape)
    if grid is None:
        cached, transient = feature_bytes(backend, shape, channels)
        return cached, transient, shape[0] * shape[1] * _PREDICT_BYTES_PER_PIXEL
    tile = (min(grid.tile, shape[0]), min(grid.tile, shape[1]))
    cached, transient = feature_bytes(backend, tile, channels)
    votes = _VOTE_MAPS * 4 * (tile[0] + grid.tile) * shape[1]
    return cached * len(grid), transient, tile[0] * tile[1] * _PREDICT_BYTES_PER_PIXEL + votes


def shapes_of(images: Any) -> list[tuple[int, ...]]:
    """Each slice's shape of a (N, Y, X[, C]) stack or a list of images, without copying."""
    if hasattr(images, "ndim") and hasattr(images, "shape"):
        return [tuple(images.shape[1:])] * int(images.shape[0]) if images.ndim >= 3 else []
    return [tuple(getattr(im, "shape", ())) for im in images]


def check_memory(
    shapes: Sequence[tuple[int, ...]],
    backend: Any,
    cache_bytes: int,
    raw_bytes: int = 0,
    available: int | None = None,
    lazy: bool = False,
) -> int:
    """Raise ``MemoryError`` with one line (the estimate and what to do) when the run's
    estimated peak exceeds the available memory; returns the estimate in bytes (``lazy``:
    see :func:`estimate`)."""
    shapes = [s for s in shapes if len(s) >= 2]  # malformed ones are refused by prepare
    parts = estimate(shapes, backend, cache_bytes, raw_bytes, lazy)
    total = sum(parts.values())
    if os.environ.get(SKIP_ENV, "") not in ("", "0"):
        return total
    free = available_bytes() if available is None else available
    if total > free:
        detail = ", ".join(f"{k} {human(v)}" for k, v in parts.items() if v)
        raise MemoryError(
            f"this run needs about {human(total)} of memory ({detail}) but "
            f"{human(free)} are available: crop or downscale the images, run fewer "
            "slices at a time, or pick a backend with smaller features (e.g. dinov2, or "
            f"classic with texture=false); set {SKIP_ENV}=1 to try anyway"
        )
    return total


def cache_shortfall(
    shapes: Sequence[tuple[int, ...]], used: Sequence[int], backend: Any, cache: Any
) -> str | None:
    """A one-line warning when the features of the slices ``used`` by a run (indices into
    ``shapes``) will not fit ``cache`` (a :class:`~src_models.cache.FeatureCache`, memory and
    disk tiers together), with the numbers and what to do; None when they fit."""
    shapes = [s for s in shapes if len(s) >= 2]
    used = sorted({i for i in used if 0 <= i < len(shapes)})
    channels = max((int(s[-1]) for s in shapes if len(s) == 3), default=1)
    sizes = [feature_bytes(backend, (shapes[i][0], shapes[i][1]), channels)[0] for i in used]
    disk = getattr(cache, "disk", None)
    holds = int(cache.max_bytes) + (int(disk.max_bytes) if disk is not None else 0)
    if sum(sizes) <= holds:
        return None
    fits = sum(1 for total in itertools.accumulate(sizes) if total <= holds)
    where = "memory + disk" if disk is not None else "memory"
    return (
        f"the features of {len(used)} slices need about {human(sum(sizes))} but the feature "
        f"cache holds {human(holds)} ({where}): a re-run will recompute about "
        f"{len(used) - fits} slices; raise the cap (FeatureCache(max_bytes=...), CLI "
        "--feature-cache-gb) or add a disk tier (FeatureCache(disk=DiskCache(...)), CLI "
        "--feature-cache-dir and --feature-cache-disk-gb)"
    )
