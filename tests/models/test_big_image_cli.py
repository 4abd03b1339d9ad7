"""`propagate` routes ONE 2D image bigger than a tile, with --out *.zarr, to the big image
path: the painted window is the example, the image is proposed tile by tile into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from src_models.big_image import example_window, propagate_image
from src_models.cli import main
from src_models.sample_data import synthetic_stack
from tests.models.test_big_image import FAST, OVERLAP, SIZE, TILE, Counting, _classic

zarr = pytest.importorskip("zarr")

PAINTED = (slice(30, 100), slice(40, 110))
OPTIONS = [f"--option={k}={v}" for k, v in {**FAST, "tile_size": TILE}.items()]
OPTIONS += [f"--option=tile_overlap={OVERLAP}", "--quiet"]


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """(a big uint16 image, labels painted only inside :data:`PAINTED`)."""
    image, truth = synthetic_stack(n_slices=1, size=SIZE)
    labels = np.zeros_like(truth[0], dtype=np.uint16)
    labels[PAINTED] = truth[0][PAINTED]
    assert labels.any() and (labels[PAINTED] == 0).any()
    return image[0], labels


def _save(path: Path, array: np.ndarray) -> Path:
    if path.suffix == ".npy":
        np.save(path, array)
    elif path.suffix == ".zarr":
        zarr.create_array(str(path), data=array, chunks=(64, 64))
    else:  # compressed: read through tifffile's zarr view, not a memmap
        tifffile.imwrite(path, array, tile=(64, 64), compression="zlib")
    return path


def _expected(image: np.ndarray, labels: np.ndarray, **scribbles: Any) -> tuple[Any, Any]:
    crop, painted, _ = example_window(image, labels, OVERLAP)
    bands = list(propagate_image(image, [(crop, painted)], _classic(), **scribbles))
    return np.concatenate([b.labels for b in bands]), np.concatenate([b.confidence for b in bands])


@pytest.mark.parametrize("suffix", [".npy", ".zarr", ".tif"])
def test_a_big_image_is_proposed_in_tiles_like_propagate_image(
    scene: tuple[np.ndarray, np.ndarray], suffix: str, tmp_path: Path, capsys: Any
) -> None:
    image, labels = scene
    source = _save(tmp_path / f"image{suffix}", image)
    painted = _save(tmp_path / f"labels{suffix}", labels)
    out = tmp_path / "out.zarr"
    args = ["propagate", str(source), "--labels", str(painted), "--out", str(out)]
    assert main([*args, *OPTIONS, "--confidence"]) == 0
    assert "ran as a big image (192 x 192) in 9 tiles" in capsys.readouterr().err
    stored = zarr.open_array(str(out), mode="r")
    expected, conf = _expected(image, labels)
    assert stored.shape == (SIZE, SIZE) and stored.dtype == np.uint16
    np.testing.assert_array_equal(stored[:], expected)
    assert (expected[PAINTED[0].stop + 40 :] > 0).any()  # proposed beyond the painted window
    stored_conf = zarr.open_array(str(out / "confidence"), mode="r")[:]
    np.testing.assert_allclose(stored_conf, conf, atol=1e-3)


def test_scribbles_and_colour_images_take_the_big_path(
    scene: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, truth = scene
    colour = np.stack([image, image // 2, image // 3], axis=-1)
    strokes = np.where(truth > 0, 2, 0).astype(np.uint8)
    strokes[PAINTED[0].start : PAINTED[0].start + 4, PAINTED[1]] = 1  # background strokes
    source = _save(tmp_path / "image.npy", colour)
    painted = _save(tmp_path / "labels.npy", strokes)
    out = tmp_path / "out.zarr"
    args = ["propagate", str(source), "--labels", str(painted), "--out", str(out)]
    assert main([*args, *OPTIONS, "--unpainted", "unlabelled"]) == 0
    expected, _ = _expected(colour, strokes, unpainted="unlabelled", background_id=1)
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], expected)
    assert set(np.unique(expected)) <= {0, 2} and (expected == 2).any()


def test_only_the_painted_window_of_the_image_is_read(
    scene: tuple[np.ndarray, np.ndarray],
) -> None:
    image, labels = scene
    lazy = Counting(image)
    crop, painted, box = example_window(lazy, labels, OVERLAP)
    rows, cols = np.nonzero(labels)
    assert box == (
        slice(max(rows.min() - OVERLAP, 0), rows.max() + 1 + OVERLAP),
        slice(max(cols.min() - OVERLAP, 0), cols.max() + 1 + OVERLAP),
    )
    assert lazy.reads == [crop.shape] and crop.shape == painted.shape
    assert crop.size < image.size / 2


def test_a_foreign_store_is_refused_and_ours_is_resumed_or_replaced(
    scene: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, labels = scene
    source = _save(tmp_path / "image.npy", image)
    painted = _save(tmp_path / "labels.npy", labels)
    out = tmp_path / "out.zarr"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["propagate", str(source), "--labels", str(painted), "--out", str(out), *OPTIONS]
    assert main(args) == 2 and main([*args, "--overwrite"]) == 2
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"
    ours = tmp_path / "ours.zarr"
    args[args.index(str(out))] = str(ours)
    assert main(args) == 0
    first = zarr.open_array(str(ours), mode="r")[:]
    assert main(args) == 0  # ours, of the same run: resumed (every band done already)
    assert main([*args, "--overwrite"]) == 0
    np.testing.assert_array_equal(zarr.open_array(str(ours), mode="r")[:], first)


def test_an_image_that_fits_a_tile_keeps_the_stack_path(
    scene: tuple[np.ndarray, np.ndarray], tmp_path: Path, capsys: Any
) -> None:
    image, labels = scene
    source = _save(tmp_path / "image.npy", image)
    painted = _save(tmp_path / "labels.npy", labels)
    out = tmp_path / "out.zarr"
    args = ["propagate", str(source), "--labels", str(painted), "--out", str(out), *OPTIONS]
    assert main([*args, "--option=tile_size=256"]) == 0
    assert "big image" not in capsys.readouterr().err
    assert zarr.open_array(str(out), mode="r").shape == (1, SIZE, SIZE)
