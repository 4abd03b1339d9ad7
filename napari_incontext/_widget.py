"""The dock widget: choose layers and backend, run, review, accept, save.

The widget builds its layout and connects callbacks; every callback delegates to the
:class:`~napari_incontext._session.Session` (state), :mod:`._layers` (layer edits) or
:mod:`._workers` (threading).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_incontext import _layers
from napari_incontext._layers import Workspace
from napari_incontext._session import (
    ACCEPTED,
    PROPOSED,
    REJECTED,
    BackendChoice,
    Session,
    backend_choices,
)
from napari_incontext._workers import start_run
from src_models import registry

if TYPE_CHECKING:
    import napari
    from napari.qt.threading import GeneratorWorker

    from src_models.types import SliceResult

KEYS = {"next": "Shift-N", "accept": "Shift-A", "reject": "Shift-R"}
DEVICES = ("auto", "cpu", "cuda", "mps")


def _button(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    return button


class InContextWidget(QWidget):
    """Label one slice, stream proposals for the others, review and accept them."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = Session()
        self.workspace: Workspace | None = None
        self.worker: GeneratorWorker | None = None
        self._set_index = 0  # the image shown in image-set mode
        self._run_backend = ""  # name of the backend of the current/last run
        self._editing = False  # True while the widget itself writes the user's labels
        self._build_layout()
        self._add_callbacks()
        self._refresh_layer_choices()
        self._show_backend_choices(backend_choices())
        self._update_buttons()

    # ------------------------------------------------------------------ layout
    def _build_layout(self) -> None:
        self.image_combo, self.labels_combo = QComboBox(), QComboBox()
        self.backend_combo, self.device_combo = QComboBox(), QComboBox()
        for name in registry.BACKENDS:
            self.backend_combo.addItem(name, name)
        self.device_combo.addItems(DEVICES)
        self.options_edit = QLineEdit()
        self.options_edit.setPlaceholderText("key=value ... (backend options)")
        self.link_check = QCheckBox("link along the stack")
        self.link_check.setToolTip(
            "keep only proposals that touch the same label on the neighbouring slice "
            "(stacks, not image sets)"
        )
        self.run_button = _button("Run", "propose labels on every slice without labels")
        self.run_slice_button = _button(
            "Run this slice",
            "propose only the slice on screen (e.g. with sam_refine=vit_b in the options)",
        )
        self.cancel_button = _button("Cancel", "stop after the slice being computed")
        self.status_label = QLabel("Paint one slice in the labels layer, then Run.")
        self.status_label.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["slice", "confidence", "status"])
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        self.next_button = _button(
            "Next lowest", f"go to the next lowest-confidence proposal [{KEYS['next']}]"
        )
        self.accept_button = _button(
            "Accept slice", f"copy this slice's proposal into the labels [{KEYS['accept']}]"
        )
        self.reject_button = _button(
            "Reject slice", f"mark this slice's proposal as wrong [{KEYS['reject']}]"
        )
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 1.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setValue(0.8)
        self.accept_all_button = _button(
            "Accept all ≥", "accept every proposal at or above this confidence"
        )
        self.save_button = _button("Save…", "save the labels (TIFF or PNGs) and provenance.json")

        form = QFormLayout()
        form.addRow("image", self.image_combo)
        form.addRow("labels", self.labels_combo)
        form.addRow("backend", self.backend_combo)
        form.addRow("device", self.device_combo)
        form.addRow("options", self.options_edit)
        form.addRow("", self.link_check)
        layout = QVBoxLayout(self)
        self.setMinimumWidth(380)
        layout.addLayout(form)
        layout.addLayout(self._row(self.run_button, self.run_slice_button, self.cancel_button))
        layout.addWidget(self.status_label)
        layout.addWidget(self.table)
        layout.addLayout(self._row(self.next_button, self.accept_button, self.reject_button))
        layout.addLayout(self._row(self.accept_all_button, self.threshold_spin))
        layout.addWidget(self.save_button)

    @staticmethod
    def _row(*widgets: QWidget) -> QHBoxLayout:
        row = QHBoxLayout()
        for widget in widgets:
            row.addWidget(widget)
        return row

    def _add_callbacks(self) -> None:
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self.viewer.layers.events.removed.connect(self._refresh_layer_choices)
        for layer in self.viewer.layers:
            layer.events.name.connect(self._refresh_layer_choices)
        self.run_button.clicked.connect(self.run)
        self.run_slice_button.clicked.connect(self.run_slice)
        self.cancel_button.clicked.connect(self.cancel)
        self.table.cellClicked.connect(lambda row, _col: self.goto(self._row_index(row)))
        self.next_button.clicked.connect(self.next_lowest)
        self.accept_button.clicked.connect(lambda: self.accept([self.current_index()]))
        self.reject_button.clicked.connect(lambda: self.reject(self.current_index()))
        self.accept_all_button.clicked.connect(self.accept_above)
        self.save_button.clicked.connect(self._save_dialog)
        bindings = {
            KEYS["next"]: lambda _viewer: self.next_lowest(),
            KEYS["accept"]: lambda _viewer: self.accept([self.current_index()]),
            KEYS["reject"]: lambda _viewer: self.reject(self.current_index()),
        }
        for key, callback in bindings.items():
            self.viewer.bind_key(key, callback, overwrite=True)

    def _show_backend_choices(self, choices: list[BackendChoice]) -> None:
        """Mark backends without weights / needing a GPU in the backend menu."""
        for choice in choices:
            row = self.backend_combo.findData(choice.name)
            self.backend_combo.setItemText(row, choice.label)
            self.backend_combo.setItemData(row, choice.description, Qt.ToolTipRole)

    # ------------------------------------------------------------------ layer choices
    def _on_layer_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self._refresh_layer_choices)
        self._refresh_layer_choices()

    def _refresh_layer_choices(self, event: Any = None) -> None:
        user_labels = [
            layer
            for layer in _layers.labels_layers(self.viewer)
            if not _layers.is_generated(layer.name)
        ]
        _fill(self.image_combo, [layer.name for layer in _layers.image_layers(self.viewer)])
        _fill(self.labels_combo, [layer.name for layer in user_labels])

    def _chosen_layers(self) -> tuple[Any, Any]:
        names = self.image_combo.currentText(), self.labels_combo.currentText()
        if not names[0] or names[0] not in self.viewer.layers:
            raise ValueError("choose an image layer (open an image or File > Open Sample)")
        if not names[1] or names[1] not in self.viewer.layers:
            raise ValueError("choose a labels layer holding your example (Layers > New Labels)")
        return self.viewer.layers[names[0]], self.viewer.layers[names[1]]

    def backend_options(self) -> tuple[str, dict[str, Any]]:
        """(backend name, options for ``build_backend``) from the widget's controls."""
        from src_models.config import parse_pairs

        name = self.backend_combo.currentData()
        options: dict[str, Any] = dict(parse_pairs(self.options_edit.text().split()))
        options.setdefault("device", self.device_combo.currentText())
        return name, options

    # ------------------------------------------------------------------ running
    def run(self) -> None:
        """Start a run in a worker thread (errors in the setup become notifications)."""
        self._run_guarded(None)

    def run_slice(self) -> None:
        """Run on the slice on screen only: cheap, and how to spend a slow head (SAM) where
        it matters."""
        self._run_guarded(self.current_index())

    def _run_guarded(self, only: int | None) -> None:
        try:
            self._start(only)
        except ValueError as error:
            show_error(str(error))
        self._update_buttons()

    def _start(self, only: int | None = None) -> None:
        if self.worker is not None:
            return
        workspace = Workspace.from_layers(self.viewer, *self._chosen_layers())
        self._use_workspace(workspace)
        labels = workspace.user_labels()
        examples = self.session.sync(labels)
        if not examples:
            raise ValueError("no example: paint at least one object on one slice, then Run")
        targets = [i for i in range(len(workspace)) if i not in examples]
        if only is not None:
            targets = [i for i in targets if i == only]
        if not targets:
            show_info("no slice without labels to propose here")
            return
        if not workspace.is_set:
            workspace.proposals_layer()
        name, options = self.backend_options()
        self._run_backend = name
        self.status_label.setText(f"{name}: {len(examples)} example(s), {len(targets)} to propose…")
        self.worker = start_run(
            workspace.images(),
            labels,
            functools.partial(self.session.backend, name, **options),
            self.session.cache,
            targets,
            desc=f"{name}: proposing",
            link=self.link_check.isChecked() and not workspace.is_set,
            on_result=self._on_result,
            on_finished=self._on_finished,
        )

    def _use_workspace(self, workspace: Workspace) -> None:
        old = self.workspace
        if old is not None and (old.image, old.labels, old.targets) == (
            workspace.image,
            workspace.labels,
            workspace.targets,
        ):
            return
        if old is not None:
            old.labels.events.paint.disconnect(self._on_paint)
        self.session.reset_review()
        workspace.clear_proposals()  # proposals of other layers would be misleading
        self.workspace = workspace
        workspace.labels.events.paint.connect(self._on_paint)

    def event(self, event: QEvent) -> bool:
        """Cancel a run when napari removes the widget (its dock's × unparents it)."""
        if event.type() == QEvent.ParentChange and self.parent() is None:
            self.cancel()
        return super().event(event)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            self.status_label.setText("cancelling after the current slice…")

    def _on_result(self, result: SliceResult) -> None:
        if self.workspace is None:
            return
        self.workspace.write_proposal(result.index, result.labels)
        self.session.record(result, self._run_backend)
        self.status_label.setText(f"slice {result.index}: {result.done}/{result.total} proposed")
        self._refresh_table()

    def _on_finished(self) -> None:
        self.worker = None
        self._update_buttons()
        self._refresh_table()
        self.status_label.setText("Review: lowest confidence first; accept, reject or correct.")

    def _update_buttons(self) -> None:
        running = self.worker is not None
        self.run_button.setEnabled(not running)
        self.run_slice_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    # ------------------------------------------------------------------ review
    def current_index(self) -> int:
        """The slice on screen (stack) or the image chosen last (image set)."""
        if self.workspace is not None and self.workspace.is_set:
            return self._set_index
        return int(self.viewer.dims.current_step[0])

    def goto(self, index: int | None) -> None:
        """Show slice/image ``index``."""
        if index is None or self.workspace is None:
            return
        if self.workspace.is_set:
            self._set_index = index
            for i, item in enumerate(self.workspace.items):
                item.visible = i == index
            active = self.workspace.user_layer(index) or self.workspace.items[index]
            self.viewer.layers.selection.active = active
        else:
            self.viewer.dims.set_current_step(0, index)
        self._sync(index)

    def next_lowest(self) -> None:
        self.goto(self.session.next_lowest(after=self.current_index()))

    def accept(self, indices: list[int]) -> None:
        """Copy the proposals of ``indices`` into the user's labels (one undo step)."""
        if self.workspace is None:
            show_info("Run first: there is no proposal to accept")
            return
        indices = [i for i in indices if self.session.has_proposal(i)]
        self._editing = True
        try:
            self.workspace.accept(indices)
        finally:
            self._editing = False
        for i in indices:
            self.session.set_status(i, ACCEPTED)
            self.session.remember(i, self.workspace.user_slice(i))
        self._refresh_table()

    def accept_above(self) -> None:
        self.accept(self.session.above(self.threshold_spin.value()))

    def reject(self, index: int) -> None:
        if self.session.status(index) == PROPOSED:
            self.session.set_status(index, REJECTED)
            self._refresh_table()

    def _on_paint(self, event: Any = None) -> None:
        # napari emits `paint` before data_setitem writes the pixels: read them a tick later
        if not self._editing:
            index = self.current_index()
            QTimer.singleShot(0, lambda: self._sync(index))

    def _sync(self, index: int) -> None:
        if self.workspace is not None and 0 <= index < len(self.workspace):
            before = self.session.status(index)
            if self.session.sync_slice(index, self.workspace.user_slice(index)) != before:
                self._refresh_table()

    def _refresh_table(self) -> None:
        rows = self.session.review_rows()
        names = self.workspace.names() if self.workspace and self.workspace.is_set else None
        self.table.setRowCount(len(rows))
        for row, (index, score, status) in enumerate(rows):
            first = QTableWidgetItem(names[index] if names else str(index))
            first.setData(Qt.UserRole, index)
            self.table.setItem(row, 0, first)
            self.table.setItem(row, 1, QTableWidgetItem("" if score is None else f"{score:.3f}"))
            self.table.setItem(row, 2, QTableWidgetItem(status))

    def _row_index(self, row: int) -> int:
        return int(self.table.item(row, 0).data(Qt.UserRole))

    # ------------------------------------------------------------------ saving
    def _save_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Save labels and provenance to folder")
        if folder:
            self.save(folder)

    def _ask_replace(self, earlier: list) -> bool | None:
        """Replace our earlier outputs (True), save under new names (False) or cancel (None)."""
        names = ", ".join(p.name for p in earlier)
        answer = QMessageBox.question(
            self,
            "Replace earlier save?",
            f"{names} in this folder came from an earlier save. Replace them? "
            "(No saves next to them under new names.)",
            QMessageBox.Yes | QMessageBox.No | QMessageBox.Cancel,
            QMessageBox.No,
        )
        return None if answer == QMessageBox.Cancel else answer == QMessageBox.Yes

    def save(self, folder: str, replace: bool | None = None) -> None:
        """Save into ``folder``; never replaces files napari-incontext did not write, and
        asks before replacing its own earlier save unless ``replace`` says what to do."""
        from napari_incontext._save import earlier_outputs, save_workspace

        if self.workspace is None:
            show_info("Run first: there is nothing to save yet")
            return
        try:
            if replace is None:
                ours, others = earlier_outputs(folder, self.workspace.is_set)
                replace = self._ask_replace(ours) if ours and not others else False
                if replace is None:
                    return
            plan = save_workspace(folder, self.workspace, self.session, replace=replace)
        except (OSError, ValueError) as error:
            show_error(f"Saving failed, nothing was replaced: {error}")
            return
        show_info(f"Saved {plan.labels.name} and {plan.provenance.name} in {folder}")


def _fill(combo: QComboBox, names: list[str]) -> None:
    """Replace a combo's items, keeping the current choice when it still exists."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)
