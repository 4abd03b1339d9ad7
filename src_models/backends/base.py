"""The backend protocol: an expensive per-image step and a cheap head.

A backend turns one image into features (cacheable, done once per slice), fits its head
on the example slices, and predicts labels plus a per-pixel confidence for a target slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from src_models.types import Example


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a backend.

    Images reach the backend as (H, W, C) float32 with C in {1, 3} (channel-last) and
    intensities already scaled to about [0, 1] by :mod:`src_models.inputs`.
    """

    name: str

    @property
    def feature_key(self) -> str:
        """Identity of the feature extractor (model, size, dtype), used to key the cache."""
        ...

    def compute_features(self, image: np.ndarray) -> Any:
        """The expensive per-image step.

        Args:
            image: (H, W, C) float32.

        Returns:
            An opaque object the head understands; a numpy array, a torch
            tensor, or a dataclass / tuple / dict of them, so the cache can size it.
        """
        ...

    def fit(self, examples: Sequence[Example]) -> None:
        """Fit the head on every example slice (labels 0 = negatives, k > 0 = objects)."""
        ...

    def predict(self, features: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Predict one target slice.

        Args:
            features: the output of ``compute_features`` for the target.
            shape: (H, W) of the target image.

        Returns:
            labels (H, W) int32 with the example ids, and confidence (H, W) float32 in [0, 1].
        """
        ...


def object_ids(examples: Sequence[Example]) -> np.ndarray:
    """Sorted nonzero label ids present in the examples, (K,) int64."""
    ids = np.unique(np.concatenate([np.unique(e.labels) for e in examples]))
    return ids[ids != 0].astype(np.int64)
