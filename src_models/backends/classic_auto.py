"""`classic`'s automatic choices: per-slice standardisation, position features, linking.

Rules (kept simple so that a user can predict them):

- ``per_slice``: on for a set of separate images; on for a stack whose brightness drifts,
  i.e. whose slice medians spread more than ``DRIFT`` of the typical within-slice spread
  (the median is robust to the content moving, a drift of the whole slice moves it).
- ``position``: with examples on two or more slices, a small forest is fitted on each example
  and scored on the others with and without (y, x); position is kept only if it wins. With one
  example there is nothing to check it against, so it stays off.
- ``link``: on for stacks whose neighbouring slices look alike at a coarse scale (median
  correlation of 32-pixel thumbnails ≥ ``CONTINUOUS``: video, Z stacks of one volume), where
  objects move little between slices; off for image sets and for jumpy stacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# slice-median spread / within-slice spread above which a stack counts as drifting
DRIFT = 0.12
# median correlation of neighbouring thumbnails above which a stack counts as continuous
CONTINUOUS = 0.6


def _thumbnail(image: np.ndarray, size: int = 32) -> np.ndarray:
    """Block-mean thumbnail, about ``size`` pixels on the short side, z-scored, flattened."""
    f = max(1, min(image.shape[:2]) // size)
    h, w = image.shape[0] // f * f, image.shape[1] // f * f
    b = image[:h, :w].reshape(h // f, f, w // f, f, -1).mean((1, 3)).ravel()
    return (b - b.mean()) / (b.std() + 1e-6)


def continuity(images: Sequence[np.ndarray]) -> float:
    """Median correlation of neighbouring slices' thumbnails, in [-1, 1] (0: one slice)."""
    thumbs = [_thumbnail(im) for im in images]
    corr = [float(np.mean(a * b)) for a, b in zip(thumbs[:-1], thumbs[1:], strict=True)]
    return float(np.median(corr)) if corr else 0.0


def brightness_drift(images: Sequence[np.ndarray]) -> float:
    """Spread of the slice medians relative to the within-slice spread.

    Args:
        images: (H, W, C) float32 slices.

    Returns:
        std over slices of each slice's median, over the mean interquartile range of a
        slice (both averaged over channels); 0 for a single slice.
    """
    if len(images) < 2:
        return 0.0
    step = [max(1, int(np.sqrt(im.shape[0] * im.shape[1] / 65_536))) for im in images]
    quartiles = (
        np.percentile(im[::s, ::s], (25, 50, 75), axis=(0, 1))
        for im, s in zip(images, step, strict=True)
    )
    q = np.array(list(quartiles))
    spread = float(np.mean(q[:, 2] - q[:, 0]))
    return float(np.mean(q[:, 1].std(0))) / max(spread, 1e-6)


def choose_per_slice(images: Sequence[np.ndarray], stack: bool) -> tuple[bool, float]:
    """(per_slice, drift): see the module's rule."""
    drift = brightness_drift(images)
    return (not stack) or drift > DRIFT, drift


def position_helps(samples: Sequence[tuple[np.ndarray, np.ndarray]], seed: int) -> bool:
    """Cross-validate position features between example slices.

    Args:
        samples: per example slice, (N, F + 2) float32 sampled pixels whose last two columns
            are (y, x), and their (N,) labels.

    Returns:
        True when the mean balanced accuracy on held-out slices is higher with position.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import balanced_accuracy_score

    if len(samples) < 2:
        return False
    scores = {False: [], True: []}  # type: dict[bool, list[float]]
    for held in range(len(samples)):
        x_test, y_test = samples[held]
        train = [s for i, s in enumerate(samples) if i != held]
        x_train = np.concatenate([s[0] for s in train])
        y_train = np.concatenate([s[1] for s in train])
        for with_pos in (False, True):
            cols = slice(None) if with_pos else slice(0, -2)
            forest = RandomForestClassifier(8, max_depth=12, n_jobs=-1, random_state=seed)
            forest.fit(x_train[:, cols], y_train)
            pred = forest.predict(x_test[:, cols])
            scores[with_pos].append(balanced_accuracy_score(y_test, pred))
    return float(np.mean(scores[True])) > float(np.mean(scores[False]))


PRIOR_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0)  # exponents of the prior correction tried
PRIOR_GAIN = 0.005  # out-of-fold IoU a correction must gain over none to be chosen


def prior_ratio(
    labels: Sequence[np.ndarray],
    weights: Sequence[float],
    y: np.ndarray,
    w: np.ndarray,
    classes: np.ndarray,
) -> np.ndarray:
    """How much rarer each class is in the forest's training set than in the examples.

    The forest learns from a class-balanced sample (``samples_per_class`` per class, small
    classes weighted up), so its probabilities favour small classes; multiplying them by
    this ratio (to some power, :func:`choose_prior`) moves them back towards the examples'
    class shares.

    Args:
        labels: per example, (H, W) int painted labels (dense: no -1).
        weights: per example, its weight.
        y: (N,) labels of the sampled pixels; w: (N,) their sample weights.
        classes: (K,) sorted class ids.

    Returns:
        (K,) float64: painted share / trained share of each class.
    """
    painted = np.zeros(len(classes))
    for lab, weight in zip(labels, weights, strict=True):
        ids, counts = np.unique(lab, return_counts=True)
        painted[np.searchsorted(classes, ids)] += weight * counts
    trained = np.array([w[y == c].sum() for c in classes], np.float64)
    return (painted / painted.sum()) / np.maximum(trained / trained.sum(), 1e-12)


def foreground_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean IoU of the ids ≠ 0 present in (H, W) ``truth`` (1.0 if it has none)."""
    ious = [
        np.count_nonzero((pred == k) & (truth == k)) / np.count_nonzero((pred == k) | (truth == k))
        for k in np.unique(truth)
        if k != 0
    ]
    return float(np.mean(ious)) if ious else 1.0


def choose_prior(
    probs: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    ratio: np.ndarray,
    classes: np.ndarray,
) -> float:
    """The exponent α of the prior correction ``proba · ratio**α`` that labels the examples
    best from out-of-fold probabilities (:mod:`~src_models.backends.classic_context`).

    Balanced training is what small objects need, yet where a class is thin and everywhere
    (EM membranes) it thickens it at the cost of the others; the examples decide.

    Args:
        probs: per example, (H, W, K) out-of-fold class probabilities.
        labels: per example, (H, W) int painted labels.
        ratio: (K,) :func:`prior_ratio`.
        classes: (K,) sorted class ids.

    Returns:
        α in :data:`PRIOR_STEPS` with the best mean foreground IoU, 0 unless another gains at
        least :data:`PRIOR_GAIN`.
    """

    def score(alpha: float) -> float:
        return float(
            np.mean(
                [
                    foreground_iou(classes[(p * ratio**alpha).argmax(-1)], lab)
                    for p, lab in zip(probs, labels, strict=True)
                ]
            )
        )

    scores = {alpha: score(alpha) for alpha in PRIOR_STEPS}
    best = max(scores, key=lambda a: scores[a])
    return best if scores[best] >= scores[0.0] + PRIOR_GAIN else 0.0
