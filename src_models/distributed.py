"""Distributed batch labelling: a run's per-slice work as dask.distributed tasks.

The client prepares the inputs and fits the head once (:func:`~src_models.engine.fit_run`),
then ships the fitted backend to every worker once (as the result of one task, so it must
pickle: classic and the model backends do; a torch backend pickles its weights with it). Each
target slice is one task: features, prediction, review score, and the write of that slice's
chunk into the shared zarr output (:mod:`src_models.zarr_out`, one chunk per slice, so tasks
never share a chunk). Only the client updates the store's ``done`` attribute, after a task's
result arrives: a slice is listed once, after its data is complete. A task lost with its
worker is rerun elsewhere by the scheduler, a task that raises is retried (``retries``); a
rerun rewrites the same chunk with the same labels.

What differs from :func:`~src_models.engine.propagate`: slices are independent, so there is
no linking and no video path, and proposals are scored against the examples (as for an
image set), not against the neighbouring slice. The client reads and normalises each slice
and sends it with its task; at most ``in_flight`` tasks are pending at once.
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import uuid
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.engine import fit_run, predict_slice, prepare_run, run_cache
from src_models.inputs import ImageInput, LabelIds, LabelInput
from src_models.lazy import is_lazy
from src_models.scoring import ReviewScorer, score_proposal
from src_models.scribbles import DEFAULT_BACKGROUND_ID, Unpainted
from src_models.timing import Timer
from src_models.types import SliceResult
from src_models.zarr_out import CONFIDENCE, ZarrProposals, write_slice

if TYPE_CHECKING:
    from distributed import Client

RETRIES = 3
"""Times a task that raised is tried again (a killed worker's tasks are rerun anyway)."""


@dataclass
class Head:
    """What every worker needs, shipped once.

    Attributes:
        backend: the fitted backend.
        ids: the user's ids behind the compact ones.
        scorer: review scorer in image-set mode (references: the examples).
        store: path of the zarr output; dtype: its integer dtype.
        confidence: the store keeps each slice's confidence too (``zarr_out.CONFIDENCE``).
    """

    backend: Backend
    ids: LabelIds
    scorer: ReviewScorer
    store: str
    dtype: np.dtype
    confidence: bool = False


def propose_slice(head: Head, index: int, image: np.ndarray) -> SliceResult:
    """One task: propose slice ``index`` ((H, W, C) float32 normalised), write its chunk.

    Returns its :class:`SliceResult` (``done``/``total`` are set by the client)."""
    import zarr

    timer = Timer()
    with warnings.catch_warnings():  # one thread per worker is what we want
        warnings.filterwarnings("ignore", "Inside a Dask worker", UserWarning)
        lab, conf, timings = predict_slice(head.backend, FeatureCache(0), image, timer)
    reference = head.scorer.reference(index)
    review = score_proposal(lab, conf, reference, reference, head.scorer.config)
    user = head.ids.to_user(lab)
    conf_array = None
    if head.confidence:
        conf_array = zarr.open_array(str(Path(head.store) / CONFIDENCE), mode="r+")
    write_slice(zarr.open_array(head.store, mode="r+"), conf_array, index, user, conf)
    timings |= timer.seconds
    return SliceResult(
        index, user, conf, review.score, timings, 0, 0, review.reasons, review.confidence
    )


def check_shippable(backend: Backend) -> None:
    """``RuntimeError`` unless ``backend`` survives a pickle round trip, as shipping it to the
    workers needs (every registered backend does; a wrapper holding e.g. a lambda does not)."""
    try:
        pickle.loads(pickle.dumps(backend))
    except Exception as err:
        raise RuntimeError(
            f"backend {backend.name} cannot be sent to dask workers ({type(err).__name__}: "
            f"{err}): run it without --scheduler"
        ) from err


def _given(head: Head) -> Head:
    return head


def propagate_distributed(
    images: ImageInput,
    labels: LabelInput,
    backend: Backend,
    client: Client,
    open_store: Callable[[], ZarrProposals],
    *,
    cache: FeatureCache | None = None,
    targets: Sequence[int] | None = None,
    unpainted: Unpainted = "background",
    background_id: int = DEFAULT_BACKGROUND_ID,
    channel_axis: int | None = None,
    retries: int = RETRIES,
    in_flight: int | None = None,
) -> Generator[SliceResult, None, None]:
    """:func:`~src_models.engine.propagate` (same inputs) with each target slice proposed by
    a task on ``client``'s cluster and written there into the store ``open_store`` opens
    (called once the head is fitted, e.g. :func:`src_models.zarr_out.open_proposals`).

    Args:
        in_flight: most tasks pending at once (default: 4 per worker); bounds the client's
            memory (each pending task holds its slice).

    Yields:
        One :class:`SliceResult` per target, in the order they finish, each after its slice
        is recorded as done in the store.
    """
    from distributed import as_completed

    own = cache is None
    cache = run_cache(backend) if cache is None else cache
    with cache.running():
        data, _, order = prepare_run(
            images, labels, backend, cache, targets, None, unpainted, background_id, True,
            channel_axis, warn_cache=not own,
        )  # fmt: skip
        _, fit_timings, dense = fit_run(backend, data, cache, True, is_lazy(images))
        refs = {i: dense[i][0] if dense else data.labels[i] for i in data.examples}
        store = open_store()
    check_shippable(backend)
    run = uuid.uuid4().hex[:8]
    head = Head(
        backend,
        data.ids,
        ReviewScorer(refs, stack=False),
        str(store.path.resolve()),
        store.array.dtype,
        store.confidence is not None,
    )
    # a task rather than client.scatter: scattered data that a dying worker held can cancel
    # the tasks needing it; a task's result is recomputed from its spec (held by the scheduler)
    shipped = client.submit(_given, head, key=f"head-{run}", pure=False)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    pending = iter(order)

    def submit(index: int) -> Any:
        return client.submit(
            propose_slice, shipped, index, data.images[index], key=f"slice-{run}-{index}",
            retries=retries, pure=False,
        )  # fmt: skip

    futures = as_completed([submit(i) for i in itertools.islice(pending, in_flight or 4 * workers)])
    for done, future in enumerate(futures, start=1):
        res: SliceResult = future.result()
        future.release()
        store.mark_done(res.index)
        if (index := next(pending, None)) is not None:
            futures.add(submit(index))
        res.done, res.total = done, len(order)
        if done == 1:
            res.timings |= fit_timings
        yield res


@contextlib.contextmanager
def connect(scheduler: str, workers: int = 2) -> Iterator[Client]:
    """A client of ``scheduler``: ``local`` starts a ``LocalCluster`` of ``workers``
    processes with one thread each (closed on exit); otherwise the address of a running
    scheduler (``tcp://HOST:PORT``), e.g. one started by dask-jobqueue or dask-kubernetes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise RuntimeError(
            "--scheduler needs dask.distributed: pip install 'distributed>=2023.1'"
        ) from err
    if scheduler == "local":
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}")
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cl,
            Client(cl) as client,
        ):
            yield client
        return
    if not scheduler.startswith(("tcp://", "tls://", "inproc://")):
        raise ValueError(
            f"--scheduler {scheduler}: give 'local' or a scheduler address tcp://HOST:PORT"
        )
    with Client(scheduler) as client:
        yield client
