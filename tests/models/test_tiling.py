"""Big 2D images in blended tiles (src_models.tiling): coverage, exactness where the image
fits, near-equality with the untiled run, bounded feature calls, the memory check."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from src_models.backends.classic import ClassicBackend
from src_models.backends.configs import SamRefineConfig
from src_models.cache import FeatureCache
from src_models.config import build_config
from src_models.engine import propagate
from src_models.memory import check_memory
from src_models.registry import get_info
from src_models.sample_data import synthetic_stack
from src_models.tiling import TileGrid, grid_for, painted_tiles, tile_options
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example
from tests.models.tiny_backends import TINY

FAST = {"sigma_max": 4.0, "texture": False, "n_estimators": 8, "samples_per_class": 2000}


def _classic(**options: Any) -> ClassicBackend:
    return ClassicBackend(build_config(get_info("classic").config, {**FAST, **options}))


def _spy(backend: Any, seen: list[tuple[int, ...]]) -> None:
    """Record the shape of every image ``compute_features`` is given."""
    compute = backend.compute_features

    def spied(image: np.ndarray, timer: Timer = NULL_TIMER) -> Any:
        seen.append(image.shape)
        return compute(image, timer)

    backend.compute_features = spied


def _run(images: Any, labels: Any, backend: Any, **kw: Any) -> list[Any]:
    return list(propagate(images, labels, backend, warn_sparse=False, **kw))


def _scene(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(2, size, size) uint16 synthetic stack, its truth, and labels on slice 0 only."""
    image, truth = synthetic_stack(n_slices=2, size=size)
    labels = np.zeros_like(truth)
    labels[0] = truth[0]
    return image, truth, labels


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a > 0) & (b > 0)).sum() / max(((a > 0) | (b > 0)).sum(), 1))


@pytest.mark.parametrize("n", [100, 128, 129, 300, 1000])
def test_grid_covers_the_image_with_at_least_the_overlap(n: int) -> None:
    grid = TileGrid((n, 57), tile=128, overlap=16)
    starts = grid.starts(0)
    assert starts[0] == 0 and min(starts[-1] + 128, n) == n
    assert all(b - a <= 128 - 16 for a, b in zip(starts, starts[1:], strict=False))
    assert grid.starts(1) == [0]
    assert grid.fits == (n <= 128)
    covered = np.zeros((n, 57), int)
    for rows, cols in grid.tiles():
        covered[rows, cols] += 1
        assert grid.ramp(rows, 0).min() > 0
    assert covered.min() >= 1


def test_defaults_per_backend_and_options_checked() -> None:
    assert tile_options(_classic()) == (2048, 256)
    assert tile_options(_classic(tile_size=512, tile_overlap=32)) == (512, 32)
    assert tile_options(TINY["dinov2"]({})) == (4 * 56, 28)
    assert grid_for(_classic(tile_size=64), (64, 64, 1)) is None
    wrapper = SimpleNamespace(config=SamRefineConfig(), inner=_classic(tile_size=300))
    assert tile_options(wrapper) == (300, 37)  # sam_refine: the inner backend's options
    with pytest.raises(ValueError, match="tile_overlap"):
        _classic(tile_size=64, tile_overlap=40)


