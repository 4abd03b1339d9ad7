"""Fitting a run's head: the examples' features (cached), the fit itself (skipped when a
:class:`FitMemo` saw the same examples), and a backend's automatic choices, made from a
fixed window of the stack (:func:`auto_window`)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from src_models.backends.base import Backend
from src_models.cache import FeatureCache, model_tag
from src_models.hashing import content_key
from src_models.inputs import Prepared
from src_models.tiling import example_pieces
from src_models.timing import Timer
from src_models.types import Example


@dataclass
class FitMemo:
    """What a backend's head was last fitted on: a run with the same examples, weights and
    backend object skips the fit (``Run this slice`` after a full run costs one predict).

    Attributes:
        key: hash of the backend object and every example's pixels, labels and weight.
    """

    key: str | None = None


def slice_features(
    backend: Backend, cache: FeatureCache, image: np.ndarray, pin: bool = False
) -> tuple[object, dict[str, float]]:
    """Features of one slice (from the cache when its pixels were seen) and their timings:
    ``features`` (seconds in all), ``cached`` (1.0 on a hit) and the backend's stages.
    ``pin``: an example's, kept in the cache for the rest of the run."""
    backend.check_open()
    timer = Timer()
    start = time.perf_counter()
    features, hit = cache.get_or_compute(
        backend.feature_key, image, lambda im: backend.compute_features(im, timer), pin
    )
    timings = {"features": time.perf_counter() - start, "cached": float(hit)}
    return features, timings | timer.seconds


def _example_inputs(
    data: Prepared, weights: Mapping[int, float], extra: Prepared | None, extra_weights: list[float]
) -> list[tuple[int, np.ndarray, np.ndarray, float]]:
    """(index, image, labels, weight) of every example with a positive weight; examples from
    ``extra`` get negative indices (-1, -2, ...)."""
    items = [(i, data.images[i], data.labels[i], float(weights.get(i, 1.0))) for i in data.examples]
    if extra is not None:
        items += [
            (-1 - j, extra.images[j], extra.labels[j], extra_weights[j])
            for j in range(len(extra.images))
        ]
    for index, *_, weight in items:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"example weight of slice {index} is {weight}: give a value in [0, 1]")
    return [item for item in items if item[3] > 0]


def _fit_key(backend: Backend, items: list[tuple[int, np.ndarray, np.ndarray, float]]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{model_tag(backend)}{backend.feature_key}".encode())
    for index, image, labels, weight in items:
        h.update(f"{index}:{content_key(image)}:{content_key(labels)}:{weight}".encode())
    return h.hexdigest()


def fit_examples(
    backend: Backend,
    data: Prepared,
    cache: FeatureCache,
    weights: Mapping[int, float] | None = None,
    extra: Prepared | None = None,
    extra_weights: Sequence[float] = (),
    memo: FitMemo | None = None,
) -> dict[str, float]:
    """Compute (or fetch) the example slices' features and fit the head.

    Args:
        weights: slice index → example weight in [0, 1] (default 1); 0 leaves it out.
        extra: prepared examples from elsewhere, with ``extra_weights``.
        memo: skip the fit when the backend was last fitted on exactly these examples.

    Returns:
        ``fit`` (seconds of the head's fit) and ``fit_<stage>`` for each stage it timed;
        ``fit_reused`` = 1.0 when the memo made the fit unnecessary.
    """
    items = _example_inputs(data, weights or {}, extra, list(extra_weights))
    if not items:
        raise ValueError("every example has weight 0: paint or correct at least one slice")
    key = _fit_key(backend, items) if memo is not None else None
    if memo is not None and memo.key == key:
        return {"fit": 0.0, "fit_reused": 1.0}
    examples = [  # an example larger than a tile: its painted tiles (src_models.tiling)
        Example(i, slice_features(backend, cache, piece, pin=True)[0], piece_labels, weight)
        for i, image, labels, weight in items
        for piece, piece_labels in example_pieces(backend, image, labels)
    ]
    timer = Timer()
    start = time.perf_counter()
    backend.fit(examples, timer)
    if memo is not None:
        memo.key = key
    stages = {f"fit_{k}": v for k, v in timer.seconds.items()}
    return {"fit": time.perf_counter() - start, **stages}


AUTO_WINDOW = 64  # consecutive slices a backend's automatic choices look at
LAZY_AUTO_WINDOW = 8  # the same for a lazy stack, whose slices are read from disk


def auto_window(n: int, lazy: bool) -> range:
    """The consecutive slices in the middle of an ``n``-slice stack that a backend's automatic
    choices look at. Never placed by the examples: an added example or a correction must not
    flip a choice (classic's ``per_slice`` is part of its feature key, so a flip would cost
    every cache hit of the re-run)."""
    size = LAZY_AUTO_WINDOW if lazy else AUTO_WINDOW
    lo = max(0, (n - size) // 2)
    return range(lo, min(n, lo + size))


def choose_options(backend: Backend, data: Prepared, stack: bool, lazy: bool) -> dict[str, float]:
    """Let a backend with automatic options (``classic``) decide them from the slices of
    :func:`auto_window`."""
    choose = getattr(backend, "choose", None)
    if not callable(choose):
        return {}
    return dict(choose([data.images[i] for i in auto_window(len(data.images), lazy)], stack))
