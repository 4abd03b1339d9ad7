"""Scribble mode: unpainted pixels are unknown, a chosen label is the background class."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import ndimage as ndi

from src_models.backends.classic import ClassicBackend
from src_models.engine import propagate
from src_models.evaluation.strokes import strokes_from_truth
from src_models.inputs import prepare
from src_models.matching import painted_patches
from src_models.sample_data import synthetic_stack
from src_models.scribbles import UNKNOWN, SparseExamplesWarning, sparse_message
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example
from tests.helpers import iou
from tests.models.tiny_backends import TINY

BACKGROUND = 3  # the truth holds objects 1 and 2


@pytest.fixture(scope="module")
def scribbled() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """image (6, 64, 64), truth, and strokes on slice 3 only (0 = unpainted)."""
    image, truth = synthetic_stack(n_slices=6, size=64)
    strokes = np.zeros_like(truth)
    strokes[3] = strokes_from_truth(truth[3], BACKGROUND)
    return image, truth, strokes


def test_strokes_are_sparse_and_inside_their_class(scribbled) -> None:  # noqa: ANN001
    _, truth, strokes = scribbled
    painted = strokes[3] > 0
    assert 0 < painted.mean() < 0.1
    assert set(np.unique(strokes[3])) == {0, 1, 2, BACKGROUND}
    background = strokes[3] == BACKGROUND
    assert (truth[3][background] == 0).all()
    assert (truth[3][strokes[3] == 1] == 1).all()


def test_a_large_connected_class_gets_several_strokes_spread_over_it() -> None:
    truth = np.zeros((80, 160), np.int32)
    truth[30:50, 60:100] = 1  # one object; the background is one connected frame around it
    background = {n: strokes_from_truth(truth, 2, strokes=n) == 2 for n in (1, 3, 10)}
    assert background[1].sum() <= 200 < background[3].sum() <= background[10].sum() <= 2000
    rows, cols = np.nonzero(background[3])  # spread: not only the first rows of the frame
    assert rows.min() < 20 and rows.max() > 60 and cols.min() < 40 and cols.max() > 120
    strokes, count = ndi.label(background[1], structure=np.ones((3, 3)))
    assert count == 1  # a stroke is one connected walk along the skeleton


def test_prepare_maps_background_to_zero_and_unpainted_to_unknown(scribbled) -> None:  # noqa: ANN001
    image, _, strokes = scribbled
    data = prepare(image, strokes, unpainted="unlabelled", background_id=BACKGROUND)
    lab = data.labels[3]
    assert (lab[strokes[3] == 0] == UNKNOWN).all()
    assert (lab[strokes[3] == BACKGROUND] == 0).all()
    assert list(data.ids.table) == [0, 1, 2]  # background comes back as 0
    assert data.examples == [3]


def test_scribble_mode_refuses_missing_background_or_objects(scribbled) -> None:  # noqa: ANN001
    image, _, strokes = scribbled
    with pytest.raises(ValueError, match="paint some background with label 7"):
        prepare(image, strokes, unpainted="unlabelled", background_id=7)
    only_background = np.where(strokes == BACKGROUND, BACKGROUND, 0)
    with pytest.raises(ValueError, match="paint the objects too"):
        prepare(image, only_background, unpainted="unlabelled", background_id=BACKGROUND)
    with pytest.raises(ValueError, match="unpainted must be one of"):
        list(propagate(image, strokes, ClassicBackend(), unpainted="sparse"))


class SpyClassic(ClassicBackend):
    """Classic, keeping the labels it was fitted on and its training samples' classes."""

    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        self.labels = [e.labels for e in examples]
        self.sampled = self._sample(examples)[1]
        super().fit(examples, timer)


def test_classic_trains_on_strokes_only_and_segments_every_slice(scribbled) -> None:  # noqa: ANN001
    image, truth, strokes = scribbled
    spy = SpyClassic(TINY["classic"]({}).config)
    results = {
        r.index: r.labels
        for r in propagate(image, strokes, spy, unpainted="unlabelled", background_id=BACKGROUND)
    }
    assert sorted(results) == list(range(6))  # the scribbled slice is proposed too
    negatives = int((spy.sampled == 0).sum())
    assert 0 < negatives <= int((strokes[3] == BACKGROUND).sum())
    assert UNKNOWN not in spy.sampled
    for i, proposal in results.items():
        assert set(np.unique(proposal)) <= {0, 1, 2}
        assert iou(proposal == 1, truth[i] == 1) > 0.7, i
    # dense mode takes every unpainted pixel as background: object 1 is nearly lost
    dense = {r.index: r.labels for r in propagate(image, strokes, TINY["classic"]({}))}
    assert np.mean([iou(p == 1, truth[i] == 1) for i, p in dense.items()]) < 0.5


