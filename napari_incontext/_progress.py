"""A run's progress in the widget: slices done / total, ETA, and how the run ended.

The bar counts proposed slices and gives the ETA during a run (the mean wall-clock seconds
per slice so far times the slices left); the line beside it gives the last run's seconds per
slice after it. :meth:`RunProgress.finish` words the outcome: finished, cancelled at k of n,
or failed with the reason.
"""

from __future__ import annotations

import time

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

REVIEW_HINT = "review: lowest score first; accept, reject or correct"


def duration(seconds: float) -> str:
    """``12 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class RunProgress(QWidget):
    """Progress bar (slices done / total, ETA) and the last run's seconds per slice."""

    def __init__(self) -> None:
        super().__init__()
        self.bar = QProgressBar()
        self.bar.setFormat("no run yet")
        self.bar.setValue(0)
        self.info = QLabel("")
        self.info.setToolTip("the last run's wall-clock seconds per slice (loading included)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.info)
        self.done = self.total = 0
        self.started = 0.0
        self.last_per_slice: float | None = None
        # a result only records its count: the bar repaints at most every 200 ms, so a fast
        # run spends no main-thread time on it between the slices it writes
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._show)

    def start(self, total: int) -> None:
        """A run of ``total`` slices begins (the clock includes loading the model)."""
        self.done, self.total, self.started = 0, total, time.perf_counter()
        self.bar.setFormat("%v / %m slices, ETA after the first slice")
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(0)

    def step(self, done: int, total: int) -> None:
        """``done`` of ``total`` slices are proposed (shown within 200 ms)."""
        self.done, self.total = done, total
        if not self._timer.isActive():
            self._timer.start()

    def _show(self) -> None:
        done, total = self.done, self.total
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        per = (time.perf_counter() - self.started) / max(done, 1)
        # in the bar's own text: a repaint, no relayout of the dock on every slice
        self.bar.setFormat(f"%v / %m slices, ETA {duration(per * (total - done))}")

    def finish(self, cancelled: bool, error: str | None, note: str = "") -> str:
        """The status line of the run that just ended, with ``note`` (e.g. the automatic
        choices) after how it ended; the info line keeps its s/slice."""
        elapsed = time.perf_counter() - self.started
        self._timer.stop()
        done, total = self.done, self.total
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        if done:
            self.last_per_slice = elapsed / done
        per = self.last_per_slice
        self.bar.setFormat("%v / %m slices")
        self.info.setText(f"last run: {per:.2f} s/slice" if per is not None else "")
        note = f"; {note}" if note else ""
        if error is not None:
            return f"failed at {done} of {total} slices: {error}{note}"
        if cancelled and done < total:
            return f"cancelled at {done} of {total} slices (Run resumes){note}; {REVIEW_HINT}"
        early = f" (stopped early: {done} of {total})" if done < total else ""
        return f"finished: {done} slice(s) in {duration(elapsed)}{early}{note}; {REVIEW_HINT}"
