"""Propagation controls and persistence: scope, stop, head reuse, reopening, saved examples."""

from __future__ import annotations

import numpy as np
import tifffile

from tests.plugin.plugin_helpers import (
    EXAMPLE,
    N_SLICES,
    choose_backend,
    dock,
    proposals,
    run_and_wait,
    wait_idle,
)


def _proposed(widget) -> list[int]:
    return sorted(i for i, s in widget.session.slices.items() if s.score is not None)


def test_a_run_can_be_limited_to_a_range_or_a_direction(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    controls = widget.controls
    assert (controls.first_spin.value(), controls.last_spin.value()) == (0, N_SLICES - 1)
    controls.first_spin.setValue(1)
    controls.last_spin.setValue(4)
    run_and_wait(qtbot, widget)
    assert _proposed(widget) == [1, 2, 4]
    controls.first_spin.setValue(0)
    controls.last_spin.setValue(N_SLICES - 1)
    controls.direction_combo.setCurrentText("backward")
    run_and_wait(qtbot, widget)
    assert _proposed(widget) == [0, 1, 2, 4]  # only slice 0 was added: before the example


def test_a_run_stops_on_a_side_when_the_score_falls(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    image = viewer.layers["stack"].data.copy()
    image[EXAMPLE + 1 :] = np.median(image)  # the objects are gone after the example
    viewer.layers["stack"].data = image
    widget.controls.stop_check.setChecked(True)
    widget.controls.stop_spin.setValue(0.55)
    run_and_wait(qtbot, widget)
    assert EXAMPLE + 2 == N_SLICES - 1
    assert EXAMPLE + 1 in _proposed(widget)  # the first low score is shown ...
    assert EXAMPLE + 2 not in _proposed(widget)  # ... and nothing beyond it on that side
    assert _proposed(widget) == [0, 1, 2, EXAMPLE + 1]  # the other side went on


def test_run_this_slice_reuses_the_fitted_head(qtbot, viewer_widget, built):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    assert len(built[-1].fits) == 1
    viewer.dims.set_current_step(0, 0)
    widget.controls.run_slice_button.click()
    wait_idle(qtbot, widget)
    assert len(built) == 1 and len(built[-1].fits) == 1  # predicted with the same head
    widget.accept([EXAMPLE + 1])
    widget.controls.run_slice_button.click()
    wait_idle(qtbot, widget)
    assert len(built[-1].fits) == 2  # new examples: refitted


def test_closing_and_reopening_the_widget_keeps_the_review(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    widget.accept([EXAMPLE + 1])
    widget.reject(EXAMPLE - 1)
    widget.controls.accepted_combo.setCurrentText("excluded")
    before = {i: (s.status, s.score, s.reasons) for i, s in widget.session.slices.items()}
    viewer.window.remove_dock_widget(widget)

    again = dock(viewer)
    after = {i: (s.status, s.score, s.reasons) for i, s in again.session.slices.items()}
    assert after == before
    assert again.session.accepted_weight == "excluded"
    assert again.controls.accepted_combo.currentText() == "excluded"
    again.review.table.refresh_now()
    assert again.review.table.model().rowCount() == N_SLICES
    viewer.layers["examples"].undo()  # the reopened widget follows edits too
    qtbot.waitUntil(lambda: again.session.status(EXAMPLE + 1) == "proposed", timeout=5000)


def test_saving_and_reopening_the_project_keeps_the_review(
    qtbot, viewer_widget, make_napari_viewer, built, tmp_path
):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    widget.accept([EXAMPLE + 1])
    widget.reject(EXAMPLE - 1)
    before = {i: (s.status, s.score, s.reasons) for i, s in widget.session.slices.items()}
    widget.save(str(tmp_path / "project"))
    wait_idle(qtbot, widget)

    again = make_napari_viewer()  # another session: open the image and the saved labels
    again.open(tmp_path / "stack.tif")
    again.open(tmp_path / "project" / "labels.tif", layer_type="labels")
    reopened = dock(again)
    choose_backend(reopened, "counting")
    after = {i: (s.status, s.score, s.reasons) for i, s in reopened.session.slices.items()}
    assert after == before
    run_and_wait(qtbot, reopened)  # the accepted slice stays a weak example, not "edited"
    assert reopened.session.status(EXAMPLE + 1) == "accepted"
    assert dict(built[-1].fits[-1])[EXAMPLE + 1] < 1.0


def test_saved_examples_label_another_stack(
    qtbot, viewer_widget, stack, make_napari_viewer, tmp_path
):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    widget.save_examples(str(tmp_path / "head"))
    wait_idle(qtbot, widget)
    assert sorted(p.name for p in (tmp_path / "head").iterdir()) == [
        "examples.json",
        "examples.npz",
    ]
    widget.save_examples(str(tmp_path / "head"))  # never over existing files
    wait_idle(qtbot, widget)
    assert len(list((tmp_path / "head").iterdir())) == 2

    image, truth, _ = stack
    other = make_napari_viewer()
    tifffile.imwrite(tmp_path / "other.tif", image[::-1].copy())
    other.open(tmp_path / "other.tif")
    other.add_labels(np.zeros(image.shape, np.int32), name="new labels")  # nothing painted
    second = dock(other)
    second.load_examples(str(tmp_path / "head"))
    wait_idle(qtbot, second)
    assert second.controls.backend_combo.currentData() == "counting"
    assert second.session.extra is not None and len(second.session.extra.images) == 1
    run_and_wait(qtbot, second)
    assert len(_proposed(second)) == N_SLICES  # every slice: none is an example here
    found = proposals(other).data
    flipped = truth[::-1]
    hits = [(found[i] != 0) & (flipped[i] != 0) for i in range(N_SLICES)]
    assert np.mean([h.sum() / max((flipped[i] != 0).sum(), 1) for i, h in enumerate(hits)]) > 0.5
