"""The propagate generator: order, stopping, caching, several objects."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest

from src_models.backends.classic import ClassicBackend
from src_models.cache import CacheTooSmallWarning, FeatureCache
from src_models.engine import FitMemo, propagate
from src_models.order import propagation_order, select_targets
from src_models.sample_data import example_labels, synthetic_stack
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example, ExtraExamples
from tests.helpers import iou


class CountingBackend(ClassicBackend):
    """The classic backend, counting how often features are computed and fitted."""

    def __init__(self) -> None:
        super().__init__()
        self.feature_calls = 0
        self.fitted_on: list[list[int]] = []

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> np.ndarray:
        self.feature_calls += 1
        return super().compute_features(image, timer)

    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        self.fitted_on.append([e.index for e in examples])
        super().fit(examples, timer)


@pytest.fixture(scope="module")
def stack() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_stack(n_slices=8, size=64)


def test_order_moves_outward_from_the_examples() -> None:
    assert propagation_order(7, [3]) == [2, 4, 1, 5, 0, 6]
    assert propagation_order(6, [0, 5]) == [1, 4, 2, 3]
    assert propagation_order(5, [2], targets=[0, 4, 2]) == [0, 4]
    with pytest.raises(ValueError, match="outside"):
        propagation_order(3, [0], targets=[5])


def test_results_stream_one_slice_at_a_time_and_can_stop(
    stack: tuple[np.ndarray, np.ndarray],
) -> None:
    image, truth = stack
    backend = CountingBackend()
    run = propagate(image, example_labels(truth, 3), backend)
    first = next(run)
    assert first.index in (2, 4) and first.total == 7 and first.done == 1
    assert first.labels.shape == (64, 64) and first.labels.dtype == np.int32
    assert first.confidence.dtype == np.float32
    assert first.confidence.min() >= 0.0 and first.confidence.max() <= 1.0
    assert 0.0 <= first.score <= 1.0
    assert {"features", "head", "fit"} <= set(first.timings)
    run.close()  # stop mid-run: no more work happens
    assert backend.feature_calls == 2  # the example slice + the first target only


def test_cached_rerun_does_not_recompute_features(stack: tuple[np.ndarray, np.ndarray]) -> None:
    image, truth = stack
    backend, cache = CountingBackend(), FeatureCache()
    labels = example_labels(truth, 3)
    results = list(propagate(image, labels, backend, cache=cache))
    assert backend.feature_calls == 8 and cache.misses == 8
    # the person accepts slice 6: it becomes an example; nothing is re-encoded
    labels[6] = results[[r.index for r in results].index(6)].labels
    again = list(propagate(image, labels, backend, cache=cache))
    assert backend.feature_calls == 8 and cache.hits == 8
    assert backend.fitted_on[-1] == [3, 6]
    assert sorted(r.index for r in again) == [0, 1, 2, 4, 5, 7]
    assert all(r.timings["cached"] == 1.0 for r in again)


def test_a_run_given_no_cache_keeps_only_what_it_reads_again(
    stack: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    import src_models.engine as engine

    made: list[FeatureCache] = []
    run_cache = engine.run_cache
    monkeypatch.setattr(engine, "run_cache", lambda b: made.append(run_cache(b)) or made[-1])
    image, truth = stack
    backend = CountingBackend()
    with warnings.catch_warnings():  # a cache nobody can re-run with: no "too small" warning
        warnings.simplefilter("error", CacheTooSmallWarning)
        results = list(propagate(image, example_labels(truth, 3), backend))
    assert len(results) == 7 and backend.feature_calls == 8  # every slice once
    (cache,) = made
    assert cache.max_bytes == 0 and len(cache) == 1  # the pinned example's features only

    class Video(ClassicBackend):
        def observe_neighbour(self, *args: object) -> None:
            pass

    assert run_cache(Video()).max_bytes > 0  # a video path reads its neighbours again


def test_cache_respects_its_size_cap(stack: tuple[np.ndarray, np.ndarray]) -> None:
    image, truth = stack
    one_slice = ClassicBackend().compute_features(np.zeros((64, 64, 1), np.float32)).nbytes
    cache = FeatureCache(max_bytes=3 * one_slice)
    with pytest.warns(CacheTooSmallWarning, match="recompute about 5 slices"):
        list(propagate(image, example_labels(truth, 3), ClassicBackend(), cache=cache))
    assert len(cache) == 3 and cache.size_bytes <= 3 * one_slice


def test_several_objects_keep_their_ids(stack: tuple[np.ndarray, np.ndarray]) -> None:
    image, truth = stack
    labels = example_labels(truth, 3)
    labels[labels == 2] = 7  # ids need not be consecutive
    for res in propagate(image, labels, ClassicBackend()):
        assert set(np.unique(res.labels)) <= {0, 1, 7}
        assert iou(res.labels == 1, truth[res.index] == 1) > 0.6
        assert iou(res.labels == 7, truth[res.index] == 2) > 0.2


def test_cache_sizes_dataclass_features_by_their_arrays() -> None:
    from dataclasses import dataclass

    from src_models.cache import nbytes

    @dataclass(frozen=True)
    class Features:
        tokens: np.ndarray
        guide: np.ndarray | None
        shape: tuple[int, int]

    value = Features(np.zeros((4, 4, 8), np.float32), None, (16, 16))
    assert nbytes(value) == 4 * 4 * 8 * 4
    assert nbytes((value, {"a": np.zeros(3, np.uint8)})) == 4 * 4 * 8 * 4 + 3


def test_stacks_tell_a_video_backend_the_neighbour_toward_the_examples() -> None:
    """A backend with observe_neighbour hears, before each slice of a stack, which slice
    leads to the examples (and whether it is one); image sets never call it."""
    from tests.models.tiny_backends import TINY

    calls: list[tuple[int, int, bool, bool]] = []
    backend = TINY["classic"]({})

    def observe(index, neighbour, features, labels, is_example) -> None:  # noqa: ANN001
        calls.append((index, neighbour, labels is not None, is_example))

    backend.observe_neighbour = observe  # type: ignore[attr-defined]
    stack = np.random.default_rng(0).random((5, 24, 24)).astype(np.float32)
    labels = np.zeros(stack.shape, np.int32)
    labels[2, 5:15, 5:15] = 1
    list(propagate(stack, labels, backend))
    assert sorted(calls) == [
        (0, 1, True, False),
        (1, 2, True, True),
        (3, 2, True, True),
        (4, 3, True, False),
    ]
    calls.clear()
    list(propagate(list(stack), list(labels), backend))
    assert calls == []


def test_weights_reach_the_fit_and_zero_leaves_an_example_out(
    stack: tuple[np.ndarray, np.ndarray],
) -> None:
    image, truth = stack
    labels = example_labels(truth, 3)
    labels[6] = truth[6]
    seen: list[list[tuple[int, float]]] = []

    class Spy(CountingBackend):
        def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
            seen.append([(e.index, e.weight) for e in examples])
            super().fit(examples, timer)

    results = list(propagate(image, labels, Spy(), weights={6: 0.25}))
    assert seen[-1] == [(3, 1.0), (6, 0.25)]
    assert 6 not in [r.index for r in results]
    list(propagate(image, labels, Spy(), weights={6: 0.0}))
    assert seen[-1] == [(3, 1.0)]  # weight 0: left out of the fit, and not proposed
    with pytest.raises(ValueError, match="every example has weight 0"):
        list(propagate(image, labels, Spy(), weights={3: 0.0, 6: 0.0}))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        list(propagate(image, labels, Spy(), weights={6: 2.0}))


def test_select_targets_range_and_direction() -> None:
    assert select_targets(8, [3]) == [0, 1, 2, 4, 5, 6, 7]
    assert select_targets(8, [3], first=2, last=5) == [2, 4, 5]
    assert select_targets(8, [3], direction="forward") == [4, 5, 6, 7]
    assert select_targets(8, [1, 6], direction="backward") == [0, 4, 5]
    with pytest.raises(ValueError, match="first <= last"):
        select_targets(8, [3], first=5, last=2)


def test_stop_below_ends_one_side_only(stack: tuple[np.ndarray, np.ndarray]) -> None:
    image, truth = stack
    labels = example_labels(truth, 3)
    image = image.copy()
    image[5:] = image[5:].mean()  # the objects vanish after slice 4: proposals get wrong there
    free = {r.index: r.score for r in propagate(image, labels, ClassicBackend())}
    assert free[5] < 0.55 < min(free[i] for i in (0, 1, 2, 4))
    stopped = [r.index for r in propagate(image, labels, ClassicBackend(), stop_below=0.55)]
    assert sorted(stopped) == [0, 1, 2, 4, 5]  # 5 scored low: 6 and 7 were never proposed


def test_memo_skips_an_unchanged_fit(stack: tuple[np.ndarray, np.ndarray]) -> None:
    image, truth = stack
    labels = example_labels(truth, 3)
    backend, memo, cache = CountingBackend(), FitMemo(), FeatureCache()
    first = list(propagate(image, labels, backend, cache=cache, memo=memo))
    one = list(propagate(image, labels, backend, cache=cache, memo=memo, targets=[5]))
    assert len(backend.fitted_on) == 1 and one[0].timings["fit_reused"] == 1.0
    np.testing.assert_array_equal(one[0].labels, [r for r in first if r.index == 5][0].labels)
    list(propagate(image, labels, backend, cache=cache, memo=memo, weights={3: 0.5}))
    assert len(backend.fitted_on) == 2  # another weight: refitted
    list(propagate(image, labels, CountingBackend(), cache=cache, memo=memo))
    assert memo.key is not None and len(backend.fitted_on) == 2  # another backend object


def test_extra_examples_label_a_stack_without_any(stack: tuple[np.ndarray, np.ndarray]) -> None:
    image, truth = stack
    extra = ExtraExamples([image[3]], [truth[3]], [1.0])
    results = list(propagate(image[4:], np.zeros_like(truth[4:]), ClassicBackend(), extra=extra))
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert iou(results[0].labels == 1, truth[4] == 1) > 0.6
    with pytest.raises(ValueError, match="no example"):
        list(propagate(image[4:], np.zeros_like(truth[4:]), ClassicBackend()))


def test_extra_examples_keep_their_own_ids_next_to_the_stacks(
    stack: tuple[np.ndarray, np.ndarray],
) -> None:
    image, truth = stack
    theirs = np.select([truth[3] == 1, truth[3] == 2], [5, 9], 0).astype(np.uint16)
    extra = ExtraExamples([image[3]], [theirs], [1.0])
    empty = np.zeros(truth.shape, np.int32)
    alone = list(propagate(image, empty, ClassicBackend(), extra=extra, targets=[4]))
    assert set(np.unique(alone[0].labels)) == {0, 5, 9}  # the saved ids, not 1..K
    assert iou(alone[0].labels == 5, truth[4] == 1) > 0.5
    mine = empty.copy()
    mine[6] = np.select([truth[6] == 1, truth[6] == 2], [5, 9], 0)
    both = list(propagate(image, mine, ClassicBackend(), extra=extra, targets=[4, 7]))
    for res in both:
        assert set(np.unique(res.labels)) == {0, 5, 9}
        assert iou(res.labels == 9, truth[res.index] == 2) > 0.2
