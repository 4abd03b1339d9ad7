"""Checking weights files the user chose, in a worker: a 2.5 GB SAM checkpoint takes seconds
to hash, which on the main thread would freeze napari.

A file must open weights-only as a state dict and, under an official file name, match that
checkpoint's size and sha256 (the checks a run and a download make). Answers are remembered
per file version (path, size, mtime), so each version is checked once per process.
:class:`FileChecks` runs the checks of one request at a time: a request made while an earlier
one is still checking makes the earlier answer stale, and a stale answer is never shown (it is
still remembered for its file version).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari_incontext._workers import start_function
from src_models.weights import WeightsSpec, check_status, load_failure, probe_checkpoint

Key = tuple[str, int, int]
Job = tuple[Path, list[WeightsSpec]]  # a chosen file and the checkpoints it stands in for
_CHECKED: dict[Key, str] = {}  # file version → why it cannot be used ("" = it can)


def file_key(path: Path) -> Key:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def known_problem(path: Path) -> str | None:
    """The remembered answer for this version of ``path``; None when it was never checked."""
    try:
        return _CHECKED.get(file_key(path))
    except OSError:
        return None


def file_problem(path: Path, replaces: list[WeightsSpec]) -> str:
    """Why ``path`` cannot stand in for the checkpoints ``replaces`` ("" when it can);
    remembered per file version. Slow on a large file (it is hashed): run it in a worker."""
    key = file_key(path)
    if key not in _CHECKED:
        try:
            official = [s for s in replaces if s.file_name == path.name]
            status = check_status(path, official[0]) if official else "ok"
            probe_checkpoint(path)
            problem = "" if status == "ok" else f"{path.name}: {status}"
        except RuntimeError as error:
            why = load_failure(error.__cause__) if error.__cause__ else str(error)
            problem = f"{path.name} is not a weights-only checkpoint ({why})"
        except OSError as error:
            problem = f"{path.name} cannot be read ({error.strerror or error})"
        _CHECKED[key] = problem
    return _CHECKED[key]


def _check_all(jobs: Sequence[Job]) -> None:
    for path, replaces in jobs:
        try:
            file_problem(path, replaces)
        except Exception as error:  # noqa: BLE001 - remembered, so the check is not retried forever
            _CHECKED[file_key(path)] = f"{path.name} could not be checked ({error})"


class FileChecks:
    """Checks chosen files in workers and calls ``on_ready()`` (main thread) once the
    latest request's files are all remembered.

    Attributes:
        in_flight: workers still checking (the latest request's or stale ones).
    """

    def __init__(self, on_ready: Callable[[], None]) -> None:
        self.on_ready = on_ready
        self.request = 0
        self.in_flight = 0
        self.workers: list[Any] = []

    def start(self, jobs: Sequence[Job]) -> bool:
        """A new request (every earlier one becomes stale): check the ``jobs`` whose file
        version has no remembered answer. Returns True when a check started (wait for
        ``on_ready``), False when every answer is known."""
        self.request += 1
        unknown = [(path, specs) for path, specs in jobs if known_problem(path) is None]
        if not unknown:
            return False
        request = self.request
        self.in_flight += 1
        worker = start_function(
            _check_all,
            unknown,
            on_done=lambda _none: None,
            on_finished=lambda: self._finished(request, worker),
            notify=False,
        )
        self.workers.append(worker)
        return True

    def _finished(self, request: int, worker: Any) -> None:
        self.in_flight -= 1
        if worker in self.workers:
            self.workers.remove(worker)
        if request == self.request:  # a stale answer is remembered, never shown
            self.on_ready()
