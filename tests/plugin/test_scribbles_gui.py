"""Scribble mode from the widget: the "unpainted pixels" choice reaches the run."""

from __future__ import annotations

import numpy as np

from src_models.evaluation.strokes import strokes_from_truth
from tests.helpers import iou
from tests.plugin.plugin_helpers import (
    EXAMPLE,
    N_SLICES,
    choose_backend,
    dock,
    open_stack,
    proposals,
    run_and_wait,
)

BACKGROUND = 3


def _open(qtbot, make_napari_viewer, tmp_path, stack, labels):
    image, _, _ = stack
    viewer = make_napari_viewer()
    open_stack(viewer, tmp_path, image, labels)
    widget = dock(viewer)
    choose_backend(widget, "counting")
    return viewer, widget


def test_scribbles_run_from_the_widget(qtbot, make_napari_viewer, stack, test_backends, tmp_path):
    _, truth, _ = stack
    strokes = np.zeros_like(truth)
    strokes[EXAMPLE] = strokes_from_truth(truth[EXAMPLE], BACKGROUND)
    viewer, widget = _open(qtbot, make_napari_viewer, tmp_path, stack, strokes)
    controls = widget.controls
    assert not controls.background_spin.isEnabled()
    controls.unpainted_combo.setCurrentText("unlabelled")
    assert controls.background_spin.isEnabled()
    controls.background_spin.setValue(BACKGROUND)
    run_and_wait(qtbot, widget)

    data = proposals(viewer).data
    others = [i for i in range(N_SLICES) if i != EXAMPLE]
    assert all(set(np.unique(data[i])) <= {0, 1, 2} for i in others)
    assert min(iou(data[i] == 1, truth[i] == 1) for i in others) > 0.7
    np.testing.assert_array_equal(viewer.layers["examples"].data, strokes)  # untouched

    # the mode is part of the run's key: switching it never resumes the other mode's run
    scribble_key = controls.settings().key()
    controls.unpainted_combo.setCurrentText("background")
    assert controls.settings().key() != scribble_key


def test_dense_examples_that_look_like_scribbles_are_notified(
    qtbot, make_napari_viewer, stack, test_backends, tmp_path, monkeypatch
):
    _, truth, _ = stack
    thin = np.zeros_like(truth)
    thin[EXAMPLE, 5, 5:15] = 1  # 10 of 2304 pixels
    thin[EXAMPLE, 40, 5:15] = 2
    warned = []
    monkeypatch.setattr("napari_incontext._running.show_warning", warned.append)
    _, widget = _open(qtbot, make_napari_viewer, tmp_path, stack, thin)
    assert widget.controls.unpainted_combo.currentText() == "background"
    run_and_wait(qtbot, widget)
    assert len(warned) == 1 and "3 (0.9%)" in warned[0] and "unpainted = unlabelled" in warned[0]
