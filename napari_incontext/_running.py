"""Starting, streaming, resuming and cancelling runs (main-thread side).

A run has two worker phases: a scan of the user's labels (which slices hold labels, their
hashes, copies of the examples), then the engine's propagate. Between them, on the main
thread, only small bookkeeping happens: statuses, example weights, the target list.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info, show_warning

from napari_incontext._controls import RunSettings
from napari_incontext._layers import Workspace, channel_note
from napari_incontext._progress import RunProgress
from napari_incontext._session import Session
from napari_incontext._workers import Run, Scan, start_run, start_scan
from src_models.order import select_targets
from src_models.provenance import automatic_choices, describe_choices, run_record
from src_models.scribbles import sparse_message

if TYPE_CHECKING:
    from napari.qt.threading import FunctionWorker, GeneratorWorker

    from src_models.types import SliceResult


def source_folder(layer: Any) -> Path | None:
    """The folder napari read a layer from, when it was opened from a folder."""
    path = getattr(getattr(layer, "source", None), "path", None)
    return Path(path) if path and Path(path).is_dir() else None


def example_signature(scan: Scan, weights: dict[int, float]) -> list[tuple[int, str, float]]:
    """What the example set is: (slice, labels hash, weight) for each example."""
    return [(i, scan.keys[i][0], weights[i]) for i in sorted(scan.labels)]


class Runner:
    """Runs the engine for the widget; one run at a time.

    Args:
        session: the review state (statuses, cache, backend, fitted-head memo).
        on_result: main-thread slot per finished slice.
        on_finished: main-thread slot after success, cancel or error.
        on_status: a line for the widget's status label (how the run ended, too).
        progress: the widget's progress bar and ETA line.
    """

    def __init__(
        self,
        session: Session,
        on_result: Callable[[SliceResult], None],
        on_finished: Callable[[], None],
        on_status: Callable[[str], None],
        progress: RunProgress,
    ) -> None:
        self.session = session
        self.progress = progress
        self.error: str | None = None
        self.on_result, self.on_finished, self.on_status = on_result, on_finished, on_status
        self.scanner: FunctionWorker | None = None
        self.worker: GeneratorWorker | None = None
        self.backend_name = ""
        self.chosen = ""  # the run's automatic choices in words ("per_slice off, …")
        self._settings: RunSettings | None = None  # the running run's, until its first result
        self._cancelled = False

    @property
    def busy(self) -> bool:
        return self.scanner is not None or self.worker is not None

    def start(self, workspace: Workspace, settings: RunSettings, only: int | None) -> None:
        """Scan the labels in a worker, then run (``only``: just that slice)."""
        if self.busy:
            return
        readers = {i: workspace.slice_reader(i) for i in range(len(workspace))}
        folder = None if workspace.is_set else source_folder(workspace.image.get())
        self._cancelled, self.error = False, None
        self.on_status("reading your labels…")
        self.scanner = start_scan(
            readers,
            set(self.session.baseline),
            folder,
            on_done=functools.partial(self._scanned, workspace, settings, only),
            on_error=self._end_scan,
        )

    def _end_scan(self, error: Exception) -> None:
        self.scanner = None
        self.on_status(f"failed before the first slice: {error}")
        self.on_finished()

    def _scanned(
        self, workspace: Workspace, settings: RunSettings, only: int | None, scan: Scan
    ) -> None:
        self.scanner = None
        try:
            if not self._cancelled:
                self._launch(workspace, settings, only, scan)
        except ValueError as error:
            show_error(str(error))
            self.on_status(f"not started: {error}")
        if self.worker is None:
            self.on_finished()

    def _targets(
        self, workspace: Workspace, settings: RunSettings, only: int | None, key: str, examples
    ) -> list[int]:
        n = len(workspace)
        if only is not None:
            return [only] if only not in examples else []
        targets = select_targets(n, examples, settings.first, settings.last, settings.direction)
        targets = [t for t in targets if t not in self.session.proposal_edits]
        if self.session.resume.get("key") == key:
            targets = [t for t in targets if t not in self.session.resume["done"]]
        return targets

    def _launch(
        self, workspace: Workspace, settings: RunSettings, only: int | None, scan: Scan
    ) -> None:
        session = self.session
        for index, (key, has) in scan.keys.items():
            session.observe(index, key, has)
        examples = sorted(scan.labels)
        weights = session.weights(examples)
        if session.extra is None and not any(weights.values()):
            raise ValueError(
                "no example: paint at least one object on one slice, then Run"
                if not examples
                else "every labelled slice is left out (partly accepted, or accepted slices "
                "excluded): paint or correct one slice, or accept slices fully"
            )
        key = repr((settings.key(), example_signature(scan, weights), id(session.extra)))
        targets = self._targets(workspace, settings, only, key, examples)
        if not targets:
            show_info("nothing left to propose here: every chosen slice has a proposal or labels")
            self.on_status("nothing left to propose: every chosen slice has a proposal or labels")
            return
        if only is None and session.resume.get("key") != key:
            session.resume = {"key": key, "done": set()}
        self.backend_name, self._settings, self.chosen = settings.backend, settings, ""
        images, channels = workspace.images(), channel_note(workspace)
        if settings.all_channels and not workspace.channels:
            images, names = workspace.channel_images()
            channels = f" on {len(names)} channels ({', '.join(names)})"
        labels = [scan.labels.get(i) for i in range(len(workspace))]
        if settings.unpainted == "background" and (message := sparse_message(labels)):
            show_warning(message)  # before the run; the engine's own warning is off
        run = Run(
            images,
            labels,
            functools.partial(session.backend, settings.backend, **settings.options),
            cache=session.cache,
            targets=targets,
            link=settings.link and not workspace.is_set,
            weights=weights,
            extra=session.extra,
            stop_below=settings.stop_below,
            memo=session.memo,
            unpainted=settings.unpainted,
            background_id=settings.background_id,
            warn_sparse=False,
            channel_axis=-1 if settings.all_channels or workspace.channels else None,
        )
        left = "resuming: " if session.resume.get("done") else ""
        self.on_status(
            f"{settings.backend}{channels}: {len(examples)} example(s), {left}{len(targets)} "
            "to propose…"
        )
        self.worker = start_run(
            run,
            len(targets),
            desc=f"{settings.backend}: proposing",
            on_result=self._result,
            on_finished=self._finished,
            on_error=self._failed,
        )
        self.progress.start(len(targets))

    def _result(self, result: SliceResult) -> None:
        if self._settings is not None:  # the first result carries the automatic choices
            self._record_run(self._settings, result)
            self._settings = None
        if "done" in self.session.resume:
            self.session.resume["done"].add(result.index)
        self.progress.step(result.done, result.total)
        self.on_result(result)

    def _record_run(self, settings: RunSettings, first: SliceResult) -> None:
        """Add the run's backend, options and automatic choices to the session's ``runs``
        (link is the user's checkbox here, never chosen from the data)."""
        chosen = automatic_choices(first.timings, link_auto=False)
        backend = self.session.built_backend or settings.backend
        device = settings.options.get("device")
        record = run_record(backend, chosen, link=settings.link, device=device)
        self.session.runs.append(record)
        self.chosen = describe_choices(chosen)

    def _failed(self, error: Exception) -> None:
        self.error = str(error)

    def _finished(self) -> None:
        self.worker = None
        note = f"{self.chosen} (chosen from the data)" if self.chosen else ""
        self.on_status(self.progress.finish(self._cancelled, self.error, note))
        self.on_finished()

    @property
    def cancelled(self) -> bool:
        """True once the current (or last) run was asked to stop."""
        return self._cancelled

    def cancel(self) -> None:
        """Stop after the slice being computed (a scan in progress never starts its run)."""
        self._cancelled = True
        if self.worker is not None:
            self.worker.quit()
            self.on_status("cancelling after the current slice…")
