"""All threading of the plugin: runs, label scans and saving happen in napari thread workers.

Rules kept here (house style 11-12): signals are connected before ``start()``; layers are
only touched in slots of ``yielded``/``returned``/``finished``, which Qt runs on the main
thread; ``quit()`` stops a run at the next finished slice; errors become napari error
notifications, never prints. Work proportional to the data (reading and hashing every slice,
copying examples, normalising the stack) runs here, never on the main thread.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from napari.qt.threading import FunctionWorker, GeneratorWorker, create_worker
from napari.utils.notifications import show_error

from napari_incontext._compat import release_memory
from src_models.backends.base import Backend
from src_models.engine import propagate
from src_models.hashing import content_key
from src_models.types import SliceResult

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class RunError(Exception):
    """An exception raised inside a worker, re-raised so the worker reports it.

    superqt's generator worker treats a ``RuntimeError`` escaping the generator as "the
    worker was deleted" and only warns; torch raises RuntimeError for out-of-memory and
    most model errors, so every exception is wrapped into this type to reach ``errored``.
    """


def guarded(results: Generator[Any, None, None]) -> Generator[Any, None, None]:
    """Yield from ``results``; re-raise any exception as :class:`RunError`."""
    try:
        yield from results
    except Exception as error:
        raise RunError(f"{type(error).__name__}: {error}") from error


def report_error(error: Exception, on_error: Callable[[Exception], None] | None = None) -> None:
    """Show a worker's error as a napari notification, then call ``on_error``."""
    show_error(f"In-context run failed: {error}")
    if on_error is not None:
        on_error(error)


# ---------------------------------------------------------------------- scanning labels
Keys = dict[int, tuple[str, bool]]


def hash_slices(readers: Mapping[int, Any]) -> Keys:
    """Per slice index: (content hash, holds any label) of an array-like of labels."""
    out: Keys = {}
    for index, reader in readers.items():
        labels = np.asarray(reader)
        out[index] = (content_key(labels), bool(labels.any()))
    return out


@dataclass
class Scan:
    """The user's labels at the start of a run (read in a worker).

    Attributes:
        keys: (hash, holds labels) of every slice holding labels or asked for.
        labels: a copy of every slice holding labels (the run's examples).
    """

    keys: Keys = field(default_factory=dict)
    labels: dict[int, np.ndarray] = field(default_factory=dict)


def check_folder_stack(folder: Path | None) -> None:
    """Refuse a folder of differently sized images that napari opened as one lazy stack.

    napari stacks a dropped folder with the first image's shape; slices of another size
    would fail or be wrong in the middle of a run.
    """
    if folder is None or not folder.is_dir():
        return
    from imageio import v3 as iio

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    shapes = {}
    for path in files:
        shapes.setdefault(tuple(iio.improps(path).shape[:2]), path.name)
        if len(shapes) > 1:
            (a, first), (b, other) = list(shapes.items())[:2]
            raise ValueError(
                f"{folder.name!r} holds images of different sizes ({first}: {a}, {other}: {b}) "
                "that napari opened as one stack: open them as an image set instead (File > "
                "Open Files…, select every image, or viewer.open(sorted(glob('folder/*')))), "
                "label one image, choose it and its labels here, then Run"
            )


def scan_labels(readers: Mapping[int, Any], wanted: set[int], folder: Path | None = None) -> Scan:
    """Find the slices holding labels, copy them, and hash them and the ``wanted`` ones."""
    check_folder_stack(folder)
    scan = Scan()
    for index, reader in readers.items():
        if reader is None:
            continue
        labels = np.asarray(reader)
        has = bool(labels.any())
        if has or index in wanted:
            scan.keys[index] = (content_key(labels), has)
        if has:
            scan.labels[index] = np.array(labels)
    return scan


def _scan_guarded(readers: Mapping[int, Any], wanted: set[int], folder: Path | None) -> Scan:
    try:
        return scan_labels(readers, wanted, folder)
    except Exception as error:
        raise RunError(str(error)) from error


SPARE_POOL_THREADS = 2
_IN_FLIGHT: set[Any] = set()  # our workers started and not finished


def start_in_pool(worker: FunctionWorker | GeneratorWorker) -> None:
    """Start ``worker``, keeping threads of Qt's global pool free for Qt itself.

    superqt runs workers on ``QThreadPool.globalInstance()``, sized to the core count. Qt's own
    image conversions (napari's progress-bar spinner, icon scaling) split work onto that pool
    and wait for it on the main thread while it holds the GIL; if GIL-hungry workers filled
    the pool, the viewer would deadlock (seen on a 2-core machine: a run plus the memory
    release after a cancel). superqt starts a worker a few ms after ``start()``, so the
    pool's active count lags: our workers in flight are counted on top of it (an
    overestimate at worst, which only allows a thread more).
    """
    from qtpy.QtCore import QThreadPool

    _IN_FLIGHT.add(worker)
    worker.finished.connect(lambda: _IN_FLIGHT.discard(worker))
    pool = QThreadPool.globalInstance()
    needed = pool.activeThreadCount() + len(_IN_FLIGHT) + SPARE_POOL_THREADS
    if pool.maxThreadCount() < needed:
        pool.setMaxThreadCount(needed)
    worker.start()


