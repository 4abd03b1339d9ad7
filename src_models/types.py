"""Plain data types shared by the engine, the backends and the napari side."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Example:
    """One labelled slice given to a backend's head.

    Attributes:
        index: position of the slice in the stack or image set.
        features: whatever the backend's ``compute_features`` returned for that slice.
        labels: (H, W) int32, 0 = background (a negative example), k > 0 = object/class k,
            -1 = unpainted in scribble mode (:data:`src_models.scribbles.UNKNOWN`): neither
            object nor background, so a backend's fit must not use those pixels.
        weight: how much the head trusts this example, in [0, 1]: 1 for a slice the person
            painted or corrected, less for a proposal accepted without an edit; 0 leaves the
            example out.
    """

    index: int
    features: Any
    labels: np.ndarray
    weight: float = 1.0


@dataclass
class SliceResult:
    """One proposal yielded by :func:`src_models.engine.propagate`.

    Attributes:
        index: position of the slice in the stack or image set.
        labels: (H, W) proposal at the slice's own size, in the ids and integer dtype of the
            example labels (uint8 for boolean examples).
        confidence: (H, W) float32 in [0, 1], the head's confidence for the chosen label.
        score: scalar float in [0, 1], the review score (:mod:`src_models.scoring`): the
            head's confidence times plausibility factors (missing object, size jump,
            fragments); low = check first.
        timings: seconds per stage, e.g. ``{"features": 0.4, "head": 0.1, "cached": 0.0}``.
        done: number of slices finished so far, including this one.
        total: number of slices this run will yield at most.
        reasons: why the score is low, e.g. ``("object missing?",)`` or ``("size ×3.0",)``.
        mean_confidence: the head's mean confidence over the predicted foreground (over the
            whole slice when nothing is predicted), without plausibility factors.
    """

    index: int
    labels: np.ndarray
    confidence: np.ndarray
    score: float
    timings: dict[str, float] = field(default_factory=dict)
    done: int = 0
    total: int = 0
    reasons: tuple[str, ...] = ()
    mean_confidence: float = 0.0


@dataclass(frozen=True)
class ExtraExamples:
    """Examples from another stack or image set (e.g. a saved head), used next to the slices
    of the current input.

    Attributes:
        images: per example, (H, W) or (H, W, C) raw pixels of any numeric dtype.
        labels: per example, (H, W) int labels (0 = background).
        weights: per example, in [0, 1] (see :class:`Example`).
    """

    images: list[np.ndarray]
    labels: list[np.ndarray]
    weights: list[float]

    def __post_init__(self) -> None:
        if not len(self.images) == len(self.labels) == len(self.weights):
            raise ValueError("give one label image and one weight per example image")
