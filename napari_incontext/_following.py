"""Following the person's edits: painting, undo and redo in the labels and proposals layers.

Undo and redo emit no paint event, only ``set_data``, which napari also emits when another
slice is shown; the follower tells the two apart by the slice on screen, and compares the
tracked slices with their baselines in a worker (:class:`~._workers.LabelWatch`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QTimer

from napari_incontext._workers import Keys, LabelWatch

if TYPE_CHECKING:
    from napari_incontext._widget import InContextWidget


class EditFollower:
    """Listens to the layers of the widget's workspace and keeps the statuses current."""

    def __init__(self, widget: InContextWidget) -> None:
        self.widget = widget
        self.watch = LabelWatch(self._on_keys)
        self.connected: set[Hashable] = set()
        self.step_seen = tuple(widget.viewer.dims.current_step)
        self.settle = QTimer(widget)
        self.settle.setSingleShot(True)
        self.settle.setInterval(250)
        self.settle.timeout.connect(self._data_settled)

    @property
    def busy(self) -> bool:
        return self.watch.busy() or self.settle.isActive()

    def forget(self) -> None:
        """Stop following (handlers of layers not followed any more do nothing)."""
        self.connected.clear()

    def follow(self, layer: Any, proposals: bool = False) -> None:
        """Listen to a layer's edits: the user's labels (paint, undo/redo) or proposals."""
        uid = layer.unique_id
        if uid in self.connected:
            return
        self.connected.add(uid)
        if proposals:
            layer.events.paint.connect(lambda _e: self._proposal_painted(uid))
        else:
            layer.events.paint.connect(lambda _e: self._labels_changed(uid, paint=True))
            layer.events.set_data.connect(lambda _e: self._labels_changed(uid, paint=False))

    def observe(self, indices: list[int]) -> None:
        """Compare these slices of the user's labels with their baselines, in a worker."""
        ws, session = self.widget.workspace, self.widget.session
        if ws is None:
            return
        indices = [i for i in indices if 0 <= i < len(ws)]
        readers = {i: r for i in indices if (r := ws.slice_reader(i)) is not None}
        self.watch.request(readers, {i: session.generation.get(i, 0) for i in readers})

    def _labels_changed(self, uid: Hashable, paint: bool) -> None:
        if uid not in self.connected or self.widget.acceptor.editing:
            return
        if paint:  # napari emits paint before writing the pixels: read them a tick later
            QTimer.singleShot(0, lambda: self.observe([self.widget.current_index()]))
            return
        step = tuple(self.widget.viewer.dims.current_step)
        if step != self.step_seen:  # napari re-sliced for another slice: not an edit
            self.step_seen = step
            return
        self.settle.start()

    def _data_settled(self) -> None:
        """Undo, redo or any other change: compare every tracked slice."""
        session = self.widget.session
        self.observe(sorted(set(session.baseline) | {self.widget.current_index()}))

    def _on_keys(self, keys: Keys, generations: dict[int, int]) -> None:
        session, changed = self.widget.session, False
        for index, (key, has) in keys.items():
            if session.generation.get(index, 0) != generations.get(index, 0):
                continue  # the widget wrote this slice since: the hash is stale
            before = session.status(index)
            changed |= session.observe(index, key, has) != before
        if changed:
            self.widget.changed()

    def _proposal_painted(self, uid: Hashable) -> None:
        if uid in self.connected and self.widget.workspace is not None:
            self.widget.session.proposal_edits.add(self.widget.current_index())
            self.widget.changed()
