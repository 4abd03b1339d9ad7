"""Corrections are never lost: verified vs accepted examples, edits in the proposals layer,
per-object decisions, and key bindings that are napari actions."""

from __future__ import annotations

import numpy as np

from tests.plugin.plugin_helpers import (
    EXAMPLE,
    N_SLICES,
    choose_backend,
    dock,
    proposals,
    run_and_wait,
    wait_idle,
)

TARGET = EXAMPLE + 1


def _paint(qtbot, layer, index: int, value: int) -> None:
    """Paint a 6x6 square on slice ``index`` through napari's undoable API."""
    ys, xs = np.mgrid[2:8, 2:8]
    layer.data_setitem((np.full(ys.size, index), ys.ravel(), xs.ravel()), value)
    qtbot.wait(20)


def test_accepted_slices_are_weak_examples_painted_ones_full(qtbot, viewer_widget, built):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    widget.accept([TARGET, 0])
    viewer.dims.set_current_step(0, 0)
    _paint(qtbot, viewer.layers["examples"], 0, 1)  # the person corrects slice 0
    qtbot.waitUntil(lambda: widget.session.status(0) == "edited", timeout=5000)
    run_and_wait(qtbot, widget)
    assert dict(built[-1].fits[-1]) == {0: 1.0, EXAMPLE: 1.0, TARGET: 0.2}

    widget.controls.accepted_combo.setCurrentText("excluded")
    run_and_wait(qtbot, widget)
    assert dict(built[-1].fits[-1]) == {0: 1.0, EXAMPLE: 1.0}  # left out of the fit
    widget.controls.accepted_combo.setCurrentText("full")
    run_and_wait(qtbot, widget)
    assert dict(built[-1].fits[-1])[TARGET] == 1.0


def test_proposals_are_outlines_and_edits_in_them_are_kept(qtbot, viewer_widget, built):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    layer = proposals(viewer)
    assert layer.contour > 0  # outlines: never confused with the user's own labels
    assert viewer.layers.selection.active.name == "examples"
    viewer.dims.set_current_step(0, TARGET)
    _paint(qtbot, layer, TARGET, 2)  # the person corrects the proposal where it is
    corrected = layer.data[TARGET].copy()
    assert widget.session.proposal_edits == {TARGET}

    widget.controls.options_form.widget("delay").value = 0.001  # new options: a full new run
    run_and_wait(qtbot, widget)
    np.testing.assert_array_equal(layer.data[TARGET], corrected)  # not overwritten
    widget.goto(TARGET)
    widget.accept_current()
    np.testing.assert_array_equal(viewer.layers["examples"].data[TARGET], corrected)
    assert widget.session.status(TARGET) == "edited"  # a correction: a full-weight example
    run_and_wait(qtbot, widget)
    assert dict(built[-1].fits[-1])[TARGET] == 1.0


def test_objects_are_accepted_and_rejected_one_at_a_time(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    widget.goto(TARGET)
    qtbot.waitUntil(lambda: widget.review.object_combo.count() == 3, timeout=5000)
    widget.review.object_combo.setCurrentText("object 2")
    widget.review.accept_button.click()
    labels = viewer.layers["examples"].data[TARGET]
    assert set(np.unique(labels)) == {0, 2}  # only object 2 was copied
    assert widget.session.status(TARGET) == "partly accepted"
    widget.review.object_combo.setCurrentText("object 1")
    widget.review.reject_button.click()
    assert widget.session.status(TARGET) == "accepted"
    assert set(np.unique(viewer.layers["examples"].data[TARGET])) == {0, 2}

    viewer.dims.set_current_step(0, TARGET + 1)  # the object under the mouse, by key
    proposal = proposals(viewer).data[TARGET + 1]
    y, x = np.argwhere(proposal == 1)[0]
    viewer.cursor.position = (TARGET + 1, y, x)
    widget.accept_object_under_cursor()
    assert set(np.unique(viewer.layers["examples"].data[TARGET + 1])) == {0, 1}


def test_keys_are_napari_actions_without_collisions_released_on_close(
    qtbot, make_napari_viewer, stack, test_backends, tmp_path
):
    from napari._app_model import get_app_model
    from napari.components import ViewerModel
    from napari.utils.action_manager import action_manager
    from napari.utils.key_bindings import KeyBinding

    from napari_incontext._actions import ACTIONS, action_name
    from tests.plugin.plugin_helpers import open_stack

    viewer = make_napari_viewer()
    open_stack(viewer, tmp_path, *stack[::2])
    widget = dock(viewer)
    ours = {action_name(name) for name in ACTIONS}
    for name, (key, _, _) in ACTIONS.items():
        action = action_manager._actions[action_name(name)]
        assert action.keymapprovider is ViewerModel  # listed under Viewer key bindings
        assert key in [str(s) for s in action_manager._shortcuts[action_name(name)]]
        taken = [
            other
            for other, keys in action_manager._shortcuts.items()
            if other not in ours and any(str(k) == key for k in keys)
        ]
        taken += [
            str(kb.command_id)
            for kb in get_app_model().keybindings
            if str(kb.keybinding) == str(KeyBinding.from_str(key))
        ]
        assert not taken, f"{key} collides with {taken}"
    assert KeyBinding.from_str("Shift+Y") in ViewerModel.class_keymap
    viewer.window.remove_dock_widget(widget)
    assert KeyBinding.from_str("Shift+Y") not in ViewerModel.class_keymap  # released
    again = dock(viewer)
    assert KeyBinding.from_str("Shift+Y") in ViewerModel.class_keymap
    choose_backend(again, "counting")
    run_and_wait(qtbot, again)
    wait_idle(qtbot, again)
    assert sum(1 for s in again.session.slices.values() if s.score is not None) == N_SLICES - 1
