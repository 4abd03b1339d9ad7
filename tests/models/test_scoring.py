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
    labels[20:22, 30:32] = 0
    labels[0:4, 0:4] = 2
    labels[9, 9] = 2  # a speck: less than min_part of the object is no piece
    stats = object_stats(labels)
    assert stats[1].parts == 2
    assert stats[2].area == 17 and stats[2].parts == 1


def test_a_missing_object_ranks_below_a_good_one_and_says_why() -> None:
    reference = object_stats(GOOD)
    good = score_proposal(GOOD, SURE, reference)
    empty = np.zeros(SHAPE, np.int32)
    missing = score_proposal(empty, np.full(SHAPE, 0.95, np.float32), reference)
    assert missing.confidence > good.confidence  # the head alone is surer of the empty slice
    assert missing.score < 0.5 < 0.8 < good.score
    assert missing.reasons == ("object missing?",) and good.reasons == ()


def test_a_shrinking_tip_may_end_without_a_penalty() -> None:
    tip = _disk(SHAPE, 32, 32, 3).astype(np.int32)
    typical = object_stats(GOOD)
    ended = score_proposal(np.zeros(SHAPE, np.int32), SURE, object_stats(tip), typical)
    assert ended.score > 0.85 and ended.reasons == ()


def test_size_jumps_and_fragments_are_penalised() -> None:
    reference = object_stats(GOOD)
    big = _disk(SHAPE, 32, 32, 21).astype(np.int32)  # about 3x the area
    grown = score_proposal(big, SURE, reference)
    assert grown.score < 0.6 and grown.reasons == ("size ×3.1",)
    slightly = _disk(SHAPE, 32, 32, 15).astype(np.int32)  # 1.6x: within the tolerance
    assert score_proposal(slightly, SURE, reference).reasons == ()
    pieces = GOOD.copy()
    pieces[:, 31:33] = 0  # cut in two halves
    broken = score_proposal(pieces, SURE, reference)
    assert broken.score < score_proposal(GOOD, SURE, reference).score
    assert broken.reasons == ("2 pieces",)
    off = score_proposal(pieces, SURE, reference, config=ScoreConfig(fragment_power=0))
    assert off.reasons == ()


def test_several_objects_name_the_wrong_one() -> None:
    two = GOOD.copy()
    two[_disk(SHAPE, 8, 8, 5)] = 2
    review = score_proposal(GOOD, SURE, object_stats(two))
    assert review.reasons == ("object 2 missing?",)
    assert review.missing == {2: 1.0}


def test_scorer_keeps_expecting_a_lost_object_along_the_stack() -> None:
    scorer = ReviewScorer({5: GOOD}, stack=True, config=ScoreConfig())
    assert scorer(6, GOOD, SURE).score > 0.8
    empty = np.zeros(SHAPE, np.int32)
    lost = scorer(7, empty, SURE)
    assert lost.reasons == ("object missing?",) and lost.score < 0.5
    later = scorer(8, empty, SURE)  # still expected, a little less surely
    assert later.reasons == ("object missing?",) and lost.score < later.score < 0.9
    assert scorer(4, GOOD, SURE).score > 0.8  # the other side compares with the example


def test_image_sets_compare_with_the_examples() -> None:
    scorer = ReviewScorer({0: GOOD, 1: GOOD}, stack=False)
    assert scorer.reference(7) == object_stats(GOOD)
    assert scorer(5, np.zeros(SHAPE, np.int32), SURE).reasons == ("object missing?",)
