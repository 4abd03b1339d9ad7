"""The simulated annotator's correct-and-rerun loop."""

from __future__ import annotations

import numpy as np
import pytest

from src_models.cache import FeatureCache
from src_models.evaluation.annotator import (
    AnnotatorConfig,
    Round,
    _pick,
    simulate_annotator,
)
from src_models.evaluation.protocols import Progress, drain
from src_models.registry import build_backend
from src_models.sample_data import synthetic_stack

N_SLICES = 8


@pytest.fixture(scope="module")
def stack() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_stack(N_SLICES, 64)


def _classic():  # small forest: fast and deterministic (seeded)
    return build_backend("classic", n_estimators=20)


def test_loop_converges_on_synthetic_stack(stack: tuple[np.ndarray, np.ndarray]) -> None:
    image, truth = stack
    cache = FeatureCache()
    items: list[object] = []
    result = drain(
        simulate_annotator(image, truth, _classic(), AnnotatorConfig(target_iou=0.9), cache=cache),
        items.append,
    )
    first, last = result.rounds[0], result.rounds[-1]
    assert first.below_target > 0  # one example is not enough: the loop has work to do
    assert result.reached_target and last.below_target == 0 and last.min_iou >= 0.9
    assert 1 <= result.corrections < N_SLICES
    assert len(result.rounds) == result.corrections + 1
    assert last.mean_iou > first.mean_iou
    # every correction is a new ground-truth example; re-runs reuse every slice's features
    corrected = [r.corrected for r in result.rounds[1:]]
    assert sorted(corrected) == sorted(set(last.examples) - {N_SLICES // 2})
    assert first.cache_misses == N_SLICES
    assert all(r.cache_misses == 0 and r.cache_hits == N_SLICES for r in result.rounds[1:])
    assert sum(isinstance(i, Round) for i in items) == len(result.rounds)
    assert any(isinstance(i, Progress) for i in items)
    assert result.total_seconds == pytest.approx(sum(r.compute_seconds for r in result.rounds))


def test_budget_stops_the_loop(stack: tuple[np.ndarray, np.ndarray]) -> None:
    image, truth = stack
    result = drain(
        simulate_annotator(image, truth, _classic(), AnnotatorConfig(target_iou=0.999, budget=1))
    )
    assert result.corrections == 1 and len(result.rounds) == 2
    assert not result.reached_target


def test_generator_can_stop_after_the_first_round(stack: tuple[np.ndarray, np.ndarray]) -> None:
    image, truth = stack
    gen = simulate_annotator(image[:3], truth[:3], _classic())
    first_round = next(i for i in gen if isinstance(i, Round))
    gen.close()
    assert first_round.round == 0 and first_round.examples == [1]


def test_pick_rules() -> None:
    ious = np.array([1.0, 0.2, 0.5, 0.95, 0.6])
    scores = np.array([1.0, 0.9, 0.8, 0.1, 0.3])
    examples = [0]
    # least confident among the failing slices (slice 3 passes, so it is accepted)
    assert _pick(ious, scores, examples, AnnotatorConfig(target_iou=0.9)) == 4
    assert _pick(ious, scores, examples, AnnotatorConfig(target_iou=0.9, pick="worst")) == 1
    assert _pick(ious, scores, examples, AnnotatorConfig(target_iou=0.1)) is None


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="pick must be one of"):
        AnnotatorConfig(pick="random")
    with pytest.raises(ValueError, match="target_iou"):
        AnnotatorConfig(target_iou=1.5)
    with pytest.raises(ValueError, match=">= 2 slices"):
        drain(simulate_annotator(np.zeros((1, 4, 4)), np.ones((1, 4, 4)), _classic()))


def test_link_option_reaches_every_run() -> None:
    from tests.models.test_linking import _blob_and_newcomer

    image, truth = _blob_and_newcomer()
    rounds = {}
    for link in (False, True):
        config = AnnotatorConfig(target_iou=0.9, budget=0, start=1, link=link)
        rounds[link] = drain(simulate_annotator(image, truth, build_backend("classic"), config))
    # the look-alike on slices 5-6 costs IoU without linking, not with it
    assert rounds[True].rounds[0].min_iou > 0.9 > rounds[False].rounds[0].min_iou


def test_the_harness_measures_the_product_defaults() -> None:
    from tests.models.test_linking import _blob_and_newcomer

    image, truth = _blob_and_newcomer()
    config = AnnotatorConfig(target_iou=0.9, budget=0, start=1)  # link left to its default
    result = drain(simulate_annotator(image, truth, build_backend("classic"), config))
    # link="auto" as a propagate run: classic links this continuous stack, so the look-alike
    # on slices 5-6 costs nothing (with link=False it does, see the test above)
    assert result.rounds[0].min_iou > 0.9
