"""Backend options as a form generated from the backend's config dataclass (magicgui).

One form per backend, built on first use from :func:`src_models.config.option_table`: a check
box per bool, a menu per ``Literal`` (with ``None`` when the field is optional), spin boxes
for ints and floats (limited to the field's declared range), a text field for strings and
optional numbers (empty = none). The tooltip of each field is its type, default, range and the
docstring's help. Below the form: a file field for every weight the backend takes (backbone,
head, SAM; empty = looked up by its official name) and SAM refinement.
:meth:`OptionsForm.options` returns only the values that differ from the defaults, plus the
chosen files; :meth:`OptionsForm.config` checks them with
:func:`~src_models.config.build_config` (a ``ValueError`` the widget shows as a notification).
"""

from __future__ import annotations

import math
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    LineEdit,
    SpinBox,
    Widget,
)
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from src_models import registry
from src_models.config import OptionInfo, build_config, convert, option_table

INT_LIMIT = 2**31 - 1
FLOAT_LIMIT = 1e12
SAM_REFINE = ("none", "vit_b", "vit_l", "vit_h")
SLOT_LABELS = {  # registry weight slot → the field's label and what it holds
    "weights": ("backbone weights", "the backbone (DINOv2/DINOv3) checkpoint"),
    "head_weights": ("head weights", "the trained head (SEGIC decoder) checkpoint"),
    "sam_weights": ("SAM weights", "the SAM checkpoint"),
}
FORM_HEIGHT = 240  # pixels; a longer form scrolls inside the dock instead of squashing


def _tooltip(info: OptionInfo) -> str:
    default = "none" if info.default is None else info.default
    span = f", range {info.range.text()}" if info.range else ""
    return f"{info.name} ({info.type}, default {default}{span}): {info.help}"


def _limits(info: OptionInfo, limit: float, smallest: float) -> tuple[float, float]:
    """Spin-box (min, max) from the field's range; ``smallest`` stands in for "> 0"."""
    low, high = info.range.numeric() if info.range else (None, None)
    if info.range and info.range.positive:
        low = smallest
    return (-limit if low is None else low), (limit if high is None else high)


def _decimals(value: float) -> int:
    """Digits after the point needed to show ``value`` (at least 3)."""
    text = f"{value:.10f}".rstrip("0")
    return max(3, len(text.partition(".")[2]))


def _float_box(info: OptionInfo) -> FloatSpinBox:
    default = float(info.default)
    step = 10 ** math.floor(math.log10(abs(default))) / 10 if default else 0.1
    decimals = _decimals(default)
    low, high = _limits(info, FLOAT_LIMIT, 10.0**-decimals)
    box = FloatSpinBox(value=low, min=low, max=high, step=min(step, 0.1))
    box.native.setDecimals(decimals)
    box.value = default
    return box


def option_widget(info: OptionInfo) -> Widget:
    """The magicgui widget for one config field, holding its default."""
    widget: Widget
    if info.choices:
        choices = ((None,) if info.optional else ()) + tuple(info.choices)
        widget = ComboBox(choices=choices, value=info.default)
    elif info.base is bool and not info.optional:
        widget = CheckBox(value=info.default, text=info.name)
    elif info.base is int and not info.optional:
        low, high = _limits(info, INT_LIMIT, 1)
        widget = SpinBox(value=info.default, min=int(low), max=int(high))
    elif info.base is float and not info.optional:
        widget = _float_box(info)
    else:  # strings and optional numbers: text, empty = none
        widget = LineEdit(value="" if info.default is None else str(info.default))
        widget.native.setPlaceholderText("none" if info.optional else info.type)
    widget.name, widget.tooltip = info.name, _tooltip(info)
    if not isinstance(widget, CheckBox):  # a check box shows its name as its text
        widget.label = info.name
    return widget


def _file_field(slot: str) -> FileEdit:
    label, holds = SLOT_LABELS[slot]
    field = FileEdit(mode="r", nullable=True, label=label, name=slot)
    field.tooltip = (
        f"a file of {holds} (empty: looked up by its official name in the weights folder, "
        "see the weights status below)"
    )
    return field


