"""The chosen backend's weights, before a run: found or missing, and "Get weights…".

The status comes from the registry (``BackendInfo.needs(config)``, plus SAM for SAM
refinement) and :func:`src_models.weights.find_local` (file checks only, no model import).
"Get weights…" downloads the missing checkpoints with :func:`src_models.weights_download.
download` (size, sha256 and probe-load checks, atomic) in a worker, with a napari progress bar
fed from the main thread; when downloading is impossible (gated weights, ``$NAPARI_INCONTEXT_
OFFLINE``, no source) it explains where to put the file instead. A file the user chose for a
weight slot (backbone, head, SAM) replaces that slot's lookup once it passes the checks a run
makes (:func:`napari_incontext._weights_check.file_problem`), checked in a worker: the field
says "checking…" and Run stays disabled until the answer comes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari.utils import progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

from napari_incontext._options_form import SLOT_LABELS
from napari_incontext._weights_check import FileChecks, known_problem
from napari_incontext._workers import start_function
from src_models import registry, weights
from src_models.weights import WeightsSpec, find_local, get_spec, missing_message

Report = Callable[[int, int, Any], None]
Job = tuple[str, Path, list[WeightsSpec]]  # weight slot, chosen file, checkpoints it replaces


def needed(name: str, config: Any, options: dict[str, Any], *, given: bool = False) -> list[str]:
    """Checkpoint names a run of backend ``name`` looks up; ``given`` False leaves out those
    a file chosen for their slot replaces (``registry.slot_of``)."""
    names = list(registry.get_info(name).needs(config))
    if options.get("sam_refine"):
        names.append(f"sam_{options['sam_refine']}")
    chosen = set() if given else {slot for slot in registry.WEIGHT_SLOTS if options.get(slot)}
    return [n for n in dict.fromkeys(names) if registry.slot_of(n) not in chosen]


def _downloadable(spec: WeightsSpec) -> bool:
    from src_models.weights_download import downloads_allowed

    return downloads_allowed() and not spec.gated and bool(spec.url or spec.hf_id)


def fetch(names: list[str], report: Report) -> list[Path]:
    """Download ``names`` one after the other (in a worker); ``report(i, received, expected)``."""
    from src_models import weights_download

    out = []
    for i, name in enumerate(names):
        out.append(
            weights_download.download(
                name, progress=False, report=lambda done, total, i=i: report(i, done, total)
            )
        )
    return out


def _size(specs: list[WeightsSpec]) -> str:
    if not all(s.size for s in specs):
        return "size unknown"
    return f"{sum(s.size or 0 for s in specs) / 1e6:,.1f} MB"


class WeightsPanel(QWidget):
    """Weights status of the chosen backend and the "Get weights…" button.

    Signals:
        ready_changed: whether a run can start changed (see :attr:`reason`).
        downloaded: a download finished (the backend menu's marks change).
    """

    ready_changed = Signal()
    downloaded = Signal()
    _bytes = Signal(int, int, object)  # from the worker thread, queued to the main thread

    def __init__(self) -> None:
        super().__init__()
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.get_button = QPushButton("Get weights…")
        self.get_button.setToolTip("download the missing checkpoints, or see where to put them")
        self.get_button.clicked.connect(self.get_weights)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status_label, 1)
        layout.addWidget(self.get_button)
        self.missing: list[WeightsSpec] = []
        self.reason = ""  # why a run cannot start ("" = it can)
        self.worker: Any = None
        self.bars: dict[int, progress] = {}
        self._bytes.connect(self._on_bytes)
        self.checks = FileChecks(self._recheck)
        self._shown: tuple[str, Any, dict[str, Any]] | None = None

    def show_for(self, name: str, config: Any, options: dict[str, Any]) -> None:
        """Look the checkpoints of this backend and options up; ``config`` None = the options
        are invalid (the run will say why)."""
        if self.worker is not None:
            return
        self._shown = (name, config, dict(options))
        files = {slot: Path(options[slot]) for slot in registry.WEIGHT_SLOTS if options.get(slot)}
        self.missing = []
        jobs = self._jobs(name, config, options, files) if config is not None else []
        if config is None:
            self.checks.start([])  # an answer still coming is stale now
            text, self.reason = "weights: shown once the options are valid", ""
        elif isinstance(jobs, str):
            self.checks.start([])
            text = self.reason = jobs
        elif self.checks.start([(path, specs) for _, path, specs in jobs]):
            names = ", ".join(path.name for _, path, _ in jobs)
            text, self.reason = f"checking {names}…", f"checking {names} (weights file)…"
        elif problem := self._file_problem(jobs):
            text = self.reason = problem
        else:
            specs = [get_spec(n) for n in needed(name, config, options)]
            self.missing = [s for s in specs if find_local(s) is None]
            text, self.reason = self._describe(name, specs, files)
        self.status_label.setText(text)
        self.get_button.setVisible(bool(self.missing))
        self.ready_changed.emit()

    def _recheck(self) -> None:
        """The chosen files' answers came (main thread): show them."""
        if self._shown is not None:
            self.show_for(*self._shown)

    @staticmethod
    def _jobs(name: str, config: Any, options: dict[str, Any], files: dict) -> list[Job] | str:
        """(slot, chosen file, the checkpoints it stands in for) of each chosen file; a
        missing file: why."""
        names = needed(name, config, options, given=True)
        jobs: list[Job] = []
        for slot, path in files.items():
            if not path.is_file():
                return f"the {SLOT_LABELS[slot][0]} file {path} does not exist"
            specs = [get_spec(n) for n in names if registry.slot_of(n) == slot]
            jobs.append((slot, path, specs))
        return jobs

    @staticmethod
    def _file_problem(jobs: list[Job]) -> str:
        """Why a chosen file cannot be used ("" when every one can), from the answers of
        the checks (all known by now)."""
        for slot, path, _ in jobs:
            problem = known_problem(path)
            if problem is None:  # changed since its check
                problem = f"{path.name} changed during its check"
            if problem:
                return f"{SLOT_LABELS[slot][0]}: {problem}: choose another file"
        return ""

    def _describe(
        self, name: str, specs: list[WeightsSpec], files: dict[str, Path]
    ) -> tuple[str, str]:
        if self.missing:
            names = ", ".join(s.file_name for s in self.missing)
            reason = f"{name} needs {names}: Get weights… downloads it or says where to put it"
            return f"weights missing: {names} (put them in {weights.cache_dir()})", reason
        found = [f"{path.name} (your file)" for path in files.values()]
        found += [f"{s.file_name}" for s in specs]
        return ("weights: " + (f"ready ({', '.join(found)})" if found else "none needed")), ""

    # ------------------------------------------------------------------ getting weights
    def get_weights(self) -> None:
        """Download the missing checkpoints (after a question), or explain where they go."""
        specs = [get_spec(s.name) for s in self.missing]  # the registry's current specs
        if not specs or self.worker is not None:
            return
        manual = [s for s in specs if not _downloadable(s)]
        if manual:
            text = "\n\n".join(missing_message(s) for s in manual)
            QMessageBox.information(self, "Weights to get by hand", text)
            return
        files = ", ".join(s.file_name for s in specs)
        answer = QMessageBox.question(
            self,
            "Get weights",
            f"Download {files} ({_size(specs)}) into {weights.cache_dir()}? Each file is "
            "checked (size, sha256, loadable) before it is used.\n\nOffline: copy the files "
            "there, or into "
            "the folder named by $NAPARI_INCONTEXT_WEIGHTS, and choose the backend again.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self._start([s.name for s in specs])

    def _start(self, names: list[str]) -> None:
        self.reason = "downloading weights…"
        self.status_label.setText(f"downloading {', '.join(names)}…")
        self.get_button.setEnabled(False)
        self.ready_changed.emit()
        self.worker = start_function(
            fetch,
            names,
            self._bytes.emit,
            on_done=lambda paths: show_info(f"weights ready: {', '.join(p.name for p in paths)}"),
            on_error=lambda error: show_error(f"Get weights failed: {error}"),
            on_finished=self._finished,
            notify=False,
        )

    def _on_bytes(self, index: int, done: int, expected: Any) -> None:
        bar = self.bars.get(index)
        if bar is None:
            bar = self.bars[index] = progress(total=expected or 0, desc="downloading weights")
        bar.update(done - bar.n)

    def _finished(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()
        self.worker = None
        self.get_button.setEnabled(True)
        self.downloaded.emit()
