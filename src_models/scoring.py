"""The review score of a proposal: the slices most likely wrong come first.

The mean confidence of the head alone ranks the worst mistakes last: a slice where the object
was missed is scored by its background, which the head is sure of. The review score therefore
multiplies each object's confidence by plausibility factors measured against a reference
(the neighbouring slice toward the examples in a stack, the examples in an image set):

* missing: an object of the reference is absent (or nearly) from the proposal. How much that
  costs depends on how plausible an end of the object is: an object that already shrank to
  a small tip on the neighbour may end; one at full size should not vanish.
* size: the object's area jumps by more than ``size_tolerance`` relative to the reference.
* fragments: an object whole on the reference breaks into pieces (a mild factor).
* new: an id appears that the reference does not hold.

The slice's score is the lowest object score, so one wrong object is enough to rank the
slice as uncertain; each penalty also gives a short reason for the review table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage as ndi

ACCEPT_THRESHOLD = 0.8
"""The widget's default for "Accept all ≥" (measured in docs/benchmarks.md, Review block)."""


@dataclass(frozen=True)
class ObjectStats:
    """Shape of one label id on one slice.

    Attributes:
        area: pixels of the id.
        parts: connected pieces holding at least ``min_part`` of the area (see
            :func:`object_stats`).
        expected: how sure the object is there, in [0, 1]: 1 when seen, less for an object
            carried on from slices where it was missed.
    """

    area: int
    parts: int
    expected: float = 1.0


Stats = dict[int, ObjectStats]


@dataclass(frozen=True)
class ScoreConfig:
    """How strict the plausibility factors are (chosen on the datasets of ../shared/data:
    ``scripts/bench_review.py`` measures them; the fragment factor is kept mild because
    piece counts are noisy on classes made of many parts).

    Attributes:
        size_tolerance: an area ratio up to this (either way) costs nothing; beyond, the
            factor is tolerance / ratio.
        min_part: a piece counts when it holds at least this fraction of the object's area.
        missing_fraction: an object smaller than this fraction of its reference area counts
            as missing.
        tip_fraction: how sure a missing object should be there is the reference's area
            relative to its area on the examples, reaching 1 at this fraction: an object
            that shrank on the way may end, one at full size should not vanish.
        missing_weight: how much a surely missing object lowers its score (the factor is
            1 - missing_weight × how sure the object should be there).
        carry_decay: per slice, how much the expectation of a lost object fades.
        new_factor: factor for an id the reference does not hold (stacks: objects do start).
        min_pieces: an object whole on the reference and in at least this many pieces is
            fragmented; its factor is pieces ** -fragment_power.
        fragment_power: see ``min_pieces`` (0 turns the fragment factor off).
    """

    size_tolerance: float = 2.0
    min_part: float = 0.2
    missing_fraction: float = 0.1
    tip_fraction: float = 0.9
    missing_weight: float = 0.5
    carry_decay: float = 0.8
    new_factor: float = 0.7
    min_pieces: int = 2
    fragment_power: float = 0.15


@dataclass(frozen=True)
class Review:
    """Score and reasons of one proposal.

    Attributes:
        score: in [0, 1]; low = check this slice first.
        confidence: mean head confidence over the predicted foreground (over the whole slice
            when nothing is predicted): the score without plausibility factors.
        reasons: short texts for the review table, e.g. ``("object missing?",)``.
        stats: the proposal's own :class:`ObjectStats` per id.
        missing: per id absent from the proposal, how sure it should have been there.
    """

    score: float
    confidence: float
    reasons: tuple[str, ...]
    stats: Stats
    missing: dict[int, float] = field(default_factory=dict)


def object_stats(labels: np.ndarray, min_part: float = ScoreConfig.min_part) -> Stats:
    """Area and number of pieces of every nonzero id of a (H, W) int label image."""
    stats: Stats = {}
    boxes = ndi.find_objects(np.where(labels > 0, labels, 0))
    for k, box in enumerate(boxes, start=1):
        if box is None:
            continue
        mask = labels[box] == k
        parts, count = ndi.label(mask)
        area = int(mask.sum())
        sizes = np.bincount(parts.ravel(), minlength=count + 1)[1:]
        stats[k] = ObjectStats(area, max(1, int((sizes >= min_part * area).sum())))
    return stats


def mean_stats(stats: Sequence[Stats]) -> Stats:
    """Per id, the median area and pieces over the slices holding it (the examples of a set)."""
    ids = sorted({k for s in stats for k in s})
    out: Stats = {}
    for k in ids:
        held = [s[k] for s in stats if k in s]
        out[k] = ObjectStats(
            int(np.median([h.area for h in held])), int(np.median([h.parts for h in held]))
        )
    return out


def _ratio_text(ratio: float) -> str:
    return f"×{ratio:.1f}" if ratio >= 1 else f"×{ratio:.2f}"


