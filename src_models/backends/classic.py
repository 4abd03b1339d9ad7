"""`classic`: multiscale filter features and a random forest, no weights needed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from src_models.backends.base import BackendBase, labels_from_probs, object_ids, trusted
from src_models.backends.classic_auto import (
    CONTINUOUS,
    choose_per_slice,
    choose_prior,
    continuity,
    position_helps,
    prior_ratio,
)
from src_models.backends.classic_context import context_maps, context_pays, out_of_fold
from src_models.backends.classic_features import (
    BANK_VERSION,
    gaussian,
    ilastik_scales,
    image_bank,
    upsample_grid,
)
from src_models.backends.configs import ClassicConfig
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier


def pixel_features(image: np.ndarray, config: ClassicConfig) -> np.ndarray:
    """Multiscale intensity, edge and texture features.

    Args:
        image: (H, W, C) float32, any C; with ``features="ilastik"`` 3 channels are taken
            as RGB and converted to Lab.

    Returns:
        (H, W, F) float32 (what the forest reads; float16 halved the cache but its casts cost
        a fifth of the per-slice time).
    """
    if config.features == "ilastik":
        return image_bank(image, ilastik_scales(config.sigma_min, config.sigma_max))
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
    return feats.astype(np.float32, copy=False)


def _positions(shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) float32 coordinates in [0, 1]."""
    yy, xx = np.meshgrid(
        np.linspace(0, 1, shape[0], dtype=np.float32),
        np.linspace(0, 1, shape[1], dtype=np.float32),
        indexing="ij",
    )
    return np.stack([yy, xx], axis=-1)


SERIAL_WORK = 2**20  # pixels × trees up to which one thread beats joblib's pool per call
BLOCK = 8192  # rows that every tree reads in turn while they stay in the CPU's cache
FIRST_TREES = 4  # the cascade's first trees, which every row meets
SURE = 0.95  # where the first trees' mean probability of one class reaches this, they decide


def forest_proba(
    forest: RandomForestClassifier,
    x: np.ndarray,
    extra: np.ndarray | None = None,
    cascade: bool = False,
) -> np.ndarray:
    """``forest.predict_proba([x | extra])`` for (N, F) ``x`` and (N, E) more columns
    ``extra`` (None: none), as (N, classes) float64.

    Up to :data:`SERIAL_WORK` (a slice of 256² with the default 16 trees) the trees are
    summed in this thread without per-tree checks, :data:`BLOCK` rows at a time: sklearn's
    call starts a thread pool per call and polls it with 10 ms sleeps, which cost more than
    the trees' work on small slices, and every tree reading all of ``x`` from memory in turn
    cost a third more than blocks that stay in the cache (``extra`` is joined per block, never
    copied whole). Larger inputs take sklearn's parallel path.

    With ``cascade`` (the serial path only), the first :data:`FIRST_TREES` trees see every row
    and the others only the rows where the first ones' mean stays under :data:`SURE` for every
    class; the rows they settle keep the first trees' mean. Inside large uniform regions the
    trees agree anyway: on DAVIS frames 8–9% of the rows go on, the forest does a third of
    the work, and the labels move by 0.002 mean IoU. It decides per pixel, so a structure one
    pixel wide is judged on its own pixels (a coarse grid would step over it).
    """
    trees, n_classes = forest.estimators_, len(forest.classes_)
    if x.shape[0] * len(trees) > SERIAL_WORK:
        return np.asarray(forest.predict_proba(_join(x, extra, slice(None))))
    first = FIRST_TREES if cascade and len(trees) > FIRST_TREES else len(trees)
    total = np.zeros((x.shape[0], n_classes), np.float64)
    for start in range(0, x.shape[0], BLOCK):
        rows = slice(start, start + BLOCK)
        block = np.ascontiguousarray(_join(x, extra, rows), np.float32)
        part = _tree_sum(trees[:first], block, n_classes) / first
        if first < len(trees):
            unsure = np.flatnonzero(part.max(1) < SURE)
            rest = _tree_sum(trees[first:], block[unsure], n_classes)
            part[unsure] = (part[unsure] * first + rest) / len(trees)
        total[rows] = part
    return total


