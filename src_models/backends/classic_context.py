"""`classic`'s auto-context (ilastik's "autocontext"): a further forest that also reads the
previous stage's class probabilities, smoothed at a few scales.

A forest's probabilities on the pixels it was trained on are overconfident, so the next stage
must not learn from them: on the example slices they are predicted *out of fold*. Each example
is cut into square blocks assigned to ``folds`` folds in a diagonal pattern; for every fold a
forest is fitted on the sampled pixels of the other folds and predicts that fold's pixels. The
next stage then learns from probabilities like those it will see on a new slice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from src_models.backends.classic_features import gaussian

CONTEXT_SIGMAS = (1.0, 2.0, 4.0, 8.0)  # Gaussian σ (pixels) of the probability maps
FOLDS = 2
# fewer painted pixels than this in all examples together: no context stage. Each fold's
# forest then learns from a few hundred pixels and its probabilities are noise (a 16²
# example: mean IoU 0.60 without the stage, 0.47 with it; a 51 × 35 MRI slice still gains)
MIN_CONTEXT_PIXELS = 32 * 32


def context_pays(labels: Sequence[np.ndarray]) -> bool:
    """True when the examples' painted pixels (labels ≥ 0 of each (H, W) map; -1 =
    unpainted) are enough for out-of-fold training (:data:`MIN_CONTEXT_PIXELS`)."""
    return sum(int(np.count_nonzero(np.asarray(lab) >= 0)) for lab in labels) >= MIN_CONTEXT_PIXELS


def context_maps(proba: np.ndarray) -> np.ndarray:
    """Smoothed probability maps, the context features of the next stage.

    Args:
        proba: (H, W, K) class probabilities, K ≥ 1.

    Returns:
        (H, W, max(K − 1, 1) · (1 + len(CONTEXT_SIGMAS))) float32: every class's probability
        but the first (they sum to 1, so it adds nothing) and its Gaussian at each σ.
    """
    p = np.asarray(proba[..., 1:] if proba.shape[-1] > 1 else proba, np.float32)
    maps = [p] + [gaussian(p, s) for s in CONTEXT_SIGMAS]
    return np.concatenate(maps, axis=-1)


def pixel_folds(shape: tuple[int, int], folds: int = FOLDS) -> np.ndarray:
    """(H·W,) int fold of every pixel: blocks of about 1/8 of the short side (4–64 px),
    fold = (block row + block column) mod ``folds`` (a checkerboard for 2 folds)."""
    block = int(np.clip(min(shape) // 8, 4, 64))
    by = np.arange(shape[0]) // block
    bx = np.arange(shape[1]) // block
    return ((by[:, None] + bx[None, :]) % folds).ravel()


def _place(proba: np.ndarray, seen: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(N, len(seen)) probabilities over the classes a forest saw → (N, len(classes))."""
    out = np.zeros((proba.shape[0], len(classes)), np.float32)
    out[:, np.searchsorted(classes, seen)] = proba
    return out


def out_of_fold(
    fit: Callable[[np.ndarray, np.ndarray, np.ndarray], Any],
    predict: Callable[[Any, np.ndarray], np.ndarray],
    designs: Sequence[np.ndarray],
    samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    shapes: Sequence[tuple[int, int]],
    classes: np.ndarray,
    folds: int = FOLDS,
) -> list[np.ndarray]:
    """Class probabilities of every example pixel from forests that never saw its fold.

    Args:
        fit: (x (N, F), y (N,), w (N,)) → a fitted forest with ``classes_``.
        predict: (forest, x (P, F)) → (P, len(forest.classes_)) probabilities.
        designs: per example, (H·W, F) float32 features of every pixel.
        samples: per example, the sampled pixels' (features, labels, weights, flat indices).
        shapes: per example, (H, W).
        classes: (K,) sorted class ids of all examples.

    Returns:
        Per example, (H, W, K) float32; a fold whose complement has no sampled pixel gets
        uniform probabilities.
    """
    fold_of = [pixel_folds(shape, folds) for shape in shapes]
    out = [np.full((len(d), len(classes)), 1.0 / len(classes), np.float32) for d in designs]
    for f in range(folds):
        keep = [fo[s[3]] != f for fo, s in zip(fold_of, samples, strict=True)]
        x, y, w = (
            np.concatenate([s[i][k] for s, k in zip(samples, keep, strict=True)]) for i in range(3)
        )
        if len(y) == 0:
            continue
        forest = fit(x, y, w)
        for design, fo, proba in zip(designs, fold_of, out, strict=True):
            pixels = np.flatnonzero(fo == f)
            proba[pixels] = _place(predict(forest, design[pixels]), forest.classes_, classes)
    return [p.reshape(*shape, -1) for p, shape in zip(out, shapes, strict=True)]
