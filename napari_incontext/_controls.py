"""The run controls: layers, backend and options, what to propose, and the run buttons.

Only widgets and the values they hold; the dock widget connects the buttons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QWidget,
)

from napari_incontext._options_form import OptionsForm
from napari_incontext._progress import RunProgress
from napari_incontext._session import ACCEPTED_WEIGHTS, BackendChoice, backend_choices
from napari_incontext._weights_panel import WeightsPanel
from src_models import registry
from src_models.order import DIRECTIONS, WEAK_SHARE
from src_models.scribbles import DEFAULT_BACKGROUND_ID, SPARSE_SHARE, UNPAINTED

DEVICES = ("auto", "cpu", "cuda", "mps")


def button(text: str, tip: str) -> QPushButton:
    widget = QPushButton(text)
    widget.setToolTip(tip)
    return widget


def row(*widgets: QWidget) -> QHBoxLayout:
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    return layout


def fill(combo: QComboBox, names: list[str]) -> None:
    """Replace a combo's items, keeping the current choice when it still exists."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    combo.blockSignals(False)


@dataclass(frozen=True)
class RunSettings:
    """What the controls ask a run to do."""

    backend: str
    options: dict[str, Any]
    link: bool
    first: int | None
    last: int | None
    direction: str
    stop_below: float | None
    unpainted: str = "background"
    background_id: int = DEFAULT_BACKGROUND_ID
    all_channels: bool = False

    def key(self) -> str:
        """Everything that changes the proposals (a run with the same key can resume)."""
        options = sorted(self.options.items())
        scribbles = (self.unpainted, self.background_id)
        extra = (scribbles, self.all_channels)
        return repr((self.backend, options, self.link, self.stop_below, extra))