def start_function(
    func: Callable[..., Any],
    *args: Any,
    on_done: Callable[[Any], None],
    on_error: Callable[[Exception], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    notify: bool = True,
) -> FunctionWorker:
    """Run ``func(*args)`` in a worker; ``on_done(result)`` on the main thread, then
    ``on_finished()`` (also after an error). Every slot is connected before the start."""
    worker = create_worker(func, *args, _ignore_errors=True)
    worker.returned.connect(on_done)
    if notify:
        worker.errored.connect(lambda error: report_error(error, on_error))
    elif on_error is not None:
        worker.errored.connect(on_error)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    start_in_pool(worker)
    return worker


def start_scan(
    readers: Mapping[int, Any],
    wanted: set[int],
    folder: Path | None,
    on_done: Callable[[Scan], None],
    on_error: Callable[[Exception], None],
) -> FunctionWorker:
    """Scan the user's labels in a worker before a run."""
    return start_function(
        _scan_guarded, dict(readers), set(wanted), folder, on_done=on_done, on_error=on_error
    )


# ---------------------------------------------------------------------- runs
class Run:
    """One propagate run; :meth:`release` drops every array it holds (after the worker
    finished or was cancelled), so a cancelled run does not keep the normalised stack."""

    def __init__(
        self,
        images: Any,
        labels: list[np.ndarray | None],
        make_backend: Callable[[], Backend],
        **options: Any,
    ) -> None:
        self.images, self.labels = images, labels
        self.make_backend = make_backend
        self.options = options
        self._results: Generator[SliceResult, None, None] | None = None

    def results(self) -> Generator[SliceResult, None, None]:
        def run() -> Generator[SliceResult, None, None]:
            backend = self.make_backend()  # may load weights: keep it off the main thread
            self._results = propagate(self.images, self.labels, backend, **self.options)
            yield from self._results

        yield from guarded(run())

    def release(self) -> None:
        if self._results is not None:
            self._results.close()  # frees the generator's frame: prepared images, features
        self._results = None
        self.images = self.labels = None
        self.options = {}
        start_in_pool(create_worker(release_memory, _ignore_errors=True))  # can take a second


def start_run(
    run: Run,
    total: int,
    *,
    desc: str,
    on_result: Callable[[SliceResult], None],
    on_finished: Callable[[], None],
    on_error: Callable[[Exception], None] | None = None,
) -> GeneratorWorker:
    """Start a :class:`Run` in a thread worker (progress bar of ``total`` steps)."""
    worker = create_worker(
        run.results, _progress={"total": total, "desc": desc}, _ignore_errors=True
    )
    worker.yielded.connect(on_result)
    worker.errored.connect(lambda error: report_error(error, on_error))
    worker.finished.connect(run.release)
    worker.finished.connect(on_finished)
    start_in_pool(worker)
    return worker


# ---------------------------------------------------------------------- following edits
class LabelWatch:
    """Hashes slices of the user's labels in a worker, one request at a time; pending
    requests are merged. ``on_keys(keys, generations)`` runs on the main thread; the
    caller drops a slice whose generation changed since the request (an accept in between).
    """

    def __init__(self, on_keys: Callable[[Keys, dict[int, int]], None]) -> None:
        self.on_keys = on_keys
        self.pending: tuple[dict[int, Any], dict[int, int]] | None = None
        self.worker: FunctionWorker | None = None

    def request(self, readers: Mapping[int, Any], generations: Mapping[int, int]) -> None:
        if self.pending is None:
            self.pending = ({}, {})
        self.pending[0].update(readers)
        self.pending[1].update(generations)
        self._next()

    def _next(self) -> None:
        if self.worker is not None or self.pending is None:
            return
        readers, generations = self.pending
        self.pending = None
        self.worker = start_function(
            hash_slices,
            readers,
            on_done=lambda keys: self.on_keys(keys, generations),
            on_error=lambda _error: None,  # a layer replaced mid-hash: the next event retries
            on_finished=self._finished,
            notify=False,
        )

    def _finished(self) -> None:
        self.worker = None
        self._next()

    def busy(self) -> bool:
        return self.worker is not None or self.pending is not None
