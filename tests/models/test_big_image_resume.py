"""A big image's zarr output resumes after an interruption: the bands written completely
are skipped (their tiles not read again, beyond the row of tiles that overlaps the first
unfinished band), the rest equals an uninterrupted run bit for bit, a rerun of other
inputs or options is refused, and the store records the run and its mean confidence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from src_models.big_image import ImageBand, propagate_image, resume_bands, write_image
from src_models.cli import main
from src_models.tiling import grid_for
from src_models.zarr_out import ZarrProposals
from tests.models.test_big_image import Counting, _classic
from tests.models.test_big_image_cli import OPTIONS, _save
from tests.models.test_big_image_cli import scene as scene  # noqa: F401 (fixture)

zarr = pytest.importorskip("zarr")


@pytest.fixture(scope="module")
def tall(scene: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(example image, its labels, a 384 × 192 uint8 target: 6 bands of tiles of 80)."""
    image, labels = scene
    image = (image.astype(np.float64) * 255 / image.max()).astype(np.uint8)
    target = np.concatenate([image, image[::-1]])
    painted = labels > 0
    rows, cols = np.nonzero(painted)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    return image[box], labels[box], target


def _run(
    target: Any, example: tuple[np.ndarray, np.ndarray], out: Path, skip: Any = ()
) -> Iterator[ImageBand]:
    bands = propagate_image(target, [example], _classic(), skip=skip)
    return write_image(bands, out, np.dtype(np.uint16), target.shape, True, key="k")


