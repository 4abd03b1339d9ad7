"""The propagation engine: examples in, one proposal per slice out, as a generator."""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Generator, Mapping, Sequence
from contextlib import ExitStack
from typing import Literal

import numpy as np

from src_models.backends.base import Backend
from src_models.batching import Batches, Ready
from src_models.cache import CacheTooSmallWarning, FeatureCache
from src_models.channels import move_channel_axis
from src_models.fitting import FitMemo, choose_options, fit_examples, slice_features
from src_models.inputs import ImageInput, LabelInput, Prepared, joint_ids, prepare
from src_models.lazy import is_lazy, prepare_lazy, stack_view
from src_models.linking import link_to_neighbour, neighbour_toward_examples
from src_models.memory import cache_shortfall, check_memory, shapes_of
from src_models.order import nearest_example, propagation_order, unblocked
from src_models.scoring import ReviewScorer
from src_models.scribbles import (
    DEFAULT_BACKGROUND_ID,
    SparseExamplesWarning,
    Unpainted,
    check_unpainted,
    sparse_message,
)
from src_models.tiling import grid_for, tiled_predict
from src_models.timing import Timer
from src_models.types import ExtraExamples, SliceResult


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
    features = slice_features(backend, cache, data.images[neighbour])[0] if proposed else None
    backend.observe_neighbour(  # type: ignore[attr-defined]
        index, neighbour, features, finished.get(neighbour), is_example
    )


