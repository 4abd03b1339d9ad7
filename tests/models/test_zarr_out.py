"""Proposals written into a zarr store as they come: same as the TIFF, resumable, and never
written over a store the tool did not create."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from src_models.backends.classic import ClassicBackend
from src_models.cli import main
from src_models.engine import propagate
from src_models.sample_data import example_labels, synthetic_stack
from src_models.zarr_out import ZarrProposals, done_slices, open_proposals, write_proposals

zarr = pytest.importorskip("zarr")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    image, truth = synthetic_stack(n_slices=6, size=40)
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "labels.npy", example_labels(truth, 2))
    return tmp_path / "image.npy", tmp_path / "labels.npy"


def _cli(image: Path, labels: Path, out: Path, *extra: str) -> int:
    return main(
        ["propagate", str(image), "--labels", str(labels), "--out", str(out), "--quiet", *extra]
    )


def test_zarr_output_equals_the_tiff_and_a_rerun_resumes(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, labels = files
    assert _cli(image, labels, tmp_path / "out.tif") == 0
    assert _cli(image, labels, tmp_path / "out.zarr") == 0
    stored = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    assert stored.chunks == (1, 40, 40)
    np.testing.assert_array_equal(stored[:], tifffile.imread(tmp_path / "out.tif"))
    assert sorted(stored.attrs["done"]) == [0, 1, 3, 4, 5]
    capsys.readouterr()
    assert _cli(image, labels, tmp_path / "out.zarr") == 0  # nothing left: nothing proposed
    assert "0 proposed, 5 resumed" in capsys.readouterr().err
    np.testing.assert_array_equal(stored[:], tifffile.imread(tmp_path / "out.tif"))


def test_zarr_input_gives_the_npy_result(files: tuple[Path, Path], tmp_path: Path) -> None:
    image, labels = files
    for source, name in ((image, "im.zarr"), (labels, "lab.zarr")):
        data = np.load(source)
        zarr.create_array(str(tmp_path / name), shape=data.shape, dtype=data.dtype)[:] = data
    assert _cli(image, labels, tmp_path / "a.tif") == 0
    assert _cli(tmp_path / "im.zarr", tmp_path / "lab.zarr", tmp_path / "b.tif") == 0
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "a.tif"), tifffile.imread(tmp_path / "b.tif")
    )


def test_an_interrupted_run_resumes_with_only_the_rest(tmp_path: Path) -> None:
    image, truth = synthetic_stack(n_slices=8, size=40)
    labels = example_labels(truth, 3)
    full = {r.index: r.labels for r in propagate(image, labels, ClassicBackend())}
    out = tmp_path / "p.zarr"
    assert done_slices(out, labels.shape, "key", overwrite=False) == set()

    def store() -> ZarrProposals:
        return open_proposals(out, labels, np.dtype(np.int32), "key", overwrite=False)

    run = write_proposals(propagate(image, labels, ClassicBackend()), store)
    first = [next(run).index for _ in range(3)]
    run.close()  # the interruption
    assert done_slices(out, labels.shape, "key", overwrite=False) == set(first)
    rest = [i for i in range(8) if i not in set(first)]
    second = [
        r.index
        for r in write_proposals(propagate(image, labels, ClassicBackend(), targets=rest), store)
    ]
    assert sorted(second) == sorted(set(full) - set(first))
    expected = labels.copy()
    for i, lab in full.items():
        expected[i] = lab
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], expected)


def test_a_store_of_other_inputs_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[1, 2:4, 2:4] = 1
    out = tmp_path / "p.zarr"
    store = open_proposals(out, labels, np.dtype(np.uint8), "a", overwrite=False)
    store.write(0, np.ones((8, 8), np.uint8))
    with pytest.raises(ValueError, match="other inputs or options: pass --overwrite"):
        done_slices(out, labels.shape, "b", overwrite=False)
    with pytest.raises(ValueError, match="other inputs or options: pass --overwrite"):
        open_proposals(out, labels, np.dtype(np.uint8), "b", overwrite=False)
    assert done_slices(out, labels.shape, "b", overwrite=True) == set()
    assert open_proposals(out, labels, np.dtype(np.uint8), "a", overwrite=False).done == {0}
    fresh = open_proposals(out, labels, np.dtype(np.uint8), "b", overwrite=True)
    assert fresh.done == set() and int(fresh.array[0].max()) == 0


def test_a_zarr_store_the_tool_did_not_create_is_never_touched(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, labels = files
    theirs = zarr.create_array(str(tmp_path / "theirs.zarr"), shape=(6, 40, 40), dtype=np.uint8)
    theirs[:] = 7
    for extra in ((), ("--overwrite",)):
        assert _cli(image, labels, tmp_path / "theirs.zarr", *extra) == 2
        assert "not written by napari-incontext" in capsys.readouterr().err
    assert (zarr.open_array(str(tmp_path / "theirs.zarr"), mode="r")[:] == 7).all()
    assert _cli(image, labels, tmp_path / "out.zarr") == 0
    (tmp_path / "out.zarr" / "notes.txt").write_text("mine")  # someone's file inside ours
    assert _cli(image, labels, tmp_path / "out.zarr", "--overwrite") == 2
    assert "did not write (notes.txt)" in capsys.readouterr().err


def test_a_refused_input_writes_no_store(files: tuple[Path, Path], tmp_path: Path) -> None:
    image, _ = files
    np.save(tmp_path / "empty.npy", np.zeros((6, 40, 40), np.uint8))
    assert _cli(image, tmp_path / "empty.npy", tmp_path / "out.zarr") == 2  # no example
    assert not (tmp_path / "out.zarr").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.zarr")]


def test_confidence_is_written_per_slice_and_resumes_like_the_labels(tmp_path: Path) -> None:
    image, truth = synthetic_stack(n_slices=8, size=40)
    labels = example_labels(truth, 3)
    full = {r.index: r for r in propagate(image, labels, ClassicBackend())}
    out = tmp_path / "c.zarr"

    def store() -> ZarrProposals:
        return open_proposals(out, labels, np.dtype(np.int32), "k", False, confidence=True)

    run = write_proposals(propagate(image, labels, ClassicBackend()), store)
    first = [next(run).index for _ in range(3)]
    run.close()  # the interruption
    rest = [i for i in range(8) if i not in first]
    list(write_proposals(propagate(image, labels, ClassicBackend(), targets=rest), store))
    conf = zarr.open_array(str(out / "confidence"), mode="r")
    assert conf.dtype == np.float16 and conf.chunks == (1, 40, 40)
    stored = conf[:].astype(np.float32)
    assert stored.min() >= 0 and stored.max() <= 1
    for i, res in full.items():  # the resumed store equals a full run's, to float16
        np.testing.assert_array_equal(stored[i], res.confidence.astype(np.float16))
    assert stored[3].max() == 0  # the example: not proposed
    assert ZarrProposals(out, mode="r").confidence is not None


def test_cli_confidence_flag(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, labels = files
    assert _cli(image, labels, tmp_path / "a.zarr", "--confidence") == 0
    conf = zarr.open_array(str(tmp_path / "a.zarr" / "confidence"), mode="r")[:]
    assert conf.shape == (6, 40, 40) and conf[[0, 1, 3, 4, 5]].max() > 0
    assert _cli(image, labels, tmp_path / "a.zarr", "--confidence") == 0  # ours: resumed
    assert "0 proposed, 5 resumed" in capsys.readouterr().err
    assert _cli(image, labels, tmp_path / "a.zarr") == 2  # other options: --overwrite needed
    assert _cli(image, labels, tmp_path / "b.tif", "--confidence") == 2
    assert "--confidence needs" in capsys.readouterr().err


def test_without_the_flag_the_key_is_the_one_before_it(files: tuple[Path, Path]) -> None:
    from src_models.cli import build_parser
    from src_models.commands.propagate_cmd import store_key

    image, labels = files
    argv = ["propagate", str(image), "--labels", str(labels), "--out", "o.zarr"]
    args = build_parser().parse_args(argv)
    data, lab = np.load(image), np.load(labels)
    key = store_key(args, data, lab)
    del args.confidence  # a store made before --confidence existed
    assert store_key(args, data, lab) == key
    assert store_key(build_parser().parse_args([*argv, "--confidence"]), data, lab) != key
