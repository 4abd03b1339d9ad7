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
        labels: (H, W) int32, 0 = background (a negative example), k > 0 = object/class k.
    """

    index: int
    features: Any
    labels: np.ndarray


@dataclass
class SliceResult:
    """One proposal yielded by :func:`src_models.engine.propagate`.

    Attributes:
        index: position of the slice in the stack or image set.
        labels: (H, W) proposal at the slice's own size, in the ids and integer dtype of the
            example labels (uint8 for boolean examples).
        confidence: (H, W) float32 in [0, 1], the head's confidence for the chosen label.
        score: scalar float in [0, 1], the slice's confidence (mean over predicted foreground,
            or over the whole slice when nothing is predicted).
        timings: seconds per stage, e.g. ``{"features": 0.4, "head": 0.1, "cached": 0.0}``.
        done: number of slices finished so far, including this one.
        total: number of slices this run will yield.
    """

    index: int
    labels: np.ndarray
    confidence: np.ndarray
    score: float
    timings: dict[str, float] = field(default_factory=dict)
    done: int = 0
    total: int = 0
