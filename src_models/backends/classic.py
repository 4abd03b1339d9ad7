"""`classic`: multiscale filter features and a random forest, no weights needed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from src_models.backends.base import BackendBase, labels_from_probs, object_ids, trusted
from src_models.backends.configs import ClassicConfig
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestClassifier


def pixel_features(image: np.ndarray, config: ClassicConfig) -> np.ndarray:
    """Multiscale intensity, edge and texture features.

    Args:
        image: (H, W, C) float32.

    Returns:
        (H, W, F) float16 (halves the cache; the forest does not need more precision).
    """
    from skimage.feature import multiscale_basic_features

    feats = multiscale_basic_features(
        image,
        intensity=True,
        edges=True,
        texture=config.texture,
        sigma_min=config.sigma_min,
        sigma_max=config.sigma_max,
        channel_axis=-1,
    )
    return feats.astype(np.float16)


def _positions(shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) float32 coordinates in [0, 1]."""
    yy, xx = np.meshgrid(
        np.linspace(0, 1, shape[0], dtype=np.float32),
        np.linspace(0, 1, shape[1], dtype=np.float32),
        indexing="ij",
    )
    return np.stack([yy, xx], axis=-1)


class ClassicBackend(BackendBase):
    """Filter-bank features + random forest trained on every example slice."""

    name = "classic"
    _models = ("_forest",)

    def __init__(self, config: ClassicConfig | None = None) -> None:
        self.config = config or ClassicConfig()
        self._forest: RandomForestClassifier | None = None
        self._classes = np.zeros(0, np.int64)

    @property
    def feature_key(self) -> str:
        c = self.config
        return f"classic:{c.sigma_min}:{c.sigma_max}:{c.texture}:{c.per_slice}"

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> np.ndarray:
        self.check_open()
        if self.config.per_slice:
            image = (image - image.mean((0, 1))) / np.maximum(image.std((0, 1)), 1e-6)
        return pixel_features(image, self.config)

    def _design(self, features: np.ndarray) -> np.ndarray:
        x = features.astype(np.float32)
        if self.config.position:
            x = np.concatenate([x, _positions(features.shape[:2])], axis=-1)
        return x.reshape(-1, x.shape[-1])

    def _sample(self, examples: Sequence[Example]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixels sampled per example and class: features, labels and sample weights.

        A weak example counts twice less: the sample budget is shared in proportion to the
        weights (many weak examples cannot crowd out a painted one), and its pixels carry
        its weight as sample weight in the forest.
        """
        rng = np.random.default_rng(self.config.seed)
        xs, ys, ws = [], [], []
        total = sum(ex.weight for ex in examples)
        for ex in examples:
            per_example = max(1, round(self.config.samples_per_class * ex.weight / total))
            x = self._design(ex.features)
            y = ex.labels.reshape(-1)
            for cls in np.unique(y[y >= 0]):  # -1: unpainted in scribble mode, never used
                idx = np.flatnonzero(y == cls)
                idx = rng.choice(idx, min(per_example, len(idx)), replace=False)
                xs.append(x[idx])
                ys.append(y[idx])
                ws.append(np.full(len(idx), ex.weight, np.float32))
        return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)

    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        from sklearn.ensemble import RandomForestClassifier

        examples = trusted(examples)
        object_ids(examples)  # validates that there is at least one label array
        x, y, w = self._sample(examples)
        c = self.config
        self._forest = RandomForestClassifier(
            n_estimators=c.n_estimators,
            max_depth=c.max_depth,
            min_samples_leaf=c.min_samples_leaf,
            n_jobs=-1,
            random_state=c.seed,
        ).fit(x, y, sample_weight=w)
        self._classes = self._forest.classes_.astype(np.int64)

    def predict(
        self, features: np.ndarray, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        self.check_open()
        if self._forest is None:
            raise RuntimeError("call fit() with at least one example before predict()")
        with timer("forest"):
            proba = self._forest.predict_proba(self._design(features)).reshape(*shape, -1)
        if self.config.smooth_sigma > 0:
            with timer("smooth"):
                proba = ndi.gaussian_filter(proba, (self.config.smooth_sigma,) * 2 + (0,))
        return labels_from_probs(proba, self._classes, axis=-1)


def build_classic_backend(config: ClassicConfig, *, device: str = "auto") -> ClassicBackend:
    """Build the classic backend; it runs on the CPU and needs no weights."""
    return ClassicBackend(config)
