"""The review panel: the table, per-slice and per-object decisions, image navigation, saving.

Only widgets; the dock widget connects them. Tooltips name the shortcuts (napari actions,
changeable in Preferences > Shortcuts).
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from napari_incontext._actions import shortcut_text
from napari_incontext._controls import button, row
from napari_incontext._review_table import ReviewTable
from napari_incontext._session import Session
from src_models.scoring import ACCEPT_THRESHOLD

ALL_OBJECTS = "all objects"


class ReviewPanel(QWidget):
    """Table, Next lowest / Accept / Reject, object choice, Accept all ≥, set navigation."""

    def __init__(self, session: Session, on_click: Callable[[int], None]) -> None:
        super().__init__()
        keys = {name: shortcut_text(name) for name in ("next_lowest", "accept", "reject")}
        self.status_label = QLabel("Paint one slice in the labels layer, then Run.")
        self.status_label.setWordWrap(True)
        self.table = ReviewTable(session, on_click)
        self.next_button = button(
            "Next lowest", f"go to the next lowest-score proposal [{keys['next_lowest']}]"
        )
        self.accept_button = button(
            "Accept",
            f"copy the chosen object(s) of this proposal into the labels [{keys['accept']}]",
        )
        self.reject_button = button(
            "Reject", f"mark the chosen object(s) of this proposal as wrong [{keys['reject']}]"
        )
        self.object_combo = QComboBox()
        self.object_combo.setToolTip(
            "accept or reject the whole proposal, or one object (label id) of it; "
            f"{shortcut_text('accept_object')} accepts the object under the mouse"
        )
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 1.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setValue(ACCEPT_THRESHOLD)
        self.accept_all_button = button(
            "Accept all ≥", "accept every proposal whose score is at least this"
        )
        self.confidence_check = QCheckBox("show confidence")
        self.confidence_check.setToolTip("add an image layer with each pixel's confidence")
        self.previous_button = button(
            "◀ image", f"image sets: previous image [{shortcut_text('previous_image')}]"
        )
        self.next_image_button = button(
            "image ▶", f"image sets: next image [{shortcut_text('next_image')}]"
        )
        self.save_button = button("Save…", "save the labels (TIFF or PNGs) and provenance.json")
        self.save_examples_button = button(
            "Save examples…", "save the examples and backend to label another stack"
        )
        self.load_examples_button = button(
            "Load examples…", "use examples saved from another stack in the next runs"
        )
        self.set_objects([])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status_label)
        layout.addWidget(self.table)
        layout.addLayout(row(self.previous_button, self.next_image_button, self.next_button))
        layout.addLayout(row(self.object_combo, self.accept_button, self.reject_button))
        layout.addLayout(row(self.accept_all_button, self.threshold_spin, self.confidence_check))
        layout.addLayout(
            row(self.save_button, self.save_examples_button, self.load_examples_button)
        )

    def set_objects(self, ids: list[int]) -> None:
        """Offer "all objects" and each label id of the proposal on screen."""
        current = self.object_combo.currentText()
        items = [ALL_OBJECTS, *(f"object {k}" for k in ids)]
        self.object_combo.blockSignals(True)
        self.object_combo.clear()
        self.object_combo.addItems(items)
        if current in items:
            self.object_combo.setCurrentText(current)
        self.object_combo.blockSignals(False)

    def chosen_object(self) -> int | None:
        """The label id chosen in the object menu (None = the whole proposal)."""
        text = self.object_combo.currentText()
        return None if text in ("", ALL_OBJECTS) else int(text.split()[-1])

    def set_image_set(self, is_set: bool) -> None:
        self.previous_button.setVisible(is_set)
        self.next_image_button.setVisible(is_set)