def predict_slice(
    backend: Backend,
    cache: FeatureCache,
    image: np.ndarray,
    timer: Timer,
    pin: bool = False,
    ready: Ready | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """(labels, confidence, feature timings) of one slice; in blended tiles when it is larger
    than the backend's tile (:mod:`src_models.tiling`), else whole (the untiled path, from
    ``ready`` features when a batch computed them, :mod:`src_models.batching`)."""
    grid = grid_for(backend, image.shape)
    if grid is None:
        features, timings = ready or slice_features(backend, cache, image, pin)
        return *backend.predict(features, image.shape[:2], timer), timings
    return tiled_predict(
        backend, image, grid, lambda tile: slice_features(backend, cache, tile, pin), timer
    )


def _dense_examples(
    backend: Backend, cache: FeatureCache, data: Prepared
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Scribble mode: the fitted head's (labels, confidence) on each scribbled slice, the
    references that scoring and linking compare the other slices with (strokes are not)."""
    return {
        i: predict_slice(backend, cache, data.images[i], Timer(), pin=True)[:2]
        for i in data.examples
    }


def _example_labels(data: Prepared) -> list[np.ndarray | None]:
    """Per slice, the labels of an example slice or None (a lazy stack's others stay unread)."""
    examples = set(data.examples)
    return [data.labels[i] if i in examples else None for i in range(len(data.labels))]


def fit_run(
    backend: Backend,
    data: Prepared,
    cache: FeatureCache,
    stack: bool,
    lazy: bool,
    weights: Mapping[int, float] | None = None,
    more: Prepared | None = None,
    extra: ExtraExamples | None = None,
    memo: FitMemo | None = None,
) -> tuple[dict[str, float], dict[str, float], dict[int, tuple[np.ndarray, np.ndarray]]]:
    """What a run does before its first target (local or distributed): the backend's
    automatic choices, the fit, and in scribble mode the examples' dense references.

    Returns:
        (choices, fit timings with the choices as ``auto_*``, slice → (labels, confidence)
        of each scribbled example; empty in dense mode).
    """
    chosen = choose_options(backend, data, stack, lazy)
    fit_timings = fit_examples(
        backend, data, cache, weights, more, extra.weights if extra else (), memo
    )
    # the backend's automatic choices, reported with the first slice's timings
    fit_timings |= {f"auto_{k}": v for k, v in getattr(backend, "choices", chosen).items()}
    dense = _dense_examples(backend, cache, data) if data.sparse else {}
    return chosen, fit_timings, dense


class _Finished(dict[int, np.ndarray]):
    """Labels of the examples and of the proposals a later target still needs (linking,
    the video path): a proposal is dropped once every slice next to it that looks at it is
    done, so a long stack keeps a few slices, not all of them."""

    def __init__(self, examples: dict[int, np.ndarray], order: Sequence[int]) -> None:
        super().__init__(examples)
        self.keep = set(examples)
        self.waiting: dict[int, int] = {}
        self.needs: dict[int, int] = {}
        for index in order if examples else ():
            self.needs[index] = neighbour_toward_examples(index, list(examples))
            self.waiting[self.needs[index]] = self.waiting.get(self.needs[index], 0) + 1

    def add(self, index: int, labels: np.ndarray) -> None:
        """Record ``index``'s proposal; forget its neighbour when nobody else needs it."""
        if self.waiting.get(index, 0) > 0:
            self[index] = labels
        used = self.needs.get(index)
        if used is not None:
            self.waiting[used] -= 1
            if self.waiting[used] == 0 and used not in self.keep:
                self.pop(used, None)


def run_cache(backend: Backend) -> FeatureCache:
    """The cache of a run given none, which dies with the run: the examples' features (pinned)
    and, for a backend with a video path (``observe_neighbour``), the proposed slices' (read
    again as the next slice's neighbour). Keeping every slice's features where no re-run can
    reach them cost memory and time (on a virtual machine, touching the new memory doubled
    classic's seconds per slice)."""
    video = callable(getattr(backend, "observe_neighbour", None))
    return FeatureCache() if video else FeatureCache(0)


def prepare_run(
    images: ImageInput,
    labels: LabelInput,
    backend: Backend,
    cache: FeatureCache,
    targets: Sequence[int] | None,
    extra: ExtraExamples | None,
    unpainted: Unpainted,
    background_id: int,
    warn_sparse: bool,
    channel_axis: int | None,
    warn_cache: bool = True,
) -> tuple[Prepared, Prepared | None, list[int]]:
    """Validate and prepare a run's inputs (see :func:`propagate` for the arguments):
    the prepared slices, the prepared ``extra`` examples (or None) and the targets in
    propagation order. Checks memory and warns of sparse examples and (``warn_cache``) of a
    cache too small for a re-run."""
    check_unpainted(unpainted, background_id)
    lazy = is_lazy(images)
    view = stack_view if lazy else move_channel_axis
    shown = view(images, channel_axis)
    check_memory(shapes_of(shown), backend, cache.max_bytes, lazy=lazy)
    data = (prepare_lazy if lazy else prepare)(
        images, labels, extra is None, unpainted, background_id, channel_axis
    )
    if warn_sparse and not data.sparse and (message := sparse_message(_example_labels(data))):
        warnings.warn(message, SparseExamplesWarning, stacklevel=3)
    more = None
    if extra is not None:
        data, more = joint_ids(data, prepare(extra.images, extra.labels))
    order = propagation_order(len(data.images), data.examples, targets, data.sparse)
    shortfall = warn_cache and cache_shortfall(
        shapes_of(shown), [*data.examples, *order], backend, cache
    )
    if shortfall:
        warnings.warn(shortfall, CacheTooSmallWarning, stacklevel=3)
    return data, more, order


def propagate(
    images: ImageInput,
    labels: LabelInput,
    backend: Backend,
    *,
    cache: FeatureCache | None = None,
    targets: Sequence[int] | None = None,
    link: bool | Literal["auto"] = "auto",
    link_radius: int | None = None,
    weights: Mapping[int, float] | None = None,
    extra: ExtraExamples | None = None,
    stop_below: float | None = None,
    memo: FitMemo | None = None,
    unpainted: Unpainted = "background",
    background_id: int = DEFAULT_BACKGROUND_ID,
    warn_sparse: bool = True,
    channel_axis: int | None = None,
) -> Generator[SliceResult, None, None]:
    """Propose labels on every slice without an example, nearest slices first.

    Args:
        images: (N, Y, X[, C]) stack of any numeric dtype, or a list of 2D images (an image
            set: proposals are scored against the examples instead of the neighbours).
        labels: (N, Y, X) label stack or one (Y, X) array (or None) per image; every slice
            with a nonzero label is an example, its zeros are negatives.
        backend: a :class:`~src_models.backends.base.Backend`.
        cache: reuse it across runs so unchanged slices are never re-encoded (None: one for
            this run only, :func:`run_cache`).
        targets: slice indices to predict (default: every slice that is not an example).
        link: for stacks (Z or T) only: keep, per label id, only the parts of a proposal that
            touch the same id on the neighbouring slice toward the examples (see
            :mod:`src_models.linking`), so nothing appears that continues no object. "auto":
            the backend's choice when it makes one (``classic``: on for stacks), else off.
        link_radius: how far an object may move between slices, in pixels (default 3% of
            the slice's larger side).
        weights: slice index → example weight in [0, 1] (default 1 for every example slice;
            0 leaves the slice out of the fit, and it is not proposed either).
        extra: examples from elsewhere (a saved head); then ``labels`` may be all empty.
        stop_below: stacks: once a proposal scores below this, stop on that side of its
            example (the object is probably lost there).
        memo: skip refitting the head when the examples did not change since the last fit.
        unpainted: what unpainted pixels of an example slice mean: "background" (dense
            masks: 0 is a negative; a :class:`~src_models.scribbles.SparseExamplesWarning`
            when an example is painted on under 1% of its slice) or "unlabelled" (strokes:
            ``background_id`` is the background class, unpainted pixels are never used;
            the scribbled slices are proposed too, and proposals give background as 0).
        background_id: the background label in "unlabelled" mode.
        warn_sparse: emit the ``SparseExamplesWarning`` (off for a caller that showed
            :func:`~src_models.scribbles.sparse_message` itself, e.g. the widget).
        channel_axis: the axis of the channels in ``images`` (of the stack, or of each image
            of a list), e.g. 1 for (N, C, Y, X); None = the last axis of a 4D stack or 3D
            image (up to 16 channels). ``classic`` uses every channel, the model backends
            map them to 3 (:mod:`src_models.channels`).

    Yields:
        One :class:`SliceResult` per target. Closing the generator stops the run at once.
    """
    own = cache is None
    if cache is None:  # nobody can re-run with it: keep what this run reads again, no more
        cache = run_cache(backend)
    with cache.running(), ExitStack() as closing:  # scan resistance, pinned examples
        data, more, order = prepare_run(
            images,
            labels,
            backend,
            cache,
            targets,
            extra,
            unpainted,
            background_id,
            warn_sparse,
            channel_axis,
            warn_cache=not own,
        )
        stack = not isinstance(images, (list, tuple))
        chosen, fit_timings, dense = fit_run(
            backend, data, cache, stack, is_lazy(images), weights, more, extra, memo
        )
        link = bool(chosen.get("link", 0.0)) if link == "auto" else link
        finished = _Finished(
            {i: dense[i][0] if dense else data.labels[i] for i in data.examples}, order
        )
        # stacks only: a backend with a video path (SEGIC's forward_vos) hears of the neighbour
        video = stack and callable(getattr(backend, "observe_neighbour", None))
        scorer = ReviewScorer(
            finished or {-1 - j: lab for j, lab in enumerate(more.labels if more else [])}, stack
        )
        blocked: dict[tuple[int, int], int] = {}
        keep = functools.partial(unblocked, examples=data.examples, blocked=blocked)
        # the targets' features in batches, the next batch read in the background meanwhile
        batches = closing.enter_context(Batches(backend, cache, data.images, order, keep, dense))
        for done, (index, image, ready) in enumerate(batches, start=1):
            timer = Timer()
            if index in dense:
                (lab, conf), timings = dense[index], {"features": 0.0, "cached": 1.0}
                start = time.perf_counter()
            else:  # a tiled slice is decoded like an image (no video path)
                if video and grid_for(backend, image.shape) is None:
                    _observe_neighbour(backend, cache, data, index, finished)
                start = time.perf_counter()
                lab, conf, timings = predict_slice(backend, cache, image, timer, ready=ready)
                start += 0.0 if ready else timings.get("features", 0.0)  # "head": the head only
            if link and data.examples and index not in dense:
                with timer("link"):
                    lab, conf = link_to_neighbour(
                        index, lab, conf, finished, data.examples, link_radius
                    )
            finished.add(index, lab)
            with timer("review"):
                review = scorer(index, lab, conf)
            timings |= {"head": time.perf_counter() - start} | timer.seconds
            if done == 1:
                timings |= fit_timings
            if stop_below is not None and stack and data.examples and review.score < stop_below:
                e = nearest_example(index, data.examples)
                blocked.setdefault((e, int(np.sign(index - e))), abs(index - e))
            yield SliceResult(
                index,
                data.ids.to_user(lab),  # backends see ids 1..K; the user gets their own ids
                conf,
                review.score,
                timings,
                done,
                len(order),
                review.reasons,
                review.confidence,
            )