class RunControls(QWidget):
    """Layer and backend choices, the run's scope, and Run / Run this slice / Cancel."""

    def __init__(self) -> None:
        super().__init__()
        self.image_combo, self.labels_combo = QComboBox(), QComboBox()
        self.backend_combo, self.device_combo = QComboBox(), QComboBox()
        for name in registry.BACKENDS:
            self.backend_combo.addItem(name, name)
        self.device_combo.addItems(DEVICES)
        self.options_form = OptionsForm()
        self.backend_combo.currentIndexChanged.connect(
            lambda _i: self.options_form.show_backend(self.backend_combo.currentData())
        )
        self.weights_panel = WeightsPanel()
        self.options_form.changed.connect(self.update_weights)
        self.weights_panel.ready_changed.connect(self._enable_run)
        self.weights_panel.downloaded.connect(self._after_download)
        self._running = False
        self.channels_check = QCheckBox("all channels of this image")
        self.channels_check.setToolTip(
            "use every image layer of the same shape as a channel (the layers napari makes "
            "with channel_axis), in layer order: classic uses them all; model backends see "
            "three (1: repeated, 2: c0, c1, mean, 3+: the first three, or option channels=I,J,K)"
        )
        self.link_check = QCheckBox("link along the stack")
        self.link_check.setToolTip(
            "keep only proposals that touch the same label on the neighbouring slice "
            "(stacks, not image sets)"
        )
        self.first_spin, self.last_spin = QSpinBox(), QSpinBox()
        for spin, tip in ((self.first_spin, "first"), (self.last_spin, "last")):
            spin.setToolTip(f"{tip} slice to propose")
            spin.setRange(0, 0)
        self.direction_combo = QComboBox()
        self.direction_combo.addItems(DIRECTIONS)
        self.direction_combo.setToolTip(
            "both ways from the examples, or only after (forward) / before (backward) them"
        )
        self.stop_check = QCheckBox("stop below")
        self.stop_check.setToolTip("stop on a side of the stack once a proposal scores lower")
        self.stop_spin = QDoubleSpinBox()
        self.stop_spin.setRange(0.0, 1.0)
        self.stop_spin.setSingleStep(0.05)
        self.stop_spin.setValue(0.3)
        self.unpainted_combo = QComboBox()
        self.unpainted_combo.addItems(list(UNPAINTED))
        self.unpainted_combo.setToolTip(
            "background: your examples are dense masks, every unpainted pixel is background "
            "(a warning when an example covers under "
            f"{SPARSE_SHARE:.0%} of its slice). unlabelled: scribbles, as in convpaint or "
            "ilastik: paint background strokes with the background id and object strokes "
            "with other labels; unpainted pixels are not used"
        )
        self.background_spin = QSpinBox()
        self.background_spin.setRange(1, 2**31 - 1)
        self.background_spin.setValue(DEFAULT_BACKGROUND_ID)
        self.background_spin.setToolTip(
            "scribbles: the label you paint background with (proposals show it as 0)"
        )
        self.unpainted_combo.currentTextChanged.connect(
            lambda mode: self.background_spin.setEnabled(mode == "unlabelled")
        )
        self.background_spin.setEnabled(False)
        self.accepted_combo = QComboBox()
        self.accepted_combo.addItems(list(ACCEPTED_WEIGHTS))
        self.accepted_combo.setToolTip(
            "how slices accepted without an edit count as examples in the next run: weak = "
            f"all of them together weigh {WEAK_SHARE:g} of your painted or corrected slices; "
            "full = like painted ones; excluded = not at all. Painted or corrected slices "
            "always count fully"
        )
        self.run_button = button("Run", "propose labels on every slice without labels")
        self.run_slice_button = button(
            "Run this slice", "propose only the slice on screen (reuses the fitted head)"
        )
        self.cancel_button = button("Cancel", "stop after the slice being computed; Run resumes")
        self.progress = RunProgress()
        for widget in (self.run_button, self.run_slice_button):
            widget.setProperty("tip", widget.toolTip())
        self.options_form.show_backend(self.backend_combo.currentData())
        self._layout()

    def _layout(self) -> None:
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("image", self.image_combo)
        form.addRow("", self.channels_check)
        form.addRow("labels", self.labels_combo)
        form.addRow("backend", self.backend_combo)
        form.addRow("device", self.device_combo)
        form.addRow("options", self.options_form)
        form.addRow("weights", self.weights_panel)
        form.addRow("unpainted pixels", row(self.unpainted_combo, self.background_spin))
        form.addRow("", self.link_check)
        form.addRow("slices", row(self.first_spin, self.last_spin, self.direction_combo))
        form.addRow("", row(self.stop_check, self.stop_spin))
        form.addRow("accepted are", self.accepted_combo)
        form.addRow(row(self.run_button, self.run_slice_button, self.cancel_button))
        form.addRow(self.progress)

    def show_backend_choices(self, choices: list[BackendChoice]) -> None:
        """Mark backends without weights / needing a GPU in the backend menu."""
        for choice in choices:
            index = self.backend_combo.findData(choice.name)
            self.backend_combo.setItemText(index, choice.label)
            self.backend_combo.setItemData(index, choice.description, Qt.ItemDataRole.ToolTipRole)

    def set_length(self, n: int) -> None:
        """Slices 0..n-1 can be chosen; a new length selects the whole range."""
        if self.last_spin.maximum() == max(n - 1, 0):
            return
        for spin in (self.first_spin, self.last_spin):
            spin.setRange(0, max(n - 1, 0))
        self.first_spin.setValue(0)
        self.last_spin.setValue(max(n - 1, 0))

    def set_running(self, running: bool) -> None:
        self._running = running
        self._enable_run()
        self.cancel_button.setEnabled(running)

    def update_weights(self) -> None:
        """Show the chosen backend's weights status (options invalid: the run says why)."""
        try:
            config, options = self.options_form.config(), self.options_form.options()
        except ValueError:
            config, options = None, {}
        self.weights_panel.show_for(self.backend_combo.currentData(), config, options)

    def _enable_run(self) -> None:
        """Run needs an idle widget and a backend that can work (its tooltip says why not)."""
        reason = self.weights_panel.reason
        for widget in (self.run_button, self.run_slice_button):
            widget.setEnabled(not self._running and not reason)
            widget.setToolTip(f"disabled: {reason}" if reason else widget.property("tip"))

    def _after_download(self) -> None:
        self.show_backend_choices(backend_choices())
        self.update_weights()

    def settings(self, for_run: bool = True) -> RunSettings:
        """The run settings; ``ValueError`` for bad options (checked by ``build_config``) and,
        ``for_run``, when the backend cannot work yet (missing weights)."""
        self.options_form.config()
        if for_run and self.weights_panel.reason:
            raise ValueError(self.weights_panel.reason)
        options: dict[str, Any] = self.options_form.options()
        options["device"] = self.device_combo.currentText()
        return RunSettings(
            self.backend_combo.currentData(),
            options,
            self.link_check.isChecked(),
            self.first_spin.value(),
            self.last_spin.value(),
            self.direction_combo.currentText(),
            self.stop_spin.value() if self.stop_check.isChecked() else None,
            self.unpainted_combo.currentText(),
            self.background_spin.value(),
            self.channels_check.isChecked(),
        )
