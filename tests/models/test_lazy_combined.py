"""Lazy input together with channels and scribble mode, and the zarr output in scribble mode:
each combination gives what the in-memory path gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from src_models.cli import main
from src_models.engine import propagate
from src_models.evaluation.strokes import strokes_from_truth
from src_models.inputs import prepare
from src_models.lazy import is_lazy, prepare_lazy, stack_view
from src_models.memory import estimate
from src_models.sample_data import example_labels, synthetic_stack
from src_models.scribbles import UNKNOWN
from src_models.zarr_out import open_proposals
from tests.models.test_channels import multichannel
from tests.models.tiny_backends import TINY

da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")

BACKGROUND = 3
FAST = ["--option", "sigma_max=4", "--option", "texture=false", "--option", "n_estimators=4"]


def _run(images: Any, labels: Any, **kwargs: Any) -> dict[int, np.ndarray]:
    backend = TINY["classic"]({})
    return {r.index: r.labels for r in propagate(images, labels, backend, **kwargs)}


def _same(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def _zarr(path: Path, data: np.ndarray) -> Any:
    chunks = (1, *data.shape[1:])
    zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=chunks)[:] = data
    return zarr.open_array(str(path), mode="r")


class CountingArray:
    """An array-like without a lazy view of its own (like zarr): counts the reads."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.ndim, self.dtype = data, data.shape, data.ndim, data.dtype
        self.reads: list[Any] = []

    def __getitem__(self, key: Any) -> np.ndarray:
        self.reads.append(key)
        return self.data[key]


@pytest.fixture(scope="module")
def channels5() -> tuple[np.ndarray, np.ndarray]:
    image, truth = multichannel(5)
    return image, example_labels(truth, 2)


