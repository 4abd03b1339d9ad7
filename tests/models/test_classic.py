"""The classic backend on synthetic data and under geometric transforms."""

from __future__ import annotations

import numpy as np

from src_models.backends.classic import ClassicBackend, ClassicConfig
from src_models.engine import propagate
from src_models.sample_data import example_labels, synthetic_stack
from tests.helpers import iou


def test_identity_shift_and_flip_return_the_mask(geometry_stack) -> None:
    stack, examples, truth = geometry_stack
    for res in propagate(stack, examples, ClassicBackend()):
        for k in (1, 2):
            assert iou(res.labels == k, truth[res.index] == k) >= 0.9, (res.index, k)


def test_textured_shapes_are_found_across_a_stack() -> None:
    image, truth = synthetic_stack(n_slices=10, size=80, seed=3)
    scores = [
        iou(res.labels == 1, truth[res.index] == 1)
        for res in propagate(image, example_labels(truth, 5), ClassicBackend())
    ]
    assert np.mean(scores) > 0.85
    copy = np.mean([iou(truth[5] == 1, truth[i] == 1) for i in range(10) if i != 5])
    assert np.mean(scores) > copy  # better than copying the example to every slice


def test_confidence_is_lower_where_the_answer_is_unclear() -> None:
    image, truth = synthetic_stack(n_slices=4, size=64)
    labels = example_labels(truth, 0)
    noisy = image.astype(np.float64)
    noisy[3] = np.random.default_rng(0).uniform(noisy.min(), noisy.max(), noisy[3].shape)
    results = {
        r.index: r for r in propagate(noisy, labels, ClassicBackend(ClassicConfig(smooth_sigma=0)))
    }
    assert results[3].confidence.mean() < results[1].confidence.mean()


def test_position_features_change_the_design_matrix() -> None:
    features = np.zeros((6, 5, 4), np.float16)
    plain = ClassicBackend()._design(features)
    placed = ClassicBackend(ClassicConfig(position=True))._design(features)
    assert plain.shape == (30, 4) and placed.shape == (30, 6)
    assert placed[-1, -2:].tolist() == [1.0, 1.0]


def test_per_slice_standardisation_copes_with_brightness_drift() -> None:
    image, truth = synthetic_stack(n_slices=6, size=64, seed=2)
    drifted = image.astype(np.float64)
    for z in range(6):
        drifted[z] = drifted[z] * (1.0 + 0.35 * z) + 3000.0 * z  # gain and offset per section
    labels = example_labels(truth, 0)

    def mean_iou(config: ClassicConfig) -> float:
        return float(
            np.mean(
                [
                    iou(r.labels == 1, truth[r.index] == 1)
                    for r in propagate(drifted, labels, ClassicBackend(config))
                ]
            )
        )

    plain = mean_iou(ClassicConfig(per_slice=False))
    standardised = mean_iou(ClassicConfig(per_slice=True))
    assert standardised > 0.85 and standardised > plain + 0.2
