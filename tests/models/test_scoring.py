"""The review score: missing, fragmented and resized objects rank before good proposals."""

from __future__ import annotations

import numpy as np

from src_models.scoring import ReviewScorer, ScoreConfig, object_stats, score_proposal


def _disk(shape: tuple[int, int], cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


SHAPE = (64, 64)
GOOD = _disk(SHAPE, 32, 32, 12).astype(np.int32)
SURE = np.full(SHAPE, 0.9, np.float32)


def test_object_stats_count_area_and_pieces() -> None:
    labels = GOOD.copy()
    labels[32, :] = 0  # cut the disk in two
    labels[0:2, 0:2] = 2
    stats = object_stats(labels)
    assert stats[1].parts == 2 and stats[2] == object_stats(labels)[2]
    assert stats[2].area == 4 and stats[2].parts == 1


def test_a_missing_object_ranks_below_a_good_one_and_says_why() -> None:
    reference = object_stats(GOOD)
    good = score_proposal(GOOD, SURE, reference)
    empty = np.zeros(SHAPE, np.int32)
    missing = score_proposal(empty, np.full(SHAPE, 0.95, np.float32), reference)
    assert missing.confidence > good.confidence  # the head alone is surer of the empty slice
    assert missing.score < 0.2 < 0.8 < good.score
    assert missing.reasons == ("object missing?",) and good.reasons == ()


def test_a_shrinking_tip_may_end_without_a_penalty() -> None:
    tip = _disk(SHAPE, 32, 32, 3).astype(np.int32)
    typical = object_stats(GOOD)
    ended = score_proposal(np.zeros(SHAPE, np.int32), SURE, object_stats(tip), typical)
    assert ended.score > 0.5 and ended.reasons == ()


def test_size_jumps_and_fragments_are_penalised() -> None:
    reference = object_stats(GOOD)
    big = _disk(SHAPE, 32, 32, 21).astype(np.int32)  # about 3x the area
    grown = score_proposal(big, SURE, reference)
    assert grown.score < 0.6 and grown.reasons == ("size ×3.1",)
    pieces = GOOD.copy()
    pieces[:, 28:30] = 0
    pieces[:, 35:37] = 0
    pieces[28:30, :] = 0
    broken = score_proposal(pieces, SURE, reference)
    assert broken.score < 0.6 and "6 pieces" in broken.reasons
    twice = _disk(SHAPE, 32, 32, 18).astype(np.int32)  # about 2.3x the area
    assert score_proposal(twice, SURE, reference).reasons == ("size ×2.3",)
    loose = score_proposal(twice, SURE, reference, stack=False)  # sets vary more in size
    assert loose.score > 0.8 and loose.reasons == ()


def test_several_objects_name_the_wrong_one() -> None:
    two = GOOD.copy()
    two[_disk(SHAPE, 8, 8, 5)] = 2
    review = score_proposal(GOOD, SURE, object_stats(two))
    assert review.reasons == ("object 2 missing?",)
    assert review.missing == (2,)


def test_scorer_keeps_expecting_a_lost_object_along_the_stack() -> None:
    scorer = ReviewScorer({5: GOOD}, stack=True, config=ScoreConfig())
    assert scorer(6, GOOD, SURE).score > 0.8
    empty = np.zeros(SHAPE, np.int32)
    assert scorer(7, empty, SURE).reasons == ("object missing?",)
    assert scorer(8, empty, SURE).reasons == ("object missing?",)  # still expected
    assert scorer(4, GOOD, SURE).score > 0.8  # the other side compares with the example


def test_image_sets_compare_with_the_examples() -> None:
    scorer = ReviewScorer({0: GOOD, 1: GOOD}, stack=False)
    assert scorer.reference(7) == object_stats(GOOD)
    assert scorer(5, np.zeros(SHAPE, np.int32), SURE).reasons == ("object missing?",)