class BackendForm:
    """The option fields of one backend's config dataclass."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.config_class = registry.get_info(name).config
        self.table = {info.name: info for info in option_table(self.config_class)}
        self.container = Container(widgets=[option_widget(i) for i in self.table.values()])
        self.container.native.layout().setContentsMargins(0, 0, 0, 0)

    def widget(self, key: str) -> Widget:
        return self.container[key]

    def options(self) -> dict[str, Any]:
        """The values that differ from the defaults, typed; ``ValueError`` for bad text."""
        out = {}
        for key, info in self.table.items():
            value = convert(info, self.widget(key).value)
            if value != info.default:
                out[key] = value
        return out

    def set(self, key: str, value: Any) -> None:
        info = self.table[key]
        value = convert(info, value)
        is_text = isinstance(self.widget(key), LineEdit)
        self.widget(key).value = ("" if value is None else str(value)) if is_text else value


class OptionsForm(QWidget):
    """Options of the chosen backend, its weights file, and SAM refinement.

    Signals:
        changed: any value or the backend changed (the weights status may have too).
    """

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, BackendForm] = {}
        self.current: BackendForm | None = None
        self.slots: tuple[str, ...] = ()
        self.weight_files = {slot: _file_field(slot) for slot in SLOT_LABELS}
        self.weights_file = self.weight_files["weights"]
        self.sam_refine = ComboBox(choices=SAM_REFINE, value="none", label="SAM refine")
        self.sam_refine.tooltip = "refine every proposal with SAM (vit_b, vit_l or vit_h)"
        self.sam_refine.changed.connect(self._show_files)
        self.extras = Container(widgets=[*self.weight_files.values(), self.sam_refine])
        self.extras.native.layout().setContentsMargins(0, 0, 0, 0)
        for widget in (*self.weight_files.values(), self.sam_refine):
            widget.changed.connect(self.changed.emit)
        self.forms_box = QWidget()
        self._layout = QVBoxLayout(self.forms_box)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setWidget(self.forms_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll)
        layout.addWidget(self.extras.native)

    def show_backend(self, name: str) -> None:
        """Show the form of backend ``name`` (built on first use); hide the others."""
        if name not in self.forms:
            form = BackendForm(name)
            form.container.changed.connect(self.changed.emit)
            self.forms[name] = form
            self._layout.addWidget(form.container.native)
        self.current = self.forms[name]
        for form in self.forms.values():
            form.container.native.setVisible(form is self.current)
        hint = self.current.container.native.sizeHint().height()
        self.scroll.setFixedHeight(min(hint + 4, FORM_HEIGHT))
        self.slots = registry.get_info(name).weight_slots
        self._show_files()
        self.changed.emit()

    @property
    def takes_weights(self) -> bool:
        """Whether the shown backend takes a backbone weights file."""
        return "weights" in self.slots

    def _show_files(self) -> None:
        """A file field per weight slot of the backend (SAM too when refining with SAM)."""
        shown = self.active_slots()
        for slot, field in self.weight_files.items():
            field.visible = slot in shown

    def widget(self, key: str) -> Widget:
        """The field ``key`` of the shown backend's form."""
        assert self.current is not None
        return self.current.widget(key)

    def active_slots(self) -> tuple[str, ...]:
        """The weight slots the run takes: the backend's, plus SAM when refining with SAM."""
        refine = ("sam_weights",) if self.sam_refine.value != "none" else ()
        return tuple(dict.fromkeys(self.slots + refine))

    def weight_paths(self) -> dict[str, str]:
        """slot → the file chosen for it (only the slots the run takes; empty ones left out)."""
        files = {slot: self.weight_files[slot].value for slot in self.active_slots()}
        return {slot: str(value) for slot, value in files.items() if value}

    def own_options(self) -> dict[str, Any]:
        """The shown backend's options that differ from its defaults."""
        return self.current.options() if self.current is not None else {}

    def config(self) -> Any:
        """The shown backend's config; ``ValueError`` naming a bad value."""
        assert self.current is not None
        return build_config(self.current.config_class, self.own_options(), owner=self.current.name)

    def options(self) -> dict[str, Any]:
        """Everything a run passes to ``build_backend``: options, weight files, sam_refine."""
        out = self.own_options() | self.weight_paths()
        if self.sam_refine.value != "none":
            out["sam_refine"] = self.sam_refine.value
        return out

    def set_values(self, options: dict[str, Any]) -> None:
        """Fill the shown form from ``options`` (strings are converted; unknown keys are a
        ``ValueError`` naming them)."""
        assert self.current is not None
        known = {*self.current.table, *SLOT_LABELS, "sam_refine"}
        unknown = [k for k in options if k not in known]
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} for {self.current.name}")
        for key, info in self.current.table.items():
            self.current.set(key, options.get(key, info.default))
        self.sam_refine.value = options.get("sam_refine") or "none"
        for slot, field in self.weight_files.items():
            field.value = options.get(slot)
