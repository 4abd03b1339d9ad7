"""The propagation engine: examples in, one proposal per slice out, as a generator."""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence

import numpy as np

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.inputs import ImageInput, LabelInput, Prepared, prepare
from src_models.linking import link_to_neighbour, neighbour_toward_examples
from src_models.memory import check_memory, shapes_of
from src_models.timing import Timer
from src_models.types import Example, SliceResult


def propagation_order(
    n: int, examples: Sequence[int], targets: Sequence[int] | None = None
) -> list[int]:
    """Targets sorted by distance to the nearest example, then by index.

    Ties alternate both directions, so the run moves outward from the examples.
    """
    skip = set(examples)
    wanted = [i for i in (range(n) if targets is None else targets) if i not in skip]
    for i in wanted:
        if not 0 <= i < n:
            raise ValueError(f"target slice {i} is outside 0..{n - 1}")
    ex = np.asarray(examples)
    return sorted(wanted, key=lambda i: (int(np.abs(ex - i).min()), i))


def slice_score(labels: np.ndarray, confidence: np.ndarray) -> float:
    """Mean confidence over the predicted foreground, or over the slice when it is empty."""
    fg = labels != 0
    return float(confidence[fg].mean() if fg.any() else confidence.mean())


def _features(
    backend: Backend, cache: FeatureCache, image: np.ndarray
) -> tuple[object, dict[str, float]]:
    """Features of one slice (from the cache when its pixels were seen) and their timings:
    ``features`` (seconds in all), ``cached`` (1.0 on a hit) and the backend's stages."""
    backend.check_open()
    timer = Timer()
    start = time.perf_counter()
    features, hit = cache.get_or_compute(
        backend.feature_key, image, lambda im: backend.compute_features(im, timer)
    )
    timings = {"features": time.perf_counter() - start, "cached": float(hit)}
    return features, timings | timer.seconds


def fit_examples(backend: Backend, data: Prepared, cache: FeatureCache) -> dict[str, float]:
    """Compute (or fetch) the example slices' features and fit the head.

    Returns:
        ``fit`` (seconds of the head's fit) and ``fit_<stage>`` for each stage it timed.
    """
    examples = [
        Example(i, _features(backend, cache, data.images[i])[0], data.labels[i])
        for i in data.examples
    ]
    timer = Timer()
    start = time.perf_counter()
    backend.fit(examples, timer)
    stages = {f"fit_{k}": v for k, v in timer.seconds.items()}
    return {"fit": time.perf_counter() - start, **stages}


def _observe_neighbour(
    backend: Backend,
    cache: FeatureCache,
    data: Prepared,
    index: int,
    finished: dict[int, np.ndarray],
) -> None:
    """Tell a video-path backend the neighbour of ``index`` toward the examples; its
    features (a cache hit) only when the neighbour was proposed in this run."""
    neighbour = neighbour_toward_examples(index, data.examples)
    is_example = neighbour in data.examples
    proposed = neighbour in finished and not is_example
    features = _features(backend, cache, data.images[neighbour])[0] if proposed else None
    backend.observe_neighbour(  # type: ignore[attr-defined]
        index, neighbour, features, finished.get(neighbour), is_example
    )


def propagate(
    images: ImageInput,
    labels: LabelInput,
    backend: Backend,
    *,
    cache: FeatureCache | None = None,
    targets: Sequence[int] | None = None,
    link: bool = False,
    link_radius: int | None = None,
) -> Generator[SliceResult, None, None]:
    """Propose labels on every slice without an example, nearest slices first.

    Args:
        images: (N, Y, X[, C]) stack of any numeric dtype, or a list of 2D images.
        labels: (N, Y, X) label stack or one (Y, X) array (or None) per image; every slice
            with a nonzero label is an example, its zeros are negatives.
        backend: a :class:`~src_models.backends.base.Backend`.
        cache: reuse it across runs so unchanged slices are never re-encoded.
        targets: slice indices to predict (default: every slice that is not an example).
        link: for stacks (Z or T) only: keep, per label id, only the parts of a proposal that
            touch the same id on the neighbouring slice toward the examples (see
            :mod:`src_models.linking`), so nothing appears that continues no object.
        link_radius: how far an object may move between slices, in pixels (default 3% of
            the slice's larger side).

    Yields:
        One :class:`SliceResult` per target. Closing the generator stops the run at once.
    """
    cache = FeatureCache() if cache is None else cache
    check_memory(shapes_of(images), backend, cache.max_bytes)
    data = prepare(images, labels)
    order = propagation_order(len(data.images), data.examples, targets)
    fit_timings = fit_examples(backend, data, cache)
    finished = {i: data.labels[i] for i in data.examples}
    # stacks only: a backend with a video path (SEGIC's forward_vos) hears of the neighbour
    video = isinstance(images, np.ndarray) and callable(getattr(backend, "observe_neighbour", None))
    for done, index in enumerate(order, start=1):
        features, timings = _features(backend, cache, data.images[index])
        if video:
            _observe_neighbour(backend, cache, data, index, finished)
        timer = Timer()
        start = time.perf_counter()
        lab, conf = backend.predict(features, data.images[index].shape[:2], timer)
        if link:
            with timer("link"):
                lab, conf = link_to_neighbour(
                    index, lab, conf, finished, data.examples, link_radius
                )
        finished[index] = lab
        timings |= {"head": time.perf_counter() - start} | timer.seconds
        if done == 1:
            timings |= fit_timings
        user = data.ids.to_user(lab)  # backends see ids 1..K; the user gets their own ids
        yield SliceResult(index, user, conf, slice_score(lab, conf), timings, done, len(order))
