"""classic's auto-context stages (``context``): out-of-fold training, determinism, options."""

from __future__ import annotations

import numpy as np
import pytest

from src_models.backends import classic as classic_module
from src_models.backends.classic import ClassicBackend, ClassicConfig
from src_models.backends.classic_context import context_maps, out_of_fold, pixel_folds
from src_models.config import build_config
from src_models.engine import propagate
from src_models.sample_data import example_labels, synthetic_stack
from tests.helpers import iou


def _run(image: np.ndarray, truth: np.ndarray, **options: int) -> dict[int, np.ndarray]:
    backend = ClassicBackend(ClassicConfig(**options))
    return {r.index: r.labels for r in propagate(image, example_labels(truth, 3), backend)}


def test_a_context_stage_segments_a_stack_and_changes_the_answer_deterministically() -> None:
    image, truth = synthetic_stack(n_slices=8, size=72, seed=3)
    plain = _run(image, truth, context=0)
    staged = _run(image, truth, context=1)
    again = _run(image, truth, context=1)
    assert all(np.array_equal(staged[i], again[i]) for i in staged)
    assert any(not np.array_equal(staged[i], plain[i]) for i in staged)
    scores = [iou(staged[i] == 1, truth[i] == 1) for i in staged]
    assert np.mean(scores) > 0.85


def test_the_next_stage_reads_out_of_fold_probabilities(monkeypatch) -> None:  # noqa: ANN001
    calls = []

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args)
        return out_of_fold(*args, **kwargs)

    monkeypatch.setattr(classic_module, "out_of_fold", spy)
    image, truth = synthetic_stack(n_slices=4, size=48, seed=1)  # ≥ 32² painted pixels
    backend = ClassicBackend(ClassicConfig(context=2))
    list(propagate(image, example_labels(truth, 0), backend))
    assert len(calls) == 2 and len(backend._stages or []) == 2


def test_no_pixel_is_predicted_by_a_forest_that_saw_its_fold() -> None:
    shape = (40, 24)
    pixels = np.arange(shape[0] * shape[1])
    design = pixels[:, None].astype(np.float32)  # a pixel's only feature: its flat index
    labels = (pixels % 3 == 0).astype(np.int64)
    sampled = pixels[::2]
    sample = (design[sampled], labels[sampled], np.ones(len(sampled), np.float32), sampled)
    trained: list[set[int]] = []

    class Memo:
        classes_ = np.array([0, 1])

        def __init__(self, x: np.ndarray) -> None:
            self.seen = set(x[:, 0].astype(int).tolist())

    def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Memo:
        trained.append(set(x[:, 0].astype(int).tolist()))
        return Memo(x)

    def predict(forest: Memo, x: np.ndarray) -> np.ndarray:
        assert forest.seen.isdisjoint(x[:, 0].astype(int).tolist())
        return np.tile([0.25, 0.75], (len(x), 1))

    probs = out_of_fold(fit, predict, [design], [sample], [shape], np.array([0, 1]))
    assert len(trained) == 2 and trained[0] and trained[1]
    assert probs[0].shape == (*shape, 2) and np.allclose(probs[0][..., 1], 0.75)


def test_folds_are_balanced_blocks_and_context_maps_drop_the_redundant_class() -> None:
    folds = pixel_folds((64, 48))
    assert set(np.unique(folds)) == {0, 1} and abs(folds.mean() - 0.5) < 0.1
    proba = np.random.default_rng(0).dirichlet((1, 1, 1), size=(10, 12)).astype(np.float32)
    maps = context_maps(proba)
    assert maps.shape == (10, 12, 2 * 5) and np.array_equal(maps[..., :2], proba[..., 1:])


@pytest.mark.parametrize("value", [-1, 4])
def test_context_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match="context"):
        build_config(ClassicConfig, {"context": value})
    assert build_config(ClassicConfig, {"context": "2"}).context == 2


def test_examples_too_small_for_out_of_fold_training_skip_the_stage() -> None:
    image, truth = synthetic_stack(n_slices=6, size=24, seed=3)  # 24² < 32² painted pixels
    small = ClassicBackend(ClassicConfig(context=1))
    staged = {r.index: r.labels for r in propagate(image, example_labels(truth, 3), small)}
    assert small.choices["context"] == 0.0 and not small._stages
    plain = _run(image, truth, context=0)
    assert all(np.array_equal(staged[i], plain[i]) for i in staged)
    image, truth = synthetic_stack(n_slices=6, size=40, seed=3)  # 40² ≥ 32²: staged
    large = ClassicBackend(ClassicConfig(context=1))
    list(propagate(image, example_labels(truth, 3), large))
    assert large.choices["context"] == 1.0 and len(large._stages) == 1