def _store(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    labels = zarr.open_array(str(path), mode="r")
    conf = zarr.open_array(str(path / "confidence"), mode="r")
    return labels[:], conf[:], dict(labels.attrs)


def _fail_on(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """``ZarrProposals.mark_done`` raises on its ``call``-th call: a kill after that band's
    data is written, before it is marked done."""
    real, calls = ZarrProposals.mark_done, []

    def mark_done(self: ZarrProposals, index: int, **more: Any) -> None:
        calls.append(index)
        if len(calls) == call:
            raise KeyboardInterrupt("killed")
        real(self, index, **more)

    monkeypatch.setattr(ZarrProposals, "mark_done", mark_done)


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(
    tall: tuple[np.ndarray, np.ndarray, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    crop, painted, target = tall
    grid = grid_for(_classic(), target.shape)
    assert grid is not None and len(grid.bands()) == 6
    full = list(_run(target, (crop, painted), tmp_path / "full.zarr"))
    assert [b.top for b in full] == [b.start for b in grid.bands()]

    out = tmp_path / "cut.zarr"
    with monkeypatch.context() as patch:
        _fail_on(patch, 4)  # bands 0-2 done, band 3's data written, not marked
        with pytest.raises(KeyboardInterrupt):
            list(_run(target, (crop, painted), out))
    done = resume_bands(out, target.shape, "k")
    assert done == {b.start for b in grid.bands()[:3]}
    lazy = Counting(target)
    resumed = list(_run(lazy, (crop, painted), out, skip=done))
    assert [b.top for b in resumed] == [b.start for b in grid.bands()[3:]]
    # tiles of the rows that overlap bands 3-5 only: the one above band 3 again, not 0-1
    needed = grid.tile_rows_for(done)
    assert needed == [False, False, True, True, True, True]
    assert len(lazy.reads) == sum(needed) * len(grid.starts(1)) < len(grid)

    labels, conf, attrs = _store(out)
    want_labels, want_conf, want_attrs = _store(tmp_path / "full.zarr")
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_array_equal(conf, want_conf)
    for name in ("done", "bands", "mean_confidence", "key"):
        assert attrs[name] == want_attrs[name], name
    assert 0 < attrs["mean_confidence"] <= 1


def test_a_finished_store_is_neither_refitted_nor_read_and_others_are_refused(
    tall: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    crop, painted, target = tall
    out = tmp_path / "out.zarr"
    list(_run(target, (crop, painted), out))
    done = resume_bands(out, target.shape, "k")
    lazy = Counting(target)
    assert list(_run(lazy, (crop, painted), out, skip=done)) == [] and lazy.reads == []
    with pytest.raises(ValueError, match="other inputs or options: pass --overwrite"):
        resume_bands(out, target.shape, "another key")
    assert resume_bands(out, target.shape, "another key", overwrite=True) == set()
    assert resume_bands(tmp_path / "new.zarr", target.shape, "k") == set()


def _cli(tmp_path: Path, image: np.ndarray, labels: np.ndarray) -> list[str]:
    source = _save(tmp_path / "image.npy", image)
    painted = _save(tmp_path / "labels.npy", labels)
    return ["propagate", str(source), "--labels", str(painted), *OPTIONS, "--confidence"]


def test_the_cli_resumes_records_the_run_and_refuses_other_options(
    scene: tuple[np.ndarray, np.ndarray],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    args = _cli(tmp_path, *scene)
    full, cut = tmp_path / "full.zarr", tmp_path / "cut.zarr"
    assert main([*args, "--out", str(full)]) == 0
    with monkeypatch.context() as patch:
        _fail_on(patch, 3)  # killed after band 2's data, before it is marked done
        assert main([*args, "--out", str(cut)]) != 0
    assert _store(cut)[2]["done"] == [0, 56]
    capsys.readouterr()
    assert main([*args, "--out", str(cut)]) == 0
    assert "112 of 192 rows resumed" in capsys.readouterr().err
    labels, conf, attrs = _store(cut)
    want_labels, want_conf, want_attrs = _store(full)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_array_equal(conf, want_conf)
    assert attrs["mean_confidence"] == want_attrs["mean_confidence"]
    run = attrs["run"]
    assert run == want_attrs["run"] and run["backend"] == "classic"
    assert run["options"]["tile_size"] == 80 and run["options"]["n_estimators"] == 8
    assert "per_slice" in run["automatic_choices"] and run["unpainted"] == "background"
    assert run["tiles"] == {"tile": 80, "overlap": 16, "tiles": 9}

    capsys.readouterr()
    assert main([*args, "--out", str(cut), "--option=n_estimators=9"]) == 2
    err = capsys.readouterr().err
    assert "other inputs or options: pass --overwrite" in err and len(err.splitlines()) == 1
    image, labels_in = scene
    moved = np.roll(labels_in, 8, axis=1)  # other labels, same files' names
    assert main([*_cli(tmp_path, image, moved), "--out", str(cut)]) == 2
    np.testing.assert_array_equal(_store(cut)[0], want_labels)  # untouched


def test_a_big_image_with_a_scheduler_is_refused_in_one_line(
    scene: tuple[np.ndarray, np.ndarray],  # noqa: F811
    tmp_path: Path,
    capsys: Any,
) -> None:
    out = tmp_path / "out.zarr"
    assert main([*_cli(tmp_path, *scene), "--out", str(out), "--scheduler", "local"]) == 2
    err = capsys.readouterr().err
    assert "drop --scheduler" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_band_needs_every_tile_row_that_overlaps_it() -> None:
    from src_models.tiling import TileGrid

    grid = TileGrid((17, 17), 10, 4)  # rows start at 0, 4, 7: row 0 still reaches band 2
    assert [(b.start, b.stop) for b in grid.bands()] == [(0, 4), (4, 7), (7, 17)]
    assert grid.tile_rows_for({0, 4}) == [True, True, True]
    assert grid.tile_rows_for({0, 4, 7}) == [False, False, False]
    wide = TileGrid((40, 17), 10, 2)  # rows start at 0, 8, 15, 22, 30
    assert grid.tile_rows_for(()) == [True] * 3
    assert wide.tile_rows_for({0, 8, 15}) == [False, False, True, True, True]