def test_a_lazy_stack_keeps_every_channel_like_numpy(
    channels5: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, labels = channels5
    eager = prepare(image, labels)
    np.save(tmp_path / "im.npy", image)
    memmap = np.load(tmp_path / "im.npy", mmap_mode="r")
    lazy = prepare_lazy(memmap, labels)
    for i in range(len(image)):
        assert lazy.images[i].shape == (48, 48, 5)
        np.testing.assert_array_equal(lazy.images[i], eager.images[i])  # per-channel scaling
    expected = _run(image, labels)
    _same(_run(memmap, labels), expected)
    _same(_run(_zarr(tmp_path / "im.zarr", image), labels), expected)
    _same(_run(da.from_array(image, chunks=(1, -1, -1, -1)), labels), expected)


def test_a_lazy_channel_axis_is_moved_per_slice(
    channels5: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, labels = channels5
    expected = _run(image, labels)
    first = np.ascontiguousarray(np.moveaxis(image, -1, 1))  # (N, C, Y, X)
    np.save(tmp_path / "first.npy", first)
    memmap = np.load(tmp_path / "first.npy", mmap_mode="r")
    _same(_run(memmap, labels, channel_axis=1), expected)
    _same(_run(_zarr(tmp_path / "first.zarr", first), labels, channel_axis=1), expected)
    _same(_run(da.from_array(first, chunks=(1, -1, -1, -1)), labels, channel_axis=1), expected)
    ome = _zarr(tmp_path / "ome.zarr", np.moveaxis(image, -1, 0)[None])  # (1, C, N, Y, X)
    _same(_run(ome, labels, channel_axis=1), expected)
    counting = CountingArray(first)
    view = stack_view(counting, 1)
    assert view.shape == image.shape and counting.reads == []  # a view: nothing read
    np.testing.assert_array_equal(view[3], image[3])
    assert counting.reads == [(3,)]  # one slice read, not the array
    with pytest.raises(ValueError, match="slice axis"):
        list(propagate(memmap, labels, TINY["classic"]({}), channel_axis=0))
    many = CountingArray(np.zeros((2, 8, 8, 20), np.uint16))
    with pytest.raises(ValueError, match="give channel_axis"):
        prepare_lazy(many, np.zeros((2, 8, 8), np.uint8))
    assert many.reads == []


def test_the_lazy_memory_estimate_counts_the_channels() -> None:
    backend = TINY["classic"]({})
    grey = estimate([(512, 512, 1)] * 2000, backend, 10**12, lazy=True)
    five = estimate([(512, 512, 5)] * 2000, backend, 10**12, lazy=True)
    in_flight = estimate([(512, 512, 5)] * 16, backend, 10**12)
    assert five["images"] == 5 * grey["images"] == in_flight["images"]  # 16 slices, 5 channels
    assert five["features"] > grey["features"]  # classic's filters run on every channel


@pytest.fixture(scope="module")
def scribbled() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """image (6, 48, 48), truth, and strokes on slice 3 only (0 = unpainted)."""
    image, truth = synthetic_stack(n_slices=6, size=48)
    strokes = np.zeros_like(truth)
    strokes[3] = strokes_from_truth(truth[3], BACKGROUND)
    return image, truth, strokes


def test_lazy_labels_in_scribble_mode_match_prepare(
    scribbled: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, _, strokes = scribbled
    mode = {"unpainted": "unlabelled", "background_id": BACKGROUND}
    eager = prepare(image, strokes, **mode)  # type: ignore[arg-type]
    np.save(tmp_path / "strokes.npy", strokes)
    lazy = prepare_lazy(
        image.copy().view(np.memmap), np.load(tmp_path / "strokes.npy", "r"), **mode
    )
    assert lazy.sparse and lazy.examples == eager.examples == [3]
    np.testing.assert_array_equal(lazy.ids.table, eager.ids.table)
    for i in range(6):  # background → 0, unpainted → -1, the other slices all unknown
        np.testing.assert_array_equal(lazy.labels[i], eager.labels[i])
        assert lazy.labels[i].dtype == np.int32
    assert (lazy.labels[0] == UNKNOWN).all()
    with pytest.raises(ValueError, match="paint some background with label 7"):
        prepare_lazy(image.view(np.memmap), strokes, unpainted="unlabelled", background_id=7)


def test_scribble_mode_on_a_lazy_stack_gives_the_numpy_proposals(
    scribbled: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, _, strokes = scribbled
    mode = {"unpainted": "unlabelled", "background_id": BACKGROUND}
    expected = _run(image, strokes, **mode)
    assert sorted(expected) == list(range(6))  # the scribbled slice is proposed too
    _same(
        _run(_zarr(tmp_path / "im.zarr", image), _zarr(tmp_path / "s.zarr", strokes), **mode),
        expected,
    )
    dask_image = da.from_array(image, chunks=(1, -1, -1))
    _same(_run(dask_image, strokes, link=True, **mode), _run(image, strokes, link=True, **mode))


def test_zarr_output_in_scribble_mode_resumes_and_keys_the_options(
    scribbled: tuple[np.ndarray, np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image, _, strokes = scribbled
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "strokes.npy", strokes)
    mode = ["--unpainted", "unlabelled", "--background-id", str(BACKGROUND)]

    def cli(out: str, *extra: str) -> int:
        args = [str(tmp_path / "image.npy"), "--labels", str(tmp_path / "strokes.npy")]
        return main(["propagate", *args, "--out", str(tmp_path / out), "--quiet", *FAST, *extra])

    assert cli("out.tif", *mode) == 0
    assert cli("out.zarr", *mode) == 0
    stored = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    tiff = tifffile.imread(tmp_path / "out.tif")
    np.testing.assert_array_equal(stored[:], tiff)  # slice 3 proposed, not the strokes
    assert BACKGROUND not in np.unique(stored[:]) and sorted(stored.attrs["done"]) == list(range(6))
    capsys.readouterr()
    assert cli("out.zarr", *mode) == 0
    assert "0 proposed, 6 resumed" in capsys.readouterr().err
    np.testing.assert_array_equal(stored[:], tiff)  # a resume does not write the strokes back
    assert cli("out.zarr", "--unpainted", "unlabelled", "--background-id", "2") == 2
    assert "pass --overwrite" in capsys.readouterr().err  # the background id is in the key
    assert cli("out.zarr") == 2  # dense mode: another run
    np.testing.assert_array_equal(stored[:], tiff)


def test_a_resumed_store_keeps_a_proposed_example_slice(tmp_path: Path) -> None:
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[1, 2:4, 2:4] = 5
    store = open_proposals(tmp_path / "p.zarr", labels, np.dtype(np.uint8), "k", overwrite=False)
    store.write(1, np.ones((8, 8), np.uint8))  # scribble mode proposes its example slice
    again = open_proposals(tmp_path / "p.zarr", labels, np.dtype(np.uint8), "k", overwrite=False)
    np.testing.assert_array_equal(again.array[1], np.ones((8, 8), np.uint8))


def test_cli_channel_axis_on_an_npy_stack_stays_lazy(
    channels5: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from src_models.commands.propagate_cmd import channels_last

    image, labels = channels5
    first = np.moveaxis(image, -1, 1)
    np.save(tmp_path / "first.npy", first)
    tifffile.imwrite(tmp_path / "first.tif", first)
    np.save(tmp_path / "labels.npy", labels)
    moved, axis = channels_last(np.load(tmp_path / "first.npy", mmap_mode="r"), 1)
    assert is_lazy(moved) and axis == -1 and moved.shape == image.shape
    outs = []
    for name in ("first.npy", "first.tif"):
        args = [str(tmp_path / name), "--labels", str(tmp_path / "labels.npy")]
        out = tmp_path / f"{name}.out.zarr"
        assert (
            main(["propagate", *args, "--out", str(out), "--channel-axis", "1", "--quiet", *FAST])
            == 0
        )
        outs.append(zarr.open_array(str(out), mode="r")[:])
    np.testing.assert_array_equal(outs[0], outs[1])