def _tree_sum(trees: Sequence[DecisionTreeClassifier], x: np.ndarray, n_classes: int) -> np.ndarray:
    """(N, classes) float64 sum of the trees' class probabilities of the rows of ``x``."""
    total = np.zeros((x.shape[0], n_classes), np.float64)
    for tree in trees:  # tree_.predict is what DecisionTreeClassifier.predict_proba returns
        total += tree.tree_.predict(x)[:, :n_classes]
    return total


GRID_STEP = 2  # context stages predict every 2nd pixel of both axes (a quarter of the pixels)


def grid_proba(
    forest: RandomForestClassifier,
    x: np.ndarray,
    extra: np.ndarray | None,
    shape: tuple[int, int],
    step: int = GRID_STEP,
) -> np.ndarray:
    """:func:`forest_proba` on every ``step``-th pixel of both axes of an (H, W) slice,
    bilinear in between: (H, W, classes) float32. For the context stages, whose
    probabilities only reach the last forest smoothed (``context_maps``): the quarter of
    the work at about the same maps."""
    ys, xs = np.arange(0, shape[0], step), np.arange(0, shape[1], step)
    rows = (ys[:, None] * shape[1] + xs).ravel()
    proba = forest_proba(forest, x[rows], None if extra is None else extra[rows])
    return upsample_grid(proba.reshape(len(ys), len(xs), -1), step, shape)


def _join(x: np.ndarray, extra: np.ndarray | None, rows: slice) -> np.ndarray:
    return x[rows] if extra is None else np.concatenate([x[rows], extra[rows]], axis=1)


def _context_columns(proba: np.ndarray) -> np.ndarray:
    """(H, W, K) probabilities → their (H·W, E) context maps, the next stage's extra columns."""
    maps = context_maps(proba)
    return maps.reshape(-1, maps.shape[-1])