def test_matching_bank_takes_negatives_only_from_background_strokes(scribbled) -> None:  # noqa: ANN001
    image, _, strokes = scribbled
    backend = TINY["dinov2"]({})
    list(propagate(image, strokes, backend, unpainted="unlabelled", background_id=BACKGROUND))
    bank = backend._bank
    grid = backend.compute_features(prepare(image, strokes).images[3]).tokens.shape[:2]
    touched = painted_patches(np.where(strokes[3] == BACKGROUND, 0, -1), grid)
    assert 0 < len(bank.tokens[0]) <= int(touched.sum())
    list(propagate(image, strokes, backend))  # dense: every unpainted patch is background
    assert len(backend._bank.tokens[0]) > int(touched.sum())


def test_insid3_negatives_come_from_painted_patches_only(scribbled, monkeypatch) -> None:  # noqa: ANN001
    from src_models.heads import insid3 as head

    image, truth, _ = scribbled
    strokes = np.zeros_like(truth)
    strokes[3] = strokes_from_truth(truth[3], BACKGROUND, strokes=1, max_length=12)
    seen: list[int] = []
    make = head.make_reference

    def spy(shots, masks, negatives, weights=None):  # noqa: ANN001, ANN202
        seen.append(sum(len(n) for n in negatives))
        return make(shots, masks, negatives, weights)

    monkeypatch.setattr(head, "make_reference", spy)
    backend = TINY["dinov2-insid3"]({"input_size": 112})
    list(propagate(image, strokes, backend, unpainted="unlabelled", background_id=BACKGROUND))
    grid = backend.compute_features(prepare(image, strokes).images[3]).tokens.shape[:2]
    painted = int(painted_patches(np.where(strokes[3] > 0, 0, -1), grid).sum())
    assert len(seen) == 2 and all(0 < n <= painted for n in seen), (seen, painted)
    seen.clear()
    with pytest.warns(SparseExamplesWarning):  # dense: unpainted pixels are negatives
        list(propagate(image, strokes, backend, targets=[2]))
    assert all(n > painted for n in seen), (seen, painted)


@pytest.mark.parametrize("name", ["dinov2-sam", "dinov2-segic"])
def test_every_backend_runs_scribbles(scribbled, name: str) -> None:  # noqa: ANN001
    image, _, strokes = scribbled
    results = list(
        propagate(image, strokes, TINY[name]({}), unpainted="unlabelled", background_id=3)
    )
    assert len(results) == 6
    assert all(set(np.unique(r.labels)) <= {0, 1, 2} for r in results)


def test_dense_mode_warns_about_examples_that_look_like_scribbles(scribbled) -> None:  # noqa: ANN001
    image, truth, strokes = scribbled
    thin = np.zeros_like(strokes)
    thin[3, 10, 10:30] = 1  # 20 of 4096 pixels: 0.5%
    with pytest.warns(SparseExamplesWarning, match=r"3 \(0.5%\).*unpainted = unlabelled"):
        list(propagate(image, thin, ClassicBackend(), targets=[2]))
    dense = np.zeros_like(truth)
    dense[3] = truth[3]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SparseExamplesWarning)
        list(propagate(image, dense, ClassicBackend(), targets=[2]))
    assert sparse_message([None, truth[3]]) is None


FAST = ["--option", "sigma_max=4", "--option", "texture=false", "--option", "n_estimators=16"]


def test_cli_scribbles_give_a_mask_on_every_slice(scribbled, tmp_path, capsys) -> None:  # noqa: ANN001
    import tifffile

    from src_models.cli import main

    image, truth, strokes = scribbled
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "strokes.tif", strokes)
    args = ["propagate", str(tmp_path / "image.tif"), "--labels", str(tmp_path / "strokes.tif")]
    code = main(
        [*args, "--out", str(tmp_path / "out.tif"), "--unpainted", "unlabelled"]
        + ["--background-id", str(BACKGROUND), "--quiet", *FAST]
    )
    assert code == 0
    result = tifffile.imread(tmp_path / "out.tif")
    assert set(np.unique(result)) <= {0, 1, 2}
    assert min(iou(result[i] == 1, truth[i] == 1) for i in range(6)) > 0.7  # slice 3 too
    assert "warning" not in capsys.readouterr().err

    thin = np.zeros_like(strokes)
    thin[3, 10, 10:30] = 1
    tifffile.imwrite(tmp_path / "thin.tif", thin)
    args = ["propagate", str(tmp_path / "image.tif"), "--labels", str(tmp_path / "thin.tif")]
    assert main([*args, "--out", str(tmp_path / "dense.tif"), "--quiet", *FAST]) == 0
    err = capsys.readouterr().err.splitlines()
    warned = [line for line in err if "warning" in line]
    assert len(warned) == 1 and "unpainted = unlabelled" in warned[0]
    bad = [*args, "--out", str(tmp_path / "x.tif"), "--unpainted", "unlabelled", "--quiet"]
    assert main([*bad, "--background-id", "5"]) == 2  # no background strokes: exit 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "paint some background with label 5" in err
    assert not (tmp_path / "x.tif").exists()
