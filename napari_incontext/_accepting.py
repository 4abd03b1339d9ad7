"""Accepting and rejecting proposals, per slice or per object, as undoable napari edits.

"Accept all ≥" writes one slice per event-loop tick inside one ``block_history``, so the
viewer stays responsive and the whole accept is still one Ctrl+Z.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack

import numpy as np
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer

from napari_incontext._layers import LayerGone, Workspace
from napari_incontext._session import ACCEPTED, EDITED, PARTIAL, PROPOSED, REJECTED, Session
from src_models.hashing import content_key

TICK_SECONDS = 0.03  # work per event-loop tick during "Accept all"


def proposal_ids(proposal: np.ndarray) -> list[int]:
    """Sorted nonzero label ids of a (Y, X) proposal."""
    if proposal.size == 0:
        return []
    # np.unique, not bincount: ids may be any uint64 (a bincount of id 2**40 would not fit)
    return [int(k) for k in np.unique(proposal) if k != 0]


class Acceptor:
    """Writes accepted proposals into the user's labels and records the decisions.

    Attributes:
        editing: True while this object writes the user's labels (the widget ignores the
            layer events that causes).
    """

    def __init__(self, session: Session, on_change: Callable[[], None]) -> None:
        self.session = session
        self.on_change = on_change
        self.editing = False
        self._queue: list[int] = []
        self._workspace: Workspace | None = None
        self._history = ExitStack()
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._step)

    @property
    def busy(self) -> bool:
        return bool(self._queue)

    def _settle(self, workspace: Workspace, index: int, status: str) -> None:
        """Record the slice's new labels as its baseline with ``status``."""
        if status == ACCEPTED and index in self.session.proposal_edits:
            status = EDITED  # the person corrected the proposal before accepting: verified
        self.session.set_status(index, status)
        self.session.set_baseline(index, content_key(workspace.user_slice(index)), status)
        self.session.touch(index)

    def accept(self, workspace: Workspace, index: int, label: int | None = None) -> int:
        """Accept the proposal of ``index`` (only object ``label`` if given); return the
        pixels written."""
        if not self.session.has_proposal(index):
            return 0
        self.editing = True
        try:
            written = workspace.accept(index, label)
        finally:
            self.editing = False
        if label is None:
            self.session.slices[index].objects.clear()
            status = ACCEPTED
        else:
            ids = proposal_ids(workspace.proposal(index))
            status = self.session.decide_object(index, label, ACCEPTED, ids)
        self._settle(workspace, index, status)
        self.on_change()
        return written

    def reject(self, workspace: Workspace, index: int, label: int | None = None) -> None:
        """Mark the proposal of ``index`` (or object ``label`` of it) as wrong."""
        if self.session.status(index) not in (PROPOSED, PARTIAL):
            return
        if label is None:
            self.session.set_status(index, REJECTED)
        else:
            ids = proposal_ids(workspace.proposal(index))
            self.session.decide_object(index, label, REJECTED, ids)
        self.on_change()

    def accept_all(self, workspace: Workspace, indices: list[int]) -> None:
        """Accept every slice of ``indices``, a slice per tick, as one undo step (stacks)."""
        if self.busy or not indices:
            return
        self._workspace, self._queue = workspace, list(indices)
        if not workspace.is_set:
            self._history.enter_context(workspace.labels.get().block_history())
        self._timer.start(0)

    def _step(self) -> None:
        workspace = self._workspace
        start = time.perf_counter()
        try:
            while self._queue and time.perf_counter() - start < TICK_SECONDS:
                index = self._queue.pop(0)
                if not self.session.has_proposal(index):
                    continue
                self.editing = True
                try:
                    workspace.accept(index, grouped=not workspace.is_set)
                finally:
                    self.editing = False
                self.session.slices[index].objects.clear()
                self._settle(workspace, index, ACCEPTED)
        except LayerGone as error:
            self._queue.clear()
            show_error(str(error))
        if self._queue:
            self._timer.start(0)
            return
        self._history.close()  # commits the single undo step
        try:
            if not workspace.is_set:
                workspace.labels.get().refresh()
        except LayerGone:
            pass
        self.on_change()
