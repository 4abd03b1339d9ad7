"""How well the review score ranks mistakes, and what accepting proposals does to a re-run.

* :func:`score_quality`: from per-slice (IoU, score) items of any protocol, the rank
  correlation between score and IoU and what "Accept all ≥ t" would accept.
* :func:`accept_then_rerun`: the simulated person accepts every proposal scoring at least
  ``t`` without looking, the accepted proposals become examples with a given weight, and the
  rest is proposed again: does the re-run get better or worse?
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.engine import propagate
from src_models.evaluation.protocols import Progress, default_start, slice_iou


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def score_quality(
    items: Sequence[dict[str, Any]], threshold: float, old_threshold: float = 0.8
) -> dict[str, float]:
    """Ranking quality of ``score`` (review score) and ``confidence`` (mean head confidence).

    Args:
        items: per proposal, ``iou``, ``score`` and ``confidence``.
        threshold: "Accept all ≥" threshold for the review score.
        old_threshold: the same for the mean confidence (the widget's old default).

    Returns:
        ``rho score`` / ``rho confidence`` (Spearman, score vs IoU), and for each the number
        of slices accepted at its threshold, their mean IoU and how many have IoU < 0.5.
    """
    iou = np.array([i["iou"] for i in items], float)
    out = {"slices": float(len(items)), "mean IoU": float(iou.mean()) if len(iou) else np.nan}
    for key, t in (("score", threshold), ("confidence", old_threshold)):
        values = np.array([i[key] for i in items], float)
        accepted = values >= t
        out[f"rho {key}"] = _spearman(values, iou)
        out[f"accepted ({key})"] = float(accepted.sum())
        out[f"IoU accepted ({key})"] = float(iou[accepted].mean()) if accepted.any() else np.nan
        out[f"bad accepted ({key})"] = float((iou[accepted] < 0.5).sum())
    return out


@dataclass(frozen=True)
class RerunResult:
    """One accept-then-rerun experiment.

    Attributes:
        policy: the name of the weighting of accepted proposals.
        weight: the weight each accepted proposal got as an example.
        threshold: the score at or above which proposals were accepted.
        accepted: slices accepted; their mean IoU is ``accepted_iou``.
        rest_before, rest_after: mean IoU of the other proposals before / after the re-run.
    """

    policy: str
    weight: float
    threshold: float
    accepted: int
    accepted_iou: float
    rest_before: float
    rest_after: float

    @property
    def change(self) -> float:
        return self.rest_after - self.rest_before


def _ious(
    image: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray,
    backend: Backend,
    cache: FeatureCache,
    weights: dict[int, float],
    classes: list[int],
) -> Generator[Progress, None, tuple[dict[int, float], dict[int, float], dict[int, np.ndarray]]]:
    ious, scores, proposals = {}, {}, {}
    for res in propagate(image, labels, backend, cache=cache, weights=weights):
        ious[res.index] = slice_iou(res.labels, truth[res.index], classes)
        scores[res.index], proposals[res.index] = res.score, res.labels
        yield Progress(res.done, res.total, "accept then re-run")
    return ious, scores, proposals


def accept_then_rerun(
    image: np.ndarray,
    truth: np.ndarray,
    backend: Backend,
    policies: Mapping[str, Callable[[int], float]],
    threshold: float | None = None,
    start: int | None = None,
) -> Generator[Progress, None, list[RerunResult]]:
    """Propagate from one ground-truth slice, accept every proposal scoring >= ``threshold``
    (default: the median score, as a person accepting the better half) and re-run, once per
    weighting policy of the accepted proposals.

    Args:
        image: (N, Y, X[, C]) stack; truth: (N, Y, X) int ground truth.
        policies: name → (number of accepted slices → the weight of each), e.g.
            ``{"full": lambda n: 1.0}`` (accepted = painted: the old behaviour).

    Returns:
        One :class:`RerunResult` per policy.
    """
    truth = np.asarray(truth).astype(np.int32)
    classes = [int(c) for c in np.unique(truth) if c != 0]
    s = default_start(truth) if start is None else start
    labels = np.zeros_like(truth)
    labels[s] = truth[s]
    cache = FeatureCache()
    ious, scores, proposals = yield from _ious(image, labels, truth, backend, cache, {}, classes)
    t = float(np.median(list(scores.values()))) if threshold is None else threshold
    accepted = [i for i in scores if scores[i] >= t]
    rest = [i for i in scores if scores[i] < t]
    out = []
    for policy, rule in policies.items():
        weight = rule(len(accepted))
        again = labels.copy()
        for i in accepted:
            again[i] = proposals[i]
        after, _, _ = yield from _ious(
            image, again, truth, backend, cache, dict.fromkeys(accepted, weight), classes
        )
        out.append(
            RerunResult(
                policy,
                weight,
                t,
                len(accepted),
                float(np.mean([ious[i] for i in accepted])) if accepted else float("nan"),
                float(np.mean([ious[i] for i in rest])) if rest else float("nan"),
                float(np.mean([after[i] for i in rest])) if rest else float("nan"),
            )
        )
    return out
