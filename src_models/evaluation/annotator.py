"""Simulated annotator: measures how many corrections the accept/correct loop needs.

Round 0 labels one slice with ground truth and propagates. Each later round takes one
proposal still below the IoU target (the least confident one, or the worst one for the
oracle variant), replaces it with ground truth as a new example and propagates again with
the same :class:`~src_models.cache.FeatureCache`, so only the head re-runs. Proposals that
already meet the target are taken as accepted by the simulated person.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.engine import propagate
from src_models.evaluation.metrics import object_ious
from src_models.evaluation.protocols import Progress, default_start
from src_models.evaluation.results import Link

PICKS = ("confidence", "worst")


@dataclass(frozen=True)
class AnnotatorConfig:
    """How the simulated person works.

    Attributes:
        target_iou: a slice is done when its IoU (mean over classes) reaches this.
        budget: most corrections allowed (None = one per slice).
        pick: "confidence" (least confident failing proposal) or "worst" (oracle: lowest IoU).
        start: the first labelled slice (None = ``protocols.default_start``).
        link: the engine's ``link`` option for every run ("auto": the product's default).
    """

    target_iou: float = 0.9
    budget: int | None = None
    pick: str = "confidence"
    start: int | None = None
    link: Link = "auto"

    def __post_init__(self) -> None:
        if self.pick not in PICKS:
            raise ValueError(f"pick must be one of {', '.join(PICKS)}, got {self.pick!r}")
        if not 0 < self.target_iou <= 1:
            raise ValueError(f"target_iou must be in (0, 1], got {self.target_iou}")


@dataclass(frozen=True)
class Round:
    """One propagate run of the loop.

    Attributes:
        round: 0 for the first run; k after k corrections.
        corrected: the slice replaced by ground truth before this run (None in round 0).
        examples: slices given as examples in this run.
        mean_iou, min_iou: over every slice (examples count as exact, IoU 1).
        below_target: slices still under the target.
        compute_seconds: wall time of this run (fit + every proposal).
        cache_hits, cache_misses: feature-cache lookups during this run.
    """

    round: int
    corrected: int | None
    examples: list[int]
    mean_iou: float
    min_iou: float
    below_target: int
    compute_seconds: float
    cache_hits: int
    cache_misses: int


@dataclass
class AnnotatorResult:
    """The whole loop: corrections used, whether every slice met the target, each round."""

    n_slices: int
    target_iou: float
    pick: str
    corrections: int
    reached_target: bool
    total_seconds: float
    rounds: list[Round] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _run_round(
    image: np.ndarray,
    truth: np.ndarray,
    examples: list[int],
    backend: Backend,
    cache: FeatureCache,
    classes: list[int],
    link: Link = "auto",
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray, float, int, int]]:
    """Propagate from ``examples``; return per-slice IoU and score, seconds, hits, misses."""
    labels = np.zeros_like(truth)
    labels[examples] = truth[examples]
    ious, scores = np.ones(len(truth)), np.ones(len(truth))
    hits, misses, start = cache.hits, cache.misses, time.perf_counter()
    for res in propagate(image, labels, backend, cache=cache, link=link):
        ious[res.index] = np.mean(list(object_ious(res.labels, truth[res.index], classes).values()))
        scores[res.index] = res.score
        yield Progress(res.done, res.total, f"{len(examples)} example(s)")
    return ious, scores, time.perf_counter() - start, cache.hits - hits, cache.misses - misses


def _pick(
    ious: np.ndarray, scores: np.ndarray, examples: list[int], config: AnnotatorConfig
) -> int | None:
    failing = [i for i in range(len(ious)) if i not in examples and ious[i] < config.target_iou]
    if not failing:
        return None
    key = scores if config.pick == "confidence" else ious
    return min(failing, key=lambda i: (key[i], i))


def simulate_annotator(
    image: np.ndarray,
    truth: np.ndarray,
    backend: Backend,
    config: AnnotatorConfig | None = None,
    cache: FeatureCache | None = None,
) -> Generator[Progress | Round, None, AnnotatorResult]:
    """Run the correct-and-rerun loop on a stack with a ground-truth label stack.

    Args:
        image: (N, Y, X[, C]) stack, any numeric dtype.
        truth: (N, Y, X) int ground truth (semantic ids, or one object as 1).
        backend: any registry backend.
        config: target, budget, picking rule and first slice.
        cache: shared across rounds (a fresh one by default); re-runs reuse its features.

    Yields:
        Progress per proposed slice and a :class:`Round` after every run.

    Returns:
        An :class:`AnnotatorResult`.
    """
    config = config or AnnotatorConfig()
    truth = np.asarray(truth).astype(np.int32)
    if len(image) != len(truth) or len(truth) < 2:
        raise ValueError("give a stack of >= 2 slices and a label stack of the same length")
    cache = cache or FeatureCache()
    classes = [int(c) for c in np.unique(truth) if c != 0]
    examples = [default_start(truth) if config.start is None else config.start]
    budget = len(truth) - 1 if config.budget is None else config.budget
    rounds: list[Round] = []
    corrected: int | None = None
    while True:
        ious, scores, seconds, hits, misses = yield from _run_round(
            image, truth, examples, backend, cache, classes, config.link
        )
        below = int((ious < config.target_iou).sum())
        rounds.append(
            Round(
                len(rounds),
                corrected,
                sorted(examples),
                float(ious.mean()),
                float(ious.min()),
                below,
                seconds,
                hits,
                misses,
            )
        )
        yield rounds[-1]
        corrected = _pick(ious, scores, examples, config)
        if corrected is None or len(examples) - 1 >= budget:
            break
        examples.append(corrected)
    return AnnotatorResult(
        len(truth),
        config.target_iou,
        config.pick,
        len(examples) - 1,
        rounds[-1].below_target == 0,
        sum(r.compute_seconds for r in rounds),
        rounds,
    )
