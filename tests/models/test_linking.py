"""Linking proposals along a stack (the engine's ``link`` option)."""

from __future__ import annotations

import numpy as np

from src_models.backends.classic import ClassicBackend
from src_models.engine import propagate
from src_models.linking import keep_linked, neighbour_toward_examples
from tests.helpers import iou


def test_neighbour_is_taken_toward_the_nearest_example() -> None:
    assert neighbour_toward_examples(5, [2]) == 4
    assert neighbour_toward_examples(0, [2, 9]) == 1
    assert neighbour_toward_examples(8, [2, 9]) == 9


def test_only_components_touching_the_reference_survive() -> None:
    labels = np.zeros((20, 20), np.int32)
    labels[2:6, 2:6] = 1  # overlaps the reference
    labels[12:16, 12:16] = 1  # a look-alike far away
    reference = np.zeros_like(labels)
    reference[3:7, 3:7] = 1
    confidence = np.full(labels.shape, 0.9, np.float32)
    out, conf = keep_linked(labels, confidence, reference, radius=2)
    assert out[2:6, 2:6].all() and not out[12:16, 12:16].any()
    np.testing.assert_allclose(conf[12:16, 12:16], 0.1, rtol=1e-6)
    assert conf[2:6, 2:6].min() == np.float32(0.9)


def _blob_and_newcomer(n: int = 7, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A bright square drifting right, and from slice 5 on a look-alike far from it."""
    rng = np.random.default_rng(0)
    image = 0.1 + 0.02 * rng.standard_normal((n, size, size))
    truth = np.zeros((n, size, size), np.int32)
    for z in range(n):
        image[z, 8:22, 10 + 2 * z : 24 + 2 * z] += 0.7
        truth[z, 8:22, 10 + 2 * z : 24 + 2 * z] = 1
        if z >= 5:
            image[z, 44:58, 40:54] += 0.7
    return image.astype(np.float32), truth


def test_link_drops_proposals_that_continue_no_object() -> None:
    image, truth = _blob_and_newcomer()
    labels = np.zeros_like(truth)
    labels[1] = truth[1]
    free = {r.index: r.labels for r in propagate(image, labels, ClassicBackend(), link=False)}
    linked = {r.index: r.labels for r in propagate(image, labels, ClassicBackend(), link=True)}
    assert free[6][44:58, 40:54].mean() > 0.9  # the per-slice classifier takes the newcomer
    assert not linked[6][44:58, 40:54].any()  # linking does not
    assert min(iou(linked[i] == 1, truth[i] == 1) for i in linked) > 0.9