def _object_score(
    conf: float,
    own: ObjectStats | None,
    ref: ObjectStats | None,
    typical: ObjectStats | None,
    config: ScoreConfig,
) -> tuple[float, list[str], float]:
    """One id's score, its reasons (without the id) and, when it is missing, how sure it
    should be there (0 when present)."""
    if ref is None:
        return (conf * config.new_factor, ["new?"], 0.0) if own is not None else (conf, [], 0.0)
    if own is None or own.area < config.missing_fraction * ref.area:
        # an object that shrank to a tip may end; one at full size should not vanish
        tip = config.tip_fraction * (typical.area if typical else ref.area)
        expected = float(np.clip(ref.area / max(tip, 1.0), 0.0, 1.0)) * ref.expected
        reasons = ["missing?"] if expected > 0.5 else []
        return conf * (1.0 - config.missing_weight * expected), reasons, expected
    score, reasons = conf, []
    ratio = own.area / max(ref.area, 1)
    jump = max(ratio, 1.0 / max(ratio, 1e-9))
    if jump > config.size_tolerance:
        score *= config.size_tolerance / jump
        reasons.append(f"size {_ratio_text(ratio)}")
    if ref.parts == 1 and own.parts >= config.min_pieces and config.fragment_power > 0:
        score *= own.parts**-config.fragment_power
        reasons.append(f"{own.parts} pieces")
    return score, reasons, 0.0


def _reason_text(k: int, reason: str, single: bool) -> str:
    """``object missing?`` / ``size ×3.0`` for one id; ``object 2 missing?`` / ``2: size ×3.0``."""
    if reason in ("missing?", "new?"):
        return f"object {reason}" if single else f"object {k} {reason}"
    return reason if single else f"{k}: {reason}"


def score_proposal(
    labels: np.ndarray,
    confidence: np.ndarray,
    reference: Mapping[int, ObjectStats],
    typical: Mapping[int, ObjectStats] | None = None,
    config: ScoreConfig = ScoreConfig(),
) -> Review:
    """Score one proposal against the reference it should resemble.

    Args:
        labels: (H, W) int32 proposal.
        confidence: (H, W) float32 in [0, 1], the head's confidence for the chosen label.
        reference: per id, the stats the proposal should resemble (neighbour toward the
            examples for a stack, :func:`mean_stats` of the examples for a set).
        typical: per id, the stats on the examples (tells a shrinking tip from an object
            at full size); default ``reference``.

    Returns:
        A :class:`Review`.
    """
    own = object_stats(labels, config.min_part)
    fg = labels != 0
    confidence_all = float(confidence[fg].mean() if fg.any() else confidence.mean())
    typical = reference if typical is None else typical
    ids = sorted(set(reference) | set(own))
    if not ids:
        return Review(confidence_all, confidence_all, (), own)
    scores, reasons, missing = [], [], {}
    for k in ids:
        conf = float(confidence[labels == k].mean()) if k in own else confidence_all
        score, why, expected = _object_score(
            conf, own.get(k), reference.get(k), typical.get(k), config
        )
        scores.append(score)
        reasons += [_reason_text(k, w, len(ids) == 1) for w in why]
        if expected > 0:
            missing[k] = expected
    score = float(np.clip(min(scores), 0.0, 1.0))
    return Review(score, confidence_all, tuple(reasons), own, missing)


class ReviewScorer:
    """Scores the proposals of one run in propagation order.

    Stacks compare each proposal with the neighbouring slice toward its nearest example (an
    example, or a proposal scored before it, since runs move outward). An object judged
    missing stays expected on the next slice, so a run of empty slices after a lost object
    is flagged, not only its first slice. Image sets compare with the examples.
    """

    def __init__(
        self, examples: Mapping[int, np.ndarray], stack: bool, config: ScoreConfig = ScoreConfig()
    ) -> None:
        """``examples``: slice index → (H, W) int labels of every example slice."""
        self.stack = stack
        self.config = config
        self.examples = sorted(examples)
        self._seen: dict[int, Stats] = {
            i: object_stats(lab, config.min_part) for i, lab in examples.items()
        }
        self._typical = mean_stats(list(self._seen.values()))

    def reference(self, index: int) -> Stats:
        """What the proposal of slice ``index`` should resemble."""
        if not self.stack or not self.examples:
            return self._typical
        nearest = min(self.examples, key=lambda e: (abs(e - index), e))
        neighbour = index - int(np.sign(index - nearest))
        return self._seen.get(neighbour, self._seen.get(nearest, self._typical))

    def __call__(self, index: int, labels: np.ndarray, confidence: np.ndarray) -> Review:
        reference = self.reference(index)
        review = score_proposal(labels, confidence, reference, self._typical, self.config)
        # a lost object stays expected further on, less and less surely
        carried = {
            k: replace(reference[k], expected=sure * self.config.carry_decay)
            for k, sure in review.missing.items()
        }
        self._seen[index] = review.stats | carried
        return review
