"""The chosen backend's weights, before a run: found or missing, and "Get weights…".

The status comes from the registry (``BackendInfo.needs(config)``, plus SAM for SAM
refinement) and :func:`src_models.weights.find_local` (file checks only, no model import).
"Get weights…" downloads the missing checkpoints with :func:`src_models.weights_download.
download` (size, sha256 and probe-load checks, atomic) in a worker, with a napari progress bar
fed from the main thread; when downloading is impossible (gated weights, ``$NAPARI_INCONTEXT_
OFFLINE``, no source) it explains where to put the file instead. A file the user chose for a
weight slot (backbone, head, SAM) replaces that slot's lookup once it passes the checks a run
makes (:func:`file_problem`).
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
from napari_incontext._workers import start_function
from src_models import registry, weights
from src_models.weights import (
    WeightsSpec,
    check_status,
    find_local,
    get_spec,
    load_failure,
    missing_message,
    probe_checkpoint,
)

Report = Callable[[int, int, Any], None]


def needed(name: str, config: Any, options: dict[str, Any], *, given: bool = False) -> list[str]:
    """Checkpoint names a run of backend ``name`` looks up; ``given`` False leaves out those
    a file chosen for their slot replaces (``registry.slot_of``)."""
    names = list(registry.get_info(name).needs(config))
    if options.get("sam_refine"):
        names.append(f"sam_{options['sam_refine']}")
    chosen = set() if given else {slot for slot in registry.WEIGHT_SLOTS if options.get(slot)}
    return [n for n in dict.fromkeys(names) if registry.slot_of(n) not in chosen]


_CHECKED: dict[tuple[str, int, int], str] = {}  # (file, size, mtime) → file_problem's answer


def file_problem(path: Path, replaces: list[WeightsSpec]) -> str:
    """Why the chosen file ``path`` cannot stand in for the checkpoints ``replaces`` ("" when
    it can): it must open weights-only as a state dict and, under an official file name,
    match that checkpoint's size and sha256 (the checks of a run and of a download, remembered
    per file version; a hash runs on the main thread once per file version)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKED:
        official = [s for s in replaces if s.file_name == path.name]
        status = check_status(path, official[0]) if official else "ok"
        try:
            probe_checkpoint(path)
            problem = "" if status == "ok" else f"{path.name}: {status}"
        except RuntimeError as error:
            why = load_failure(error.__cause__) if error.__cause__ else str(error)
            problem = f"{path.name} is not a weights-only checkpoint ({why})"
        _CHECKED[key] = problem
    return _CHECKED[key]


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

    def show_for(self, name: str, config: Any, options: dict[str, Any]) -> None:
        """Look the checkpoints of this backend and options up; ``config`` None = the options
        are invalid (the run will say why)."""
        if self.worker is not None:
            return
        files = {slot: Path(options[slot]) for slot in registry.WEIGHT_SLOTS if options.get(slot)}
        self.missing = []
        if config is None:
            text, self.reason = "weights: shown once the options are valid", ""
        elif problem := self._file_problem(name, config, options, files):
            text = self.reason = problem
        else:
            specs = [get_spec(n) for n in needed(name, config, options)]
            self.missing = [s for s in specs if find_local(s) is None]
            text, self.reason = self._describe(name, specs, files)
        self.status_label.setText(text)
        self.get_button.setVisible(bool(self.missing))
        self.ready_changed.emit()

    @staticmethod
    def _file_problem(name: str, config: Any, options: dict[str, Any], files: dict) -> str:
        """Why a chosen file cannot be used ("" when every one can)."""
        names = needed(name, config, options, given=True)
        for slot, path in files.items():
            label = SLOT_LABELS[slot][0]
            if not path.is_file():
                return f"the {label} file {path} does not exist"
            replaces = [get_spec(n) for n in names if registry.slot_of(n) == slot]
            if problem := file_problem(path, replaces):
                return f"{label}: {problem}: choose another file"
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
