"""Batched backbone forwards and prefetched input for the engine's per-slice loop.

:class:`Batches` walks the targets in propagation order ``batch_size`` at a time
(``backend.batch_size``, see :class:`~src_models.backends.base.BackendBase`): it asks the
feature cache for the whole batch at once (:meth:`~src_models.cache.FeatureCache.
get_or_compute_many`, so hits are skipped and each computed slice is stored on its own) and
the backend computes the misses in one ``compute_features_batch`` call (one forward per input
size). Meanwhile one background thread reads the next batch's slices (a lazy stack's read,
conversion and normalisation, :mod:`src_models.lazy`), so I/O overlaps compute. Results are
yielded one slice at a time in the same order as without batching; closing the engine's
generator closes the :class:`Batches` and its thread.

A slice larger than the backend's tile (:mod:`src_models.tiling`) and a scribbled example
slice (its proposal is already known) are yielded without features: the engine computes
those as before.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

import numpy as np

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.tiling import grid_for
from src_models.timing import Timer

Ready = tuple[Any, dict[str, float]]
"""A slice's features and their timings (``features``, ``cached`` and the backend's stages)."""

PREFETCH_THREAD = "incontext-prefetch"
"""Name prefix of the thread reading the next batch (tests look for it)."""


def batch_size_of(backend: Backend) -> int:
    """The backend's ``batch_size`` (1 for a backend that has none)."""
    return max(1, int(getattr(backend, "batch_size", 1)))


def batch_features(
    backend: Backend, cache: FeatureCache, images: Sequence[np.ndarray]
) -> list[Ready]:
    """Features of several slices, the cache's misses computed in one batched call.

    Timings per slice: ``cached`` = 1.0 on a hit; the batch's seconds (``features``) and
    stages (e.g. ``backbone``) are split evenly over the slices it computed (over all of
    them when every one was a hit), so summing a run's slices still gives its total.
    """
    backend.check_open()
    timer = Timer()
    start = time.perf_counter()
    batched = getattr(backend, "compute_features_batch", None)

    def compute(todo: list[np.ndarray]) -> list[Any]:
        if callable(batched):
            return list(batched(todo, timer))
        return [backend.compute_features(image, timer) for image in todo]

    found = cache.get_or_compute_many(backend.feature_key, images, compute)
    seconds = time.perf_counter() - start
    computed = sum(not hit for _, hit in found)
    out = []
    for features, hit in found:
        share = (not hit) / computed if computed else 1 / len(found)
        stages = {k: v * share for k, v in timer.seconds.items()}
        out.append((features, {"features": seconds * share, "cached": float(hit)} | stages))
    return out


class Batches:
    """(index, image, ready) for each target in ``order`` that ``keep`` still accepts when
    its turn comes; ``ready`` is its features and timings, or None for a slice the engine
    computes itself (tiled, or in ``skip``).

    Args:
        images: the prepared slices (a list, or a :class:`~src_models.lazy.LazySlices`).
        order: the targets in propagation order.
        keep: False for a target to leave out (a stop beyond it); asked when a batch is
            formed and again before its slice is yielded.
        skip: targets yielded without features (scribbled examples).
        size: slices per batch (default: :func:`batch_size_of` the backend).
    """

    def __init__(
        self,
        backend: Backend,
        cache: FeatureCache,
        images: Sequence[np.ndarray],
        order: Iterable[int],
        keep: Callable[[int], bool] = lambda index: True,
        skip: Container[int] = (),
        size: int | None = None,
    ) -> None:
        self.backend, self.cache, self.images = backend, cache, images
        self.order, self.keep, self.skip = iter(order), keep, skip
        self.size = batch_size_of(backend) if size is None else size
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=PREFETCH_THREAD)

    def __enter__(self) -> Batches:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the prefetch thread (a read under way is finished first)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _next(self) -> Future[list[tuple[int, np.ndarray]]]:
        """Start reading the next batch in the background."""
        indices = list(itertools.islice((i for i in self.order if self.keep(i)), self.size))
        return self._pool.submit(lambda: [(i, self.images[i]) for i in indices])

    def _ready(self, batch: list[tuple[int, np.ndarray]]) -> list[Ready | None]:
        batched = [
            n
            for n, (index, image) in enumerate(batch)
            if index not in self.skip and grid_for(self.backend, image.shape) is None
        ]
        found = batch_features(self.backend, self.cache, [batch[n][1] for n in batched])
        ready: list[Ready | None] = [None] * len(batch)
        for n, features in zip(batched, found, strict=True):
            ready[n] = features
        return ready

    def __iter__(self) -> Iterator[tuple[int, np.ndarray, Ready | None]]:
        pending = self._next()
        while batch := pending.result():
            pending = self._next()  # read while this batch computes
            batch = [(index, image) for index, image in batch if self.keep(index)]
            for (index, image), features in zip(batch, self._ready(batch), strict=True):
                if self.keep(index):
                    yield index, image, features
