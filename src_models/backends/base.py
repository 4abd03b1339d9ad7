"""The backend contract: an expensive per-image step, a cheap head, typed options, timers.

A backend turns one image into features (cacheable, done once per slice), fits its head on
the example slices, and predicts labels plus a per-pixel confidence for a target slice. Its
options are a config dataclass built by :func:`src_models.config.build_config`; its stages
are timed with the :class:`~src_models.timing.Timer` the engine passes to each call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from src_models.device import default_batch_size
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a backend.

    Images reach the backend as (H, W, C) float32 with any C >= 1 (channel-last; a 3-channel
    backbone maps them with :func:`src_models.channels.to_three`) and
    intensities already scaled to about [0, 1] by :mod:`src_models.inputs`. Example labels
    are (H, W) int32 with compact ids 1..K (0 = background, -1 = unpainted in scribble mode);
    the engine maps them back to the user's ids.
    """

    name: str
    config: Any

    @property
    def feature_key(self) -> str:
        """Identity of the feature extractor (model, size, dtype), used to key the cache.

        It must change with everything that changes the features (weights, input size,
        dtype, options that alter ``compute_features``) and nothing else.
        """
        ...

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> Any:
        """The expensive per-image step.

        Args:
            image: (H, W, C) float32.
            timer: records stages (e.g. ``backbone``) of this call.

        Returns:
            An opaque object the head understands; a numpy array, a torch tensor, or a
            dataclass / tuple / dict of them, so the cache can size it.
        """
        ...

    def compute_features_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[Any]:
        """``compute_features`` of several images, in order; the model backends run the images
        of one input size in one backbone forward (:class:`BackendBase`: one at a time).
        ``timer`` records the whole batch's stages."""
        ...

    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        """Fit the head on every example slice (labels 0 = negatives, k > 0 = objects,
        -1 = unpainted in scribble mode: used neither as object nor as negative)."""
        ...

    def predict(
        self, features: Any, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predict one target slice.

        Args:
            features: the output of ``compute_features`` for the target.
            shape: (H, W) of the target image.
            timer: records head stages (e.g. ``refine``) of this call.

        Returns:
            labels (H, W) int32 with the example ids, and confidence (H, W) float32 in [0, 1].
        """
        ...

    def close(self) -> None:
        """Release the models; later calls raise ``RuntimeError``."""
        ...

    def check_open(self) -> None:
        """Raise ``RuntimeError`` when :meth:`close` was called."""
        ...


class BackendBase:
    """What every backend shares: ``close()`` and the check that it was not closed.

    Subclasses list the attributes holding models in ``_models``; ``close()`` drops them so
    their memory can be freed while the object itself may still be referenced.
    """

    name: str = "backend"
    _models: tuple[str, ...] = ()
    closed: bool = False

    def compute_features_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[Any]:
        """One ``compute_features`` call per image (a backend without batched forwards)."""
        compute = self.compute_features  # type: ignore[attr-defined]
        return [compute(image, timer) for image in images]

    @property
    def batch_size(self) -> int:
        """Slices per backbone forward: the config's ``batch_size``, else the default of the
        device the models run on (:func:`~src_models.device.default_batch_size`)."""
        chosen = getattr(getattr(self, "config", None), "batch_size", None)
        if chosen is not None:
            return int(chosen)
        devices = [getattr(getattr(self, attr, None), "device", None) for attr in self._models]
        return default_batch_size([str(getattr(d, "type", d)) for d in devices if d is not None])

    def close(self) -> None:
        self.closed = True
        for attr in self._models:
            setattr(self, attr, None)

    def check_open(self) -> None:
        """Raise ``RuntimeError`` when :meth:`close` was called."""
        if self.closed:
            raise RuntimeError(f"the {self.name} backend was closed: build a new one to run again")


def trusted(examples: Sequence[Example]) -> list[Example]:
    """The examples with a positive weight (weight 0 leaves an example out of the fit).

    Raises ``ValueError`` when none is left.
    """
    kept = [e for e in examples if e.weight > 0]
    if not kept:
        raise ValueError("every example has weight 0: paint or correct at least one slice")
    return kept


def example_weights(examples: Sequence[Example]) -> list[float]:
    """The weight of each example, in order."""
    return [float(e.weight) for e in examples]


def object_ids(examples: Sequence[Example]) -> np.ndarray:
    """Sorted nonzero label ids present in the examples, (K,) int64."""
    ids = np.unique(np.concatenate([np.unique(e.labels) for e in examples]))
    return ids[ids > 0].astype(np.int64)


def labels_from_probs(
    probs: np.ndarray, classes: np.ndarray, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel argmax of class probabilities.

    Args:
        probs: (K+1, H, W) float class probabilities (``axis=0``) or (H, W, K+1) (``axis=-1``).
        classes: (K+1,) label id of each class (0 = background first, by convention).
        axis: the class axis of ``probs``.

    Returns:
        labels (H, W) int32 and confidence (H, W) float32 in [0, 1] (the winner's probability).
    """
    best = probs.argmax(axis)
    confidence = np.take_along_axis(probs, np.expand_dims(best, axis), axis).squeeze(axis)
    labels = np.asarray(classes)[best].astype(np.int32)
    return labels, np.clip(confidence, 0, 1).astype(np.float32)
