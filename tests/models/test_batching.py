"""Batched backbone forwards and the prefetch thread (src_models/batching.py): a batched run
yields exactly the unbatched run's results, in the same order, and leaves no thread behind."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from src_models.backends.classic import ClassicBackend
from src_models.backends.configs import Dinov2Config
from src_models.backends.dinov2 import Dinov2Backend
from src_models.batching import PREFETCH_THREAD, Batches
from src_models.cache import FeatureCache
from src_models.config import build_config
from src_models.device import default_batch_size
from src_models.engine import propagate
from src_models.registry import build_backend
from src_models.sample_data import example_labels, synthetic_stack
from src_models.timing import NULL_TIMER, Timer

N, EXAMPLE = 11, 5  # 10 targets: batches of 4 leave a batch of 2


class BatchedClassic(ClassicBackend):
    """Classic with ``batch_size`` slices per features call; records each call's size."""

    batch_size = 4  # type: ignore[assignment]

    def __init__(self, fail_on_call: int | None = None) -> None:
        super().__init__()
        self.calls: list[int] = []
        self.fail_on_call = fail_on_call

    def compute_features_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[np.ndarray]:
        self.calls.append(len(images))
        if len(self.calls) == self.fail_on_call:
            raise RuntimeError("backbone failed")
        return super().compute_features_batch(images, timer)


@pytest.fixture(scope="module")
def stack() -> tuple[np.ndarray, np.ndarray]:
    image, truth = synthetic_stack(n_slices=N, size=48)
    return image, example_labels(truth, EXAMPLE)


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(PREFETCH_THREAD)]


def _run(backend, image, labels, **kwargs):  # type: ignore[no-untyped-def]
    return [(r.index, r.labels, r.confidence) for r in propagate(image, labels, backend, **kwargs)]


def _assert_same(got, want) -> None:  # type: ignore[no-untyped-def]
    assert [i for i, *_ in got] == [i for i, *_ in want]  # the same slices, in the same order
    for (_, lab, conf), (_, lab_want, conf_want) in zip(got, want, strict=True):
        np.testing.assert_array_equal(lab, lab_want)
        np.testing.assert_allclose(conf, conf_want, atol=1e-5)


def test_classic_in_batches_equals_one_at_a_time(stack) -> None:
    image, labels = stack
    batched = BatchedClassic()
    want = _run(ClassicBackend(), image, labels, link=False)
    _assert_same(_run(batched, image, labels, link=False), want)
    # the example's features one at a time (the fit), then 10 targets as 4 + 4 + 2
    assert batched.calls[-3:] == [4, 4, 2]


def test_a_stop_below_run_stops_at_the_same_slices(stack) -> None:
    image, labels = stack
    kwargs = {"link": False, "stop_below": 0.95}
    want = _run(ClassicBackend(), image, labels, **kwargs)
    assert len(want) < N - 1  # the threshold did stop the run somewhere
    _assert_same(_run(BatchedClassic(), image, labels, **kwargs), want)


@pytest.fixture(scope="module")
def dinos() -> tuple[Dinov2Backend, Dinov2Backend]:
    """The same tiny random-weight dinov2 with batch_size 4 and 1 (one shared encoder)."""
    batched = build_backend(
        "dinov2", weights="random", device="cpu", dtype="float32", input_size=56, batch_size=4
    )
    assert isinstance(batched, Dinov2Backend) and batched.batch_size == 4
    single = Dinov2Backend(batched.encoder, replace(batched.config, batch_size=1))
    return batched, single


def test_dinov2_in_batches_equals_one_at_a_time_with_cache_hits(stack, dinos) -> None:
    image, labels = stack
    batched, single = dinos
    want = _run(single, image, labels, cache=FeatureCache())
    cache = FeatureCache()
    list(propagate(image, labels, batched, cache=cache, targets=[0, 3, 8]))
    hits = cache.hits
    _assert_same(_run(batched, image, labels, cache=cache), want)
    assert cache.hits - hits >= 3 + 1  # the slices seen before, and the example
    assert len(cache) == N  # every slice stored, one entry each


def test_a_lazy_stack_in_batches_equals_the_in_memory_run(stack, dinos, tmp_path) -> None:
    image, labels = stack
    batched, single = dinos
    mapped = np.lib.format.open_memmap(tmp_path / "s.npy", "w+", image.dtype, image.shape)
    mapped[:] = image
    mapped.flush()
    lazy = np.load(tmp_path / "s.npy", mmap_mode="r")  # read slice by slice, prefetched
    _assert_same(_run(batched, lazy, labels), _run(single, image, labels))


def test_dinov2_batched_features_are_the_single_ones_also_for_mixed_sizes(dinos) -> None:
    batched, _ = dinos
    rng = np.random.default_rng(0)
    shapes = [(48, 48), (40, 64), (48, 48), (40, 64), (48, 48)]  # two input sizes
    images = [rng.random((*shape, 1)).astype(np.float32) for shape in shapes]
    timer = Timer()
    together = batched.compute_features_batch(images, timer)
    assert timer.seconds["backbone"] > 0
    for image, features in zip(images, together, strict=True):
        alone = batched.compute_features(image)
        np.testing.assert_allclose(features.tokens, alone.tokens, atol=1e-5)
        np.testing.assert_array_equal(features.guide, alone.guide)


def test_closing_the_run_stops_the_prefetch_thread(stack) -> None:
    image, labels = stack
    run = propagate(image, labels, BatchedClassic(), link=False)
    next(run)
    assert _prefetch_threads()  # reading the next batch in the background
    run.close()
    assert not _prefetch_threads()


def test_a_failing_batch_raises_and_stops_the_prefetch_thread(stack) -> None:
    image, labels = stack
    backend = BatchedClassic(fail_on_call=2)  # the second batch of targets fails
    run = propagate(image, labels, backend, link=False)
    got = []
    with pytest.raises(RuntimeError, match="backbone failed"):
        for result in run:
            got.append(result.index)
    assert len(got) == 4
    assert not _prefetch_threads()


def test_batches_closed_directly_leave_no_thread() -> None:
    images = [np.zeros((8, 8, 1), np.float32)] * 6
    with Batches(ClassicBackend(), FeatureCache(), images, range(6), size=2) as batches:
        first = next(iter(batches))
    assert first[0] == 0 and first[2] is not None
    assert not _prefetch_threads()


def test_batch_size_is_validated_and_defaults_per_device() -> None:
    assert build_config(Dinov2Config, {"batch_size": "256"}).batch_size == 256
    for bad in (0, 257):
        with pytest.raises(ValueError, match="batch_size"):
            build_config(Dinov2Config, {"batch_size": bad})
    assert default_batch_size(["cpu"]) == 1
    assert default_batch_size(["cpu", "cuda:0"]) == 8
    assert ClassicBackend().batch_size == 1
