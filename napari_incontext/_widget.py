"""The dock widget: choose layers and backend, run, review, accept, save.

The widget builds its panels (:mod:`._controls`, :mod:`._review`) and connects callbacks;
every callback delegates to the :class:`~._session.Session` (state), :mod:`._layers`
(layer edits), :mod:`._accepting` (decisions), :mod:`._running` and :mod:`._workers`
(threading), :mod:`._persist` (state kept in layers and files), :mod:`._actions` (keys).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import QFileDialog, QVBoxLayout, QWidget

from napari_incontext import _actions, _backing, _layers, _persist
from napari_incontext._accepting import Acceptor, proposal_ids
from napari_incontext._controls import RunControls, fill
from napari_incontext._following import EditFollower
from napari_incontext._layers import CONFIDENCE, PROPOSALS, LayerGone, Workspace
from napari_incontext._review import ReviewPanel
from napari_incontext._running import Runner
from napari_incontext._session import PROPOSED, Session, backend_choices
from napari_incontext._workers import start_function

if TYPE_CHECKING:
    import napari

    from src_models.types import SliceResult


class InContextWidget(QWidget):
    """Label one slice, stream proposals for the others, review and accept them."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = Session()
        self.workspace: Workspace | None = None
        self.saving: Any = None  # the worker writing files, while it runs
        self._set_index = 0  # the image shown in image-set mode
        self.controls = RunControls()
        self.review = ReviewPanel(self.session, self.goto)
        self.review.table.set_names(lambda: self.workspace.names() if self._is_set() else None)
        self.acceptor = Acceptor(self.session, self.changed)
        self.runner = Runner(
            self.session, self._on_result, self._on_finished, self._status, self.controls.progress
        )
        self.follower = EditFollower(self)
        self._timers = {
            "step": self._timer(100, self._update_objects),
            "persist": self._timer(500, self._persist),
        }
        layout = QVBoxLayout(self)
        layout.addWidget(self.controls)
        layout.addWidget(self.review)
        self.setMinimumWidth(400)
        self._add_callbacks()
        _actions.bind(self)
        self._refresh_layer_choices()
        self.controls.show_backend_choices(backend_choices())
        self._use_chosen_layers()
        self._update_buttons()

    def _timer(self, ms: int, slot: Any) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(slot)
        return timer

    def _add_callbacks(self) -> None:
        layers = self.viewer.layers.events
        layers.inserted.connect(self._on_layer_inserted)
        layers.removed.connect(self._on_layer_removed)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_layer_choices)
        self.viewer.dims.events.current_step.connect(lambda _e: self._timers["step"].start())
        c, r = self.controls, self.review
        c.image_combo.currentTextChanged.connect(self._use_chosen_layers)
        c.labels_combo.currentTextChanged.connect(self._use_chosen_layers)
        c.accepted_combo.currentTextChanged.connect(self._set_accepted_weight)
        c.run_button.clicked.connect(self.run)
        c.run_slice_button.clicked.connect(self.run_slice)
        c.cancel_button.clicked.connect(self.cancel)
        r.next_button.clicked.connect(self.next_lowest)
        r.accept_button.clicked.connect(self.accept_current)
        r.reject_button.clicked.connect(self.reject_current)
        r.accept_all_button.clicked.connect(self.accept_above)
        r.previous_button.clicked.connect(lambda: self.previous_image())
        r.next_image_button.clicked.connect(lambda: self.next_image())
        r.save_button.clicked.connect(self._save_dialog)
        r.save_examples_button.clicked.connect(self._save_examples_dialog)
        r.load_examples_button.clicked.connect(self._load_examples_dialog)

    # ------------------------------------------------------------------ layers
    def _on_layer_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_layer_choices)
        self._refresh_layer_choices()

    def _on_layer_removed(self, event: Any) -> None:
        self._refresh_layer_choices()
        ws, uid = self.workspace, event.value.unique_id
        if ws is None:
            return
        if uid in {ws.labels.uid, *(ref.uid for ref in ws.items)}:
            if self.runner.busy:
                self.runner.cancel()
                show_error(f"layer {event.value.name!r} was deleted: the run stopped")
            self._detach()
        elif _layers.role(event.value) == PROPOSALS:  # its proposals are gone with it
            for index, state in list(self.session.slices.items()):
                if state.status == PROPOSED:
                    del self.session.slices[index]
            self.session.resume.clear()
            self.review.table.refresh()

    def _refresh_layer_choices(self, event: Any = None) -> None:
        images = [lay for lay in _layers.image_layers(self.viewer) if not _layers.role(lay)]
        labels = [lay for lay in _layers.labels_layers(self.viewer) if not _layers.role(lay)]
        fill(self.controls.image_combo, [layer.name for layer in images])
        fill(self.controls.labels_combo, [layer.name for layer in labels])
        self._use_chosen_layers()

    def _chosen_layers(self) -> tuple[Any, Any]:
        names = self.controls.image_combo.currentText(), self.controls.labels_combo.currentText()
        if not names[0] or names[0] not in self.viewer.layers:
            raise ValueError("choose an image layer (open an image or File > Open Sample)")
        if not names[1] or names[1] not in self.viewer.layers:
            raise ValueError("choose a labels layer holding your example (Layers > New Labels)")
        return self.viewer.layers[names[0]], self.viewer.layers[names[1]]

    def _use_chosen_layers(self) -> None:
        """Follow the chosen layers; a labels layer reviewed before brings its review back."""
        try:
            workspace = Workspace.from_layers(self.viewer, *self._chosen_layers())
        except ValueError:
            return
        if workspace.same_as(self.workspace) or self.runner.busy:
            return
        self._detach()
        self.workspace = workspace
        labels = workspace.labels.get()
        saved = None if workspace.is_set else _persist.read_provenance(labels, len(workspace))
        if _persist.read_review(labels) is None and saved is not None:
            self.session.restore_provenance(saved)  # a project saved with Save… and reopened
        else:
            self.session.restore(_persist.read_review(labels) or {})
        self.controls.accepted_combo.setCurrentText(self.session.accepted_weight)
        self.follower.follow(labels)
        for index in range(len(workspace.items) if workspace.is_set else 1):
            layer = workspace.generated(PROPOSALS, index)
            if layer is not None:
                self.follower.follow(layer, proposals=True)
        self.controls.set_length(len(workspace))
        self.review.set_image_set(workspace.is_set)
        self._set_index = 0
        self.review.table.refresh()

    def _detach(self) -> None:
        self._persist()
        self.session.reset_review()
        self.workspace = None
        self.follower.forget()

    def _is_set(self) -> bool:
        return self.workspace is not None and self.workspace.is_set

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Start a run in workers (errors in the setup become notifications)."""
        self._run_guarded(None)

    def run_slice(self) -> None:
        """Run on the slice on screen only; the fitted head is reused while the examples
        are unchanged."""
        self._run_guarded(self.current_index())

    def _run_guarded(self, only: int | None) -> None:
        try:
            if self.workspace is None:
                self._chosen_layers()
                raise ValueError("choose an image and a labels layer of the same shape")
            self.workspace.check_alive()
            self.workspace.add_new_targets()
            self.runner.start(self.workspace, self.controls.settings(), only)
        except ValueError as error:
            show_error(str(error))
        self._update_buttons()

    def cancel(self) -> None:
        self.runner.cancel()

    def _on_result(self, result: SliceResult) -> None:
        ws = self.workspace
        if ws is None or result.index in self.session.proposal_edits:
            return  # another workspace, or a proposal the user painted: keep the edit
        try:
            ws.check_alive()
            shown = result.index == self.current_index()
            ws.write(PROPOSALS, result.index, result.labels, shown)
            self.follower.follow(ws.generated(PROPOSALS, result.index), proposals=True)
            if self.review.confidence_check.isChecked():
                conf = (result.confidence * 255).astype(np.uint8)
                ws.write(CONFIDENCE, result.index, conf, shown)
        except (LayerGone, OSError) as error:  # OSError: a big stack's layers are on disk
            self._write_failed(result.index, error)
            return
        self.session.record(result, self.runner.backend_name)
        self._status(f"slice {result.index}: {result.done}/{result.total} proposed")
        self.changed()

    def _write_failed(self, index: int, error: Exception) -> None:
        """Stop the run (once) and keep ``index`` to propose again when resumed."""
        self.session.resume.get("done", set()).discard(index)
        if not self.runner.cancelled:
            self.runner.cancel()
            where = _backing.layers_root()
            disk = f"could not write a proposal: {error} (free space in {where}, then Run)"
            show_error(f"{error} (the run stopped)" if isinstance(error, LayerGone) else disk)

    def _on_finished(self) -> None:
        self._update_buttons()
        self.changed()

    def _update_buttons(self) -> None:
        self.controls.set_running(self.runner.busy)

    def _status(self, text: str) -> None:
        self.review.status_label.setText(text)

    @property
    def busy(self) -> bool:
        """True while a run, an accept-all or a save is going."""
        return self.runner.busy or self.acceptor.busy or self.saving is not None

    @property
    def idle(self) -> bool:
        """True when nothing is running and every edit was compared with the baseline."""
        return not self.busy and not self.follower.busy

    def event(self, event: QEvent) -> bool:
        """Napari removing the widget (its dock's ×) cancels the run and frees the keys."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is None:
                self.cancel()
                self._persist()
                _actions.release(self)
            else:
                _actions.bind(self)
        return super().event(event)

    # ------------------------------------------------------------------ review
    def current_index(self) -> int:
        """The slice on screen (stack) or the image shown (image set)."""
        if self._is_set():
            return self._set_index
        return int(self.viewer.dims.current_step[0])

    def goto(self, index: int | None) -> None:
        """Show slice/image ``index`` (image sets: only that image's layers)."""
        ws = self.workspace
        if index is None or ws is None:
            return
        if ws.is_set:
            self._set_index = index
            ws.show_only(index)
            layer = ws.user_layer(index, create=True)
            self.follower.follow(layer)
            self.viewer.layers.selection.active = layer
        else:
            self.viewer.dims.set_current_step(0, index)
        self.follower.observe([index])
        self._update_objects()

    def next_lowest(self) -> None:
        self.goto(self.session.next_lowest(after=self.current_index()))

    def next_image(self, step: int = 1) -> None:
        if self._is_set():
            self.goto((self._set_index + step) % len(self.workspace))

    def previous_image(self) -> None:
        self.next_image(-1)

    def accept(self, indices: list[int]) -> None:
        """Accept the whole proposals of ``indices`` (one undo step each)."""
        for index in indices:
            self._guard(lambda i=index: self.acceptor.accept(self.workspace, i))

    def accept_current(self) -> None:
        label = self.review.chosen_object()
        self._guard(lambda: self.acceptor.accept(self.workspace, self.current_index(), label))

    def reject_current(self) -> None:
        self.reject(self.current_index(), self.review.chosen_object())

    def reject(self, index: int, label: int | None = None) -> None:
        self._guard(lambda: self.acceptor.reject(self.workspace, index, label))

    def accept_object_under_cursor(self) -> None:
        ws, index = self.workspace, self.current_index()
        layer = ws.generated(PROPOSALS, index) if ws is not None else None
        if layer is None:
            return
        value = layer.get_value(self.viewer.cursor.position, world=True)
        if value:
            self._guard(lambda: self.acceptor.accept(ws, index, int(value)))

    def accept_above(self) -> None:
        indices = self.session.above(self.review.threshold_spin.value())
        self._guard(lambda: self.acceptor.accept_all(self.workspace, indices))

    def _guard(self, action: Any) -> None:
        if self.workspace is None:
            show_info("Run first: there is no proposal to review")
            return
        try:
            action()
        except (LayerGone, ValueError) as error:
            show_error(str(error))

    def changed(self) -> None:
        """The review state changed: refresh the table and keep the state in the layer."""
        self.review.table.refresh()
        self._timers["persist"].start()
        self._timers["step"].start()

    def _update_objects(self) -> None:
        ws, index = self.workspace, self.current_index()
        has = ws is not None and self.session.has_proposal(index)
        self.review.set_objects(proposal_ids(ws.proposal(index)) if has else [])

    def _set_accepted_weight(self, text: str) -> None:
        self.session.accepted_weight = text
        self._timers["persist"].start()

    def _persist(self) -> None:
        if self.workspace is not None and self.workspace.labels.find() is not None:
            _persist.write_review(self.workspace.labels.get(), self.session.to_dict())

    # ------------------------------------------------------------------ files
    def _save_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save labels and provenance to folder")
        if folder:
            self.save(folder)

    def save(self, folder: str, replace: bool | None = None) -> None:
        """Save into ``folder`` in a worker; never replaces files napari-incontext did not
        write, and asks before replacing its own earlier save unless ``replace`` says."""
        from napari_incontext._save import ask_replace, save_workspace

        if self.workspace is None:
            show_info("Run first: there is nothing to save yet")
            return
        if replace is None:
            replace = ask_replace(self, folder, self.workspace.is_set)
            if replace is None:
                return
        self.saving = start_function(
            save_workspace,
            folder,
            self.workspace,
            self.session.snapshot(),
            replace,
            on_done=lambda plan: show_info(
                f"Saved {plan.labels.name} and {plan.provenance.name} in {folder}"
            ),
            on_error=lambda error: show_error(f"Saving failed, nothing was replaced: {error}"),
            on_finished=self.file_work_done,
            notify=False,
        )

    def file_work_done(self) -> None:
        self.saving = None

    def _save_examples_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save the examples to an empty folder")
        if folder:
            self.save_examples(folder)

    def _load_examples_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Load examples saved from another stack")
        if folder:
            self.load_examples(folder)

    def save_examples(self, folder: str) -> None:
        """Save this stack's examples (and loaded ones) with the backend settings."""
        from napari_incontext._examples import save_current_examples

        self._guard(lambda: save_current_examples(self, folder))

    def load_examples(self, folder: str) -> None:
        """Use examples saved from another stack in the next runs (the head is refitted)."""
        from napari_incontext._examples import load_into

        load_into(self, folder)
