"""Typed backend options: a magicgui form generated from each backend's config dataclass."""

from __future__ import annotations

import pytest
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, LineEdit, SpinBox

from src_models.backends.configs import ClassicConfig, Dinov2Config
from src_models.config import option_table
from tests.plugin.plugin_helpers import choose_backend, run_and_wait


def test_the_form_shows_the_backends_config_typed_with_help(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    form = widget.controls.options_form
    choose_backend(widget, "classic")
    assert isinstance(form.widget("texture"), CheckBox) and form.widget("texture").value is True
    assert isinstance(form.widget("n_estimators"), SpinBox)
    assert form.widget("n_estimators").value == ClassicConfig.n_estimators
    assert isinstance(form.widget("sigma_min"), FloatSpinBox)
    assert isinstance(form.widget("max_depth"), LineEdit)  # int or none: empty = none
    assert form.widget("max_depth").value == "16"
    for info in option_table(ClassicConfig):  # every field, with the docstring as tooltip
        assert info.help and info.help in form.widget(info.name).tooltip
    assert not form.takes_weights and form.weights_file.native.isHidden()  # classic: none

    choose_backend(widget, "dinov2")  # switching the backend swaps the form
    assert isinstance(form.widget("backbone"), ComboBox)
    assert form.widget("backbone").choices == ("vits14", "vitb14", "vitl14", "vitg14")
    assert form.widget("refine_eps").value == Dinov2Config.refine_eps  # small floats kept
    assert form.takes_weights and not form.weights_file.native.isHidden()
    assert form.forms["classic"].container.native.isHidden()
    assert form.options() == {}  # defaults are not passed on


def test_form_values_reach_the_backend_and_bad_values_are_notifications(
    qtbot, viewer_widget, built, monkeypatch
):
    viewer, widget = viewer_widget
    form = widget.controls.options_form
    form.widget("delay").value = 0.001
    run_and_wait(qtbot, widget)
    assert built[-1].delay == 0.001

    errors = []
    monkeypatch.setattr("napari_incontext._widget.show_error", errors.append)
    choose_backend(widget, "classic")
    form.widget("max_depth").value = "deep"  # not an int: refused before any work
    widget.controls.run_button.click()
    assert errors == ["option max_depth='deep': expected int or none"]
    form.widget("max_depth").value = ""  # none = unlimited
    form.widget("sigma_max").value = 0.5  # below sigma_min: the config's range check
    widget.controls.run_button.click()
    assert "sigma_max=0.5 is out of range" in errors[-1]
    assert not widget.busy and len(built) == 1


def test_spin_boxes_refuse_values_outside_the_declared_range(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    form = widget.controls.options_form
    choose_backend(widget, "classic")
    trees = form.widget("n_estimators")  # range [1, 10000], declared on the config's field
    assert (trees.min, trees.max) == (1, 10_000) and "range [1, 10000]" in trees.tooltip
    with pytest.raises(ValueError, match="outside of the allowed range"):
        trees.value = 0
    trees.native.setValue(20_000)  # typed or stepped past the end: Qt clamps to the range
    assert trees.value == 10_000
    assert form.widget("sigma_min").min > 0  # "> 0": zero cannot be entered
    assert "range ≥ 1" in form.widget("min_samples_leaf").tooltip
    assert "range ≥ 16" in form.widget("tile_size").tooltip  # optional: range in the tooltip
    choose_backend(widget, "dinov2")
    weight = form.widget("proto_weight")
    assert (weight.min, weight.max) == (0, 1)
    weight.native.setValue(1.5)
    assert weight.value == 1 and form.config().proto_weight == 1


def test_set_values_fills_the_form_from_saved_options(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    form = widget.controls.options_form
    choose_backend(widget, "classic")
    form.set_values({"n_estimators": "100", "texture": "false", "max_depth": "none"})
    assert form.options() == {"n_estimators": 100, "texture": False, "max_depth": None}
    assert widget.controls.settings().options["n_estimators"] == 100