class _Threshold:
    """A pointwise backend: its answer at a pixel depends on that pixel only, so blended
    tiles must give exactly the untiled answer, overlaps included."""

    name = "threshold"
    feature_key = "threshold"
    config: Any = None

    def __init__(self, config: Any) -> None:
        self.config = config

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> np.ndarray:
        return image[..., 0].copy()

    def fit(self, examples: Any, timer: Timer = NULL_TIMER) -> None:
        return None

    def predict(
        self, features: np.ndarray, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        labels = np.digitize(features, [0.3, 0.6]).astype(np.int32)
        return labels, (0.5 + 0.5 * np.abs(features - 0.45)).astype(np.float32)

    def check_open(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_blending_of_a_pointwise_backend_is_exact_and_features_stay_tile_sized() -> None:
    rng = np.random.default_rng(1)
    images = rng.random((2, 150, 170)).astype(np.float32)
    labels = np.zeros((2, 150, 170), np.int32)
    labels[0, :5, :5], labels[0, 5:9, :5] = 1, 2
    whole = _run(images, labels, _Threshold(_classic().config))
    seen: list[tuple[int, ...]] = []
    tiled_backend = _Threshold(_classic(tile_size=48, tile_overlap=12).config)
    _spy(tiled_backend, seen)
    tiled = _run(images, labels, tiled_backend)
    np.testing.assert_array_equal(tiled[0].labels, whole[0].labels)
    np.testing.assert_allclose(tiled[0].confidence, whole[0].confidence, rtol=1e-5)
    assert seen and max(max(s[:2]) for s in seen) <= 48
    assert tiled[0].timings["tiles"] == len(TileGrid((150, 170), 48, 12))


def test_an_image_that_fits_takes_the_untiled_path_bit_for_bit() -> None:
    image, _, labels = _scene(96)
    cache = FeatureCache()
    result = _run(image, labels, _classic(tile_size=96), cache=cache)[0]
    backend = _classic()
    assert "tiles" not in result.timings
    (example_features, _), (target_features, _) = (
        cache.get_or_compute(backend.feature_key, im, backend.compute_features)
        for im in _prepared(image, labels)
    )
    assert cache.hits == 2  # the engine computed exactly these whole-slice features
    backend.fit([Example(0, example_features, labels[0].astype(np.int32), 1.0)])
    lab, conf = backend.predict(target_features, (96, 96))
    np.testing.assert_array_equal(result.labels, lab)
    np.testing.assert_array_equal(result.confidence, conf)


def _prepared(image: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    from src_models.inputs import prepare

    return list(prepare(image, labels).images)


def test_classic_tiled_is_nearly_the_untiled_result() -> None:
    image, truth, labels = _scene(192)
    whole = _run(image, labels, _classic())[0]
    seen: list[tuple[int, ...]] = []
    backend = _classic(tile_size=80, tile_overlap=16)
    _spy(backend, seen)
    tiled = _run(image, labels, backend)[0]
    assert tiled.timings["tiles"] == 9
    assert max(max(s[:2]) for s in seen) <= 80
    assert _iou(whole.labels == 1, tiled.labels == 1) >= 0.95
    # the small class moves more: its context stage sees every other pixel of an 80 px tile
    assert _iou(whole.labels == 2, tiled.labels == 2) >= 0.93
    assert _iou(tiled.labels == 1, truth[1] == 1) >= 0.8  # and it still finds the object


def test_examples_larger_than_a_tile_fit_on_their_painted_tiles() -> None:
    labels = np.zeros((200, 200), np.int32)
    labels[10:20, 10:20] = 1
    labels[150:190, 150:190] = 2
    grid = TileGrid((200, 200), 64, 8)
    tiles = painted_tiles(labels, grid)
    assert all(labels[r, c].any() for r, c in tiles) and len(tiles) < len(grid)
    assert len(painted_tiles(labels, grid, limit=1)) == 1
    strokes = np.full((200, 200), -1, np.int32)
    strokes[100, 100] = 0  # scribble mode: a background stroke is painted too
    assert len(painted_tiles(strokes, grid)) >= 1


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_tiny_backend_runs_tiled_on_tiles_only(name: str) -> None:
    image, _, labels = _scene(120)
    backend = TINY[name]({"tile_size": 64, "tile_overlap": 8})
    seen: list[tuple[int, ...]] = []
    _spy(backend, seen)
    result = _run(image, labels, backend)[0]
    assert result.labels.shape == (120, 120) and result.confidence.dtype == np.float32
    assert result.confidence.min() >= 0 and result.confidence.max() <= 1
    assert set(np.unique(result.labels)) <= {0, 1, 2}
    assert result.timings["tiles"] == 4
    assert seen and max(max(s[:2]) for s in seen) <= 64


def test_scribble_mode_tiles_the_scribbled_slice_too() -> None:
    image, truth, _ = _scene(120)
    strokes = np.zeros_like(truth)
    strokes[0, 60, 10:110] = np.where(truth[0, 60, 10:110] > 0, truth[0, 60, 10:110], 3)
    results = _run(image, strokes, _classic(tile_size=64), unpainted="unlabelled", background_id=3)
    assert sorted(r.index for r in results) == [0, 1]
    assert all(r.timings.get("tiles") == 4 for r in results if r.index == 1)


def test_memory_check_accepts_a_big_image_when_tiled() -> None:
    shapes = [(1024, 1024), (20000, 20000)]
    cache = FeatureCache().max_bytes
    tiled = check_memory(shapes, _classic(texture=True), cache, available=10**15)
    untiled = check_memory(shapes, _classic(texture=True, tile_size=20000), cache, available=10**15)
    assert tiled < untiled
    check_memory(shapes, _classic(texture=True), cache, available=int(tiled * 1.01))
    with pytest.raises(MemoryError):
        check_memory(shapes, _classic(texture=True, tile_size=20000), cache, available=tiled)