class ClassicBackend(BackendBase):
    """Filter-bank features + random forest trained on every example slice."""

    name = "classic"
    _models = ("_forest", "_stages")

    def __init__(self, config: ClassicConfig | None = None) -> None:
        self.config = config or ClassicConfig()
        self._forest: RandomForestClassifier | None = None
        # the auto-context stages before the last one (config.context of them)
        self._stages: list[RandomForestClassifier] | None = []
        self._classes = np.zeros(0, np.int64)
        self._prior: np.ndarray | None = None  # (K,) factors on the last forest's probabilities
        # the options left to "auto" (None), as decided by choose() and fit(); off until then
        self.choices: dict[str, float] = {}

    def _option(self, name: str) -> bool:
        value = getattr(self.config, name)
        return bool(self.choices.get(name, False) if value is None else value)

    @property
    def feature_key(self) -> str:
        c = self.config
        return (
            f"classic{BANK_VERSION}:{c.features}:{c.sigma_min}:{c.sigma_max}:{c.texture}:"
            f"{self._option('per_slice')}"
        )

    def choose(self, images: Sequence[np.ndarray], stack: bool) -> dict[str, float]:
        """Decide the data-dependent options before any feature is computed.

        Args:
            images: the run's (H, W, C) float32 slices or images.
            stack: True for a Z/T stack, False for a set of separate images.

        Returns:
            What was decided (1.0 = on): ``per_slice`` (if left to auto), ``link`` (used by
            the engine's ``link="auto"``), the measured ``drift`` and ``continuity``;
            :meth:`fit` adds ``position`` (if left to auto), ``context`` and ``prior``. Kept in
            :attr:`choices` for the run's output (the engine adds them to the first slice's
            timings as ``auto_*``).
        """
        per_slice, drift = choose_per_slice(images, stack)
        smooth = continuity(images) if stack else 0.0
        # the forests' own choices stay until fit() makes new ones: a run whose fit is skipped
        # (engine.FitMemo) predicts with the forests fitted with (or without) positions and
        # a context stage
        fitted = {k: v for k, v in self.choices.items() if k in ("position", "context", "prior")}
        self.choices = {"link": float(smooth >= CONTINUOUS), "drift": drift, "continuity": smooth}
        self.choices |= fitted
        if self.config.per_slice is None:
            self.choices["per_slice"] = float(per_slice)
        return dict(self.choices)

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> np.ndarray:
        self.check_open()
        if self._option("per_slice"):
            image = (image - image.mean((0, 1))) / np.maximum(image.std((0, 1)), 1e-6)
        return pixel_features(image, self.config)

    def _design(self, features: np.ndarray, position: bool | None = None) -> np.ndarray:
        x = np.asarray(features, np.float32)
        if self._option("position") if position is None else position:
            x = np.concatenate([x, _positions(features.shape[:2])], axis=-1)
        return x.reshape(-1, x.shape[-1])

    def _sample(
        self,
        examples: Sequence[Example],
        position: bool | None = None,
        designs: Sequence[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sampled pixels of every example: (N, F) features, (N,) labels, (N,) weights."""
        parts = self._sample_each(examples, position, designs)
        x, y, w = (np.concatenate([p[i] for p in parts]) for i in range(3))
        return x, y, w

    def _sample_each(
        self,
        examples: Sequence[Example],
        position: bool | None,
        designs: Sequence[np.ndarray] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Pixels sampled per example and class: features, labels, sample weights and the
        pixels' flat indices (the same pixels for the same examples: the rng restarts from
        the seed). ``designs``: (H·W, F) features per example instead of :meth:`_design`'s.

        A weak example counts twice less: the sample budget is shared in proportion to the
        weights (many weak examples cannot crowd out a painted one), and its pixels carry
        its weight as sample weight in the forest. With ``balance``, a class with fewer
        sampled pixels than the example's largest class has its pixels weighted up (at most
        ``max_boost`` times) so that every class of an example weighs about the same; not
        on scribbled examples, where the strokes' lengths say nothing of the classes' sizes.
        """
        c = self.config
        rng = np.random.default_rng(c.seed)
        total = sum(ex.weight for ex in examples)
        out = []
        for k, ex in enumerate(examples):
            per_example = max(1, round(c.samples_per_class * ex.weight / total))
            x = self._design(ex.features, position) if designs is None else designs[k]
            y = ex.labels.reshape(-1)
            classes = np.unique(y[y >= 0])  # -1: unpainted in scribble mode, never used
            pixels = [np.flatnonzero(y == cls) for cls in classes]
            taken = [rng.choice(i, min(per_example, len(i)), replace=False) for i in pixels]
            largest = max(len(idx) for idx in taken)
            # strokes (-1 = unpainted): their lengths say nothing about the classes' sizes
            dense = c.balance and not (y < 0).any()
            xs, ys, ws = [], [], []
            for idx in taken:
                boost = min(largest / len(idx), c.max_boost) if dense else 1.0
                xs.append(x[idx])
                ys.append(y[idx])
                ws.append(np.full(len(idx), ex.weight * boost, np.float32))
            idx = np.concatenate(taken)
            out.append((np.concatenate(xs), np.concatenate(ys), np.concatenate(ws), idx))
        return out

    def _fit_forest(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> RandomForestClassifier:
        from sklearn.ensemble import RandomForestClassifier

        c = self.config
        return RandomForestClassifier(
            n_estimators=c.n_estimators,
            max_depth=c.max_depth,
            min_samples_leaf=c.min_samples_leaf,
            n_jobs=-1,
            random_state=c.seed,
        ).fit(x, y, sample_weight=w)

    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        """Fit the forest; with ``context`` > 0, first the earlier stages, each next one
        trained on its predecessor's out-of-fold probabilities
        (:mod:`~src_models.backends.classic_context`)."""
        examples = trusted(examples)
        object_ids(examples)  # validates that there is at least one label array
        c = self.config
        if c.position is None:
            with timer("choose"):
                samples = self._sample_each(examples, position=True)
                helps = position_helps([s[:2] for s in samples], c.seed)
                self.choices["position"] = float(helps)
        staged = bool(c.context) and context_pays([ex.labels for ex in examples])
        self.choices["context"] = float(staged)
        self._stages, designs, probs = (
            self._context_stages(examples, timer) if staged else ([], None, None)
        )
        x, y, w = self._sample(examples, None, designs)
        self._forest = self._fit_forest(x, y, w)
        self._classes = self._forest.classes_.astype(np.int64)
        self._prior = self._fit_prior(examples, y, w, probs)

    def _fit_prior(
        self,
        examples: Sequence[Example],
        y: np.ndarray,
        w: np.ndarray,
        probs: list[np.ndarray] | None,
    ) -> np.ndarray | None:
        """(K,) factors on the last forest's probabilities (``config.prior``), None for none;
        an automatic choice is reported as ``prior``."""
        alpha = self.config.prior
        if alpha is None:
            self.choices["prior"] = 0.0
        if any((ex.labels < 0).any() for ex in examples):
            return None  # scribbles: the painted shares say nothing of the classes' sizes
        labels = [ex.labels for ex in examples]
        ratio = prior_ratio(labels, [ex.weight for ex in examples], y, w, self._classes)
        if alpha is None:
            alpha = 0.0 if probs is None else choose_prior(probs, labels, ratio, self._classes)
            self.choices["prior"] = alpha
        return ratio**alpha if alpha else None

    def _context_stages(
        self, examples: Sequence[Example], timer: Timer
    ) -> tuple[list[RandomForestClassifier], list[np.ndarray], list[np.ndarray]]:
        """The ``context`` forests before the last one, the last one's (H·W, F + E)
        features per example (the maps of the out-of-fold probabilities of the stage before)
        and those (H, W, K) probabilities."""
        base = [self._design(ex.features) for ex in examples]
        shapes = [ex.labels.shape[:2] for ex in examples]
        designs, stages = base, []
        for _ in range(self.config.context):
            parts = self._sample_each(examples, None, designs)
            x, y, w = (np.concatenate([p[i] for p in parts]) for i in range(3))
            stages.append(self._fit_forest(x, y, w))
            with timer("context"):
                probs = out_of_fold(
                    self._fit_forest, forest_proba, designs, parts, shapes, stages[-1].classes_
                )
            designs = [
                np.concatenate([b, _context_columns(p)], axis=1)
                for b, p in zip(base, probs, strict=True)
            ]
        return stages, designs, probs

    def predict(
        self, features: np.ndarray, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        self.check_open()
        if self._forest is None:
            raise RuntimeError("call fit() with at least one example before predict()")
        base, extra = self._design(features), None
        for forest in self._stages or ():
            with timer("forest"):
                proba = grid_proba(forest, base, extra, shape)
            with timer("context"):
                extra = _context_columns(proba)
        with timer("forest"):
            proba = forest_proba(self._forest, base, extra, cascade=True).reshape(*shape, -1)
        if self._prior is not None:
            proba = proba * self._prior
            proba /= proba.sum(-1, keepdims=True)
        if self.config.smooth_sigma > 0:
            with timer("smooth"):
                proba = gaussian(proba, self.config.smooth_sigma)
        return labels_from_probs(proba, self._classes, axis=-1)


def build_classic_backend(config: ClassicConfig, *, device: str = "auto") -> ClassicBackend:
    """Build the classic backend; it runs on the CPU and needs no weights."""
    return ClassicBackend(config)
