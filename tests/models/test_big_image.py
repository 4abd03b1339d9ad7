"""One big 2D image in bounded memory: tiles read from a lazy array on demand, bands written
into a zarr store, the same labels as the in-memory tiled run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from src_models.backends.classic import ClassicBackend
from src_models.big_image import propagate_image, tile_reader, write_image
from src_models.config import build_config
from src_models.engine import propagate
from src_models.registry import get_info
from src_models.sample_data import synthetic_stack

zarr = pytest.importorskip("zarr")

FAST = {"sigma_max": 4.0, "texture": False, "n_estimators": 8, "samples_per_class": 2000}
TILE, OVERLAP, SIZE = 80, 16, 192  # a 3 × 3 grid


def _classic(tile: int = TILE) -> ClassicBackend:
    options = {**FAST, "tile_size": tile, "tile_overlap": OVERLAP}
    return ClassicBackend(build_config(get_info("classic").config, options))


class Counting:
    """An array wrapper that records the window of every read."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.reads: list[tuple[int, ...]] = []
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        window = self.array[key]
        self.reads.append(window.shape)
        return window


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(example image, its labels, the big target) as uint8."""
    image, truth = synthetic_stack(n_slices=2, size=SIZE)
    image = (image.astype(np.float64) * 255 / image.max()).astype(np.uint8)
    return image[0], truth[0], image[1]


def test_a_lazy_image_reads_only_tiles_and_gives_the_in_memory_labels(
    scene: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    example, labels, target = scene
    results = list(propagate([example, target], [labels, None], _classic(), warn_sparse=False))
    expected = next(r for r in results if r.index == 1)
    assert expected.timings["tiles"] == 9
    lazy = Counting(target)
    bands = list(
        write_image(
            propagate_image(lazy, [(example, labels)], _classic()),
            tmp_path / "big.zarr",
            labels.dtype,
            target.shape,
            confidence=True,
        )
    )
    assert len(lazy.reads) == 9 and max(max(r) for r in lazy.reads) <= TILE  # tiles only
    assert len(bands) == 3 and bands[-1].done == SIZE and bands[-1].timings["tiles"] == 9
    assert max(len(b.labels) for b in bands) < SIZE  # one band at a time
    stored = zarr.open_array(str(tmp_path / "big.zarr"), mode="r")
    np.testing.assert_array_equal(stored[:], expected.labels)
    assert stored.dtype == expected.labels.dtype and stored.attrs["done"] == [0, 56, 112]
    assert stored.attrs["mean_confidence"] == pytest.approx(expected.mean_confidence, rel=1e-5)
    conf = zarr.open_array(str(tmp_path / "big.zarr" / "confidence"), mode="r")[:]
    np.testing.assert_array_equal(conf, expected.confidence.astype(np.float16))


def test_a_zarr_image_in_memory_bands_equal_the_engine(
    scene: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    example, labels, target = scene
    stored = zarr.create_array(str(tmp_path / "in.zarr"), shape=target.shape, dtype=np.uint8)
    stored[:] = target
    bands = list(propagate_image(stored, [(example, labels)], _classic()))
    joined = np.concatenate([b.labels for b in bands])
    results = list(propagate([example, target], [labels, None], _classic(), warn_sparse=False))
    np.testing.assert_array_equal(joined, results[-1].labels)


def test_an_image_that_fits_is_one_band_equal_to_the_untiled_run(
    scene: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    example, labels, target = scene
    lazy = Counting(target)
    bands = list(propagate_image(lazy, [(example, labels)], _classic(tile=SIZE)))
    assert len(bands) == 1 and lazy.reads == [(SIZE, SIZE)] and "tiles" not in bands[0].timings
    engine = list(propagate([example, target], [labels, None], _classic(tile=SIZE)))[-1]
    np.testing.assert_array_equal(bands[0].labels, engine.labels)
    np.testing.assert_array_equal(bands[0].confidence, engine.confidence)


def test_a_non_uint8_image_is_scaled_from_sampled_windows_only() -> None:
    big = Counting(np.arange(600 * 600, dtype=np.uint16).reshape(600, 600))
    reader = tile_reader(big)
    assert big.reads and all(r == (256, 256) for r in big.reads) and len(big.reads) == 16
    tile = reader[slice(0, 64), slice(0, 64)]
    assert tile.shape == (64, 64, 1) and tile.dtype == np.float32


def test_a_store_not_ours_is_never_touched(
    scene: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    example, labels, target = scene
    theirs = zarr.create_array(str(tmp_path / "t.zarr"), shape=(4, 4), dtype=np.uint8)
    theirs[:] = 7
    with pytest.raises(ValueError, match="not written by napari-incontext"):
        list(write_image([], tmp_path / "t.zarr", np.dtype(np.uint8), (4, 4), overwrite=True))
    assert (theirs[:] == 7).all()
    rgb = np.zeros((*target.shape, 3), np.uint8)  # refused (channels): nothing written
    with pytest.raises(ValueError, match="the same channels"):
        bands = propagate_image(rgb, [(example, labels)], _classic())
        list(write_image(bands, tmp_path / "new.zarr", labels.dtype, target.shape))
    assert not (tmp_path / "new.zarr").exists()
