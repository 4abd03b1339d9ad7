"""All threading of the plugin: the engine's generator runs in a napari thread worker.

Rules kept here (house style 11-12): signals are connected before ``start()``; layers are
only touched in slots of ``yielded``/``errored``/``finished``, which Qt runs on the main
thread; ``quit()`` stops the run at the next finished slice; errors become napari error
notifications, never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.engine import propagate
from src_models.types import SliceResult


class RunError(Exception):
    """An exception raised inside a run, re-raised so the worker reports it.

    superqt's generator worker treats a ``RuntimeError`` escaping the generator as "the
    worker was deleted" and only warns; torch raises RuntimeError for out-of-memory and
    most model errors, so every exception is wrapped into this type to reach ``errored``.
    """


def guarded(results: Generator[SliceResult, None, None]) -> Generator[SliceResult, None, None]:
    """Yield from ``results``; re-raise any exception as :class:`RunError`."""
    try:
        yield from results
    except Exception as error:
        raise RunError(f"{type(error).__name__}: {error}") from error


def _run(
    images: Any,
    labels: Any,
    make_backend: Callable[[], Backend],
    cache: FeatureCache,
    targets: Sequence[int],
    link: bool,
) -> Generator[SliceResult, None, None]:
    def results() -> Generator[SliceResult, None, None]:
        backend = make_backend()  # building may load weights: keep it off the main thread
        yield from propagate(images, labels, backend, cache=cache, targets=targets, link=link)

    yield from guarded(results())


def start_run(
    images: np.ndarray | list[np.ndarray],
    labels: list[np.ndarray],
    make_backend: Callable[[], Backend],
    cache: FeatureCache,
    targets: Sequence[int],
    *,
    desc: str = "proposing",
    link: bool = False,
    on_result: Callable[[SliceResult], None],
    on_finished: Callable[[], None],
    on_error: Callable[[Exception], None] | None = None,
) -> GeneratorWorker:
    """Start ``propagate`` in a thread worker and return the running worker.

    Args:
        images: pixels copied from the layers (the worker must not read layers).
        labels: one (Y, X) label array per slice/image, copied likewise.
        make_backend: returns the backend (the session's, rebuilt only when its options
            changed); called in the worker thread because it may load a model.
        cache: the session's feature cache (only this run's worker uses it while it runs).
        targets: slice indices to predict; they set the progress bar's total.
        link: keep only proposals touching the same id on the neighbouring slice (stacks).
        on_result: main-thread slot for each finished slice.
        on_finished: main-thread slot run after success, cancel or error.
        on_error: main-thread slot for an error, after the notification is shown.
    """
    worker = create_worker(
        _run,
        images,
        labels,
        make_backend,
        cache,
        list(targets),
        link,
        _progress={"total": len(targets), "desc": desc},
        _ignore_errors=True,  # errors go to our notification below, not re-raised
    )
    worker.yielded.connect(on_result)
    worker.errored.connect(lambda error: report_error(error, on_error))
    worker.finished.connect(on_finished)
    worker.start()
    return worker


def report_error(error: Exception, on_error: Callable[[Exception], None] | None = None) -> None:
    """Show a run's error as a napari notification, then call ``on_error``."""
    show_error(f"In-context run failed: {error}")
    if on_error is not None:
        on_error(error)
