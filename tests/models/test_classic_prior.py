"""classic's prior correction (``prior``): balanced training's bias for small classes, kept
or taken back as the examples' out-of-fold probabilities decide."""

from __future__ import annotations

import numpy as np
import pytest

from src_models.backends import classic as classic_module
from src_models.backends.classic import ClassicBackend, ClassicConfig
from src_models.backends.classic_auto import choose_prior, foreground_iou, prior_ratio
from src_models.engine import propagate
from src_models.sample_data import example_labels, synthetic_stack

CLASSES = np.array([0, 1])


def _membranes(size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) labels: 1 = cells, 0 = one-pixel membranes every 8 pixels; and (H, W, 2)
    probabilities of a forest trained balanced: sure on membranes and cell centres, but it
    calls the cell pixels next to a membrane membrane (p = 0.6 against 0.4)."""
    labels = np.ones((size, size), np.int64)
    labels[::8] = labels[:, ::8] = 0
    near = np.zeros_like(labels, bool)
    near[1::8] = near[7::8] = near[:, 1::8] = near[:, 7::8] = True
    p_cell = np.where(labels == 0, 0.05, np.where(near, 0.4, 0.95))
    return labels, np.stack([1 - p_cell, p_cell], axis=-1)


def test_the_ratio_is_the_painted_share_over_the_trained_share() -> None:
    labels = [np.array([[0, 0, 0, 1]])]  # painted: 3/4 class 0, 1/4 class 1
    y, w = np.array([0, 0, 1, 1]), np.array([1.0, 1.0, 1.0, 1.0])  # trained: 1/2 and 1/2
    np.testing.assert_allclose(prior_ratio(labels, [1.0], y, w, CLASSES), [1.5, 0.5])
    boosted = np.array([1.0, 1.0, 3.0, 3.0])  # class 1 weighted up: trained 1/4 and 3/4
    np.testing.assert_allclose(prior_ratio(labels, [1.0], y, boosted, CLASSES), [3.0, 1 / 3])


def test_a_thin_class_thickened_by_balance_is_corrected() -> None:
    labels, probs = _membranes()
    ratio = prior_ratio([labels], [1.0], np.array([0, 1]), np.array([1.0, 1.0]), CLASSES)
    assert ratio[1] > 1  # cells are most of the painted pixels, half of the trained ones
    alpha = choose_prior([probs], [labels], ratio, CLASSES)
    assert alpha > 0
    fixed = CLASSES[(probs * ratio**alpha).argmax(-1)]
    assert foreground_iou(fixed, labels) > foreground_iou(CLASSES[probs.argmax(-1)], labels)


def test_a_small_object_keeps_the_balanced_answer() -> None:
    labels = np.zeros((40, 40), np.int64)
    labels[18:22, 18:22] = 1  # 1% of the image
    p_obj = np.where(labels == 1, 0.55, 0.02)  # found, but not by much
    probs = np.stack([1 - p_obj, p_obj], axis=-1)
    ratio = prior_ratio([labels], [1.0], np.array([0, 1]), np.array([1.0, 1.0]), CLASSES)
    assert choose_prior([probs], [labels], ratio, CLASSES) == 0.0


def _fit(
    image: np.ndarray, labels: np.ndarray, run: dict | None = None, **options: object
) -> ClassicBackend:
    backend = ClassicBackend(ClassicConfig(sigma_max=2.0, n_estimators=4, **options))
    next(propagate(image, labels, backend, targets=[0], **(run or {})))
    return backend


def test_the_choice_is_reported_and_an_explicit_value_is_used(monkeypatch) -> None:  # noqa: ANN001
    image, truth = synthetic_stack(n_slices=4, size=48, seed=1)
    labels = example_labels(truth, 2)
    monkeypatch.setattr(classic_module, "choose_prior", lambda *a, **k: 0.5)
    auto = _fit(image, labels)
    assert auto.choices["prior"] == 0.5 and auto._prior is not None
    fixed = _fit(image, labels, prior=1.0)
    assert "prior" not in fixed.choices and fixed._prior is not None
    np.testing.assert_allclose(auto._prior, fixed._prior**0.5)
    assert _fit(image, labels, prior=0.0)._prior is None
    without_context = _fit(image, labels, context=0)  # no out-of-fold probabilities
    assert without_context.choices["prior"] == 0.0 and without_context._prior is None


def test_scribbles_are_never_corrected(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(classic_module, "choose_prior", lambda *a, **k: 1.0)
    image, truth = synthetic_stack(n_slices=4, size=48, seed=1)
    strokes = np.zeros_like(truth)
    strokes[2, ::2] = truth[2, ::2] + 1  # every other row painted; 1 = background
    scribbles = {"unpainted": "unlabelled", "background_id": 1}
    backend = _fit(image, strokes, scribbles)
    assert backend.choices["prior"] == 0.0 and backend._prior is None


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_prior_out_of_range_is_refused(value: float) -> None:
    from src_models.config import build_config

    with pytest.raises(ValueError, match="prior"):
        build_config(ClassicConfig, {"prior": value})
