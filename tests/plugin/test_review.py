"""Review from the widget: accept (undoable), reject, corrections, shortcuts, re-runs."""

from __future__ import annotations

import numpy as np

from tests.plugin.plugin_helpers import (
    EXAMPLE,
    N_SLICES,
    choose_backend,
    proposals,
    run_and_wait,
    wait_idle,
)

TARGET = EXAMPLE + 1


def _paint(qtbot, viewer, index: int, value: int) -> np.ndarray:
    """Paint a 6x6 square on slice ``index`` through napari's undoable API (as a brush does)."""
    viewer.dims.set_current_step(0, index)
    layer = viewer.layers["examples"]
    ys, xs = np.mgrid[2:8, 2:8]
    layer.data_setitem((np.full(ys.size, index), ys.ravel(), xs.ravel()), value)
    qtbot.wait(20)  # the widget reads the painted slice a tick later, in a worker
    mask = np.zeros(layer.data.shape[1:], bool)
    mask[2:8, 2:8] = True
    return mask


def test_accept_copies_the_proposal_and_the_table_follows_undo_redo(qtbot, viewer_widget, stack):
    viewer, widget = viewer_widget
    labels = viewer.layers["examples"]
    run_and_wait(qtbot, widget)
    proposal = proposals(viewer).data[TARGET].copy()
    assert proposal.any()

    widget.goto(TARGET)
    widget.review.accept_button.click()
    np.testing.assert_array_equal(labels.data[TARGET], proposal)
    assert widget.session.status(TARGET) == "accepted"
    np.testing.assert_array_equal(np.delete(labels.data, TARGET, 0), np.delete(stack[2], TARGET, 0))

    labels.undo()  # Ctrl+Z: the table follows without any navigation
    np.testing.assert_array_equal(labels.data, stack[2])
    qtbot.waitUntil(lambda: widget.session.status(TARGET) == "proposed", timeout=5000)
    assert widget.session.has_proposal(TARGET)
    labels.redo()
    np.testing.assert_array_equal(labels.data[TARGET], proposal)
    qtbot.waitUntil(lambda: widget.session.status(TARGET) == "accepted", timeout=5000)
    widget.review.table.refresh_now()
    row = [widget.review.table.row_index(r) for r in range(N_SLICES)].index(TARGET)
    assert widget.review.table.row_text(row, 2) == "accepted"


def test_accept_never_overwrites_painted_pixels(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    labels = viewer.layers["examples"]
    run_and_wait(qtbot, widget)
    proposal = proposals(viewer).data[TARGET].copy()
    mask = _paint(qtbot, viewer, TARGET, 7)
    qtbot.waitUntil(lambda: widget.session.status(TARGET) == "edited", timeout=5000)

    widget.accept([TARGET])
    assert (labels.data[TARGET][mask] == 7).all()
    np.testing.assert_array_equal(labels.data[TARGET][~mask], proposal[~mask])
    labels.undo()  # one undo removes the accept, the painting stays
    assert (labels.data[TARGET][mask] == 7).all()
    assert not labels.data[TARGET][~mask].any()


def test_accept_above_threshold_is_one_undo_step(qtbot, viewer_widget, stack):
    viewer, widget = viewer_widget
    labels = viewer.layers["examples"]
    run_and_wait(qtbot, widget)
    scores = {i: widget.session.slices[i].score for i in range(N_SLICES) if i != EXAMPLE}
    threshold = float(np.median(list(scores.values())))
    widget.review.threshold_spin.setValue(threshold)
    threshold = widget.review.threshold_spin.value()  # the spin box rounds
    widget.reject(min(scores, key=scores.get))
    widget.review.accept_all_button.click()
    wait_idle(qtbot, widget)

    accepted = {i for i in scores if widget.session.status(i) == "accepted"}
    rejected = {i for i in scores if widget.session.status(i) == "rejected"}
    expected = {i for i, s in scores.items() if s >= threshold} - rejected
    assert accepted == expected and accepted
    assert all(labels.data[i].any() for i in accepted)
    labels.undo()
    np.testing.assert_array_equal(labels.data, stack[2])


def test_reject_next_lowest_and_shortcuts(qtbot, viewer_widget):
    from napari.components import ViewerModel
    from napari.utils.key_bindings import KeyBinding

    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    order = [i for i, state in widget.session.review_rows() if state.status == "proposed"]

    def press(key: str) -> None:  # the viewer keymap napari dispatches a key press to
        ViewerModel.class_keymap[KeyBinding.from_str(key)](viewer)

    viewer.dims.set_current_step(0, EXAMPLE)  # not waiting for review: Next goes to the lowest
    press("Shift+N")
    assert viewer.dims.current_step[0] == order[0]
    press("Shift+X")
    assert widget.session.status(order[0]) == "rejected"
    press("Shift+N")
    assert viewer.dims.current_step[0] == order[1]
    press("Shift+Y")
    assert widget.session.status(order[1]) == "accepted"
    assert viewer.layers["examples"].data[order[1]].any()


def test_rerun_uses_accepted_and_edited_slices_and_the_cache(qtbot, viewer_widget, built):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    backend = built[-1]
    assert backend.computed == N_SLICES  # every slice encoded once
    misses, hits = widget.session.cache.misses, widget.session.cache.hits

    widget.accept([TARGET])
    _paint(qtbot, viewer, 0, 1)  # a correction on another slice
    qtbot.waitUntil(lambda: widget.session.status(0) == "edited", timeout=5000)
    results = []
    original = widget.runner.on_result
    widget.runner.on_result = lambda result: (results.append(result.index), original(result))
    run_and_wait(qtbot, widget)

    assert built[-1] is backend  # same options: the backend (and its model) is kept
    assert sorted(results) == [i for i in range(N_SLICES) if i not in (0, EXAMPLE, TARGET)]
    assert backend.computed == N_SLICES  # no slice re-encoded
    assert widget.session.cache.misses == misses
    assert widget.session.cache.hits == hits + N_SLICES  # 3 examples + 3 targets, all cached
    statuses = [widget.session.status(i) for i in (0, EXAMPLE, TARGET)]
    assert statuses == ["edited", "example", "accepted"]


def test_changing_backend_options_rebuilds_but_keeps_the_cache(qtbot, viewer_widget, built):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    widget.controls.options_form.widget("delay").value = 0.001
    run_and_wait(qtbot, widget)
    assert len(built) == 2 and built[1] is not built[0]
    assert built[1].computed == 0  # same feature_key: every slice came from the cache


def test_layer_choices_follow_the_viewer(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    combo = widget.controls.labels_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["examples"]  # not proposals
    viewer.layers["stack"].name = "renamed"
    assert widget.controls.image_combo.currentText() == "renamed"
    viewer.add_image(np.zeros((2, 8, 8)), name="another")
    assert widget.controls.image_combo.findText("another") >= 0


def test_a_correction_makes_the_rerun_better(qtbot, viewer_widget, stack):
    viewer, widget = viewer_widget
    _, truth, _ = stack
    choose_backend(widget, "classic")

    def quality(index: int) -> float:
        scores = []
        for k in (1, 2):
            a, b = proposals(viewer).data[index] == k, truth[index] == k
            scores.append((a & b).sum() / max((a | b).sum(), 1))
        return float(np.mean(scores))

    run_and_wait(qtbot, widget)
    first = {i: quality(i) for i in range(N_SLICES) if i != EXAMPLE}
    worst = min(first, key=first.get)
    viewer.dims.set_current_step(0, worst)
    ys, xs = np.nonzero(np.ones_like(truth[worst], bool))
    viewer.layers["examples"].data_setitem(  # the person paints the right answer
        (np.full(ys.size, worst), ys, xs), truth[worst][ys, xs]
    )
    qtbot.waitUntil(lambda: widget.session.status(worst) == "edited", timeout=5000)
    run_and_wait(qtbot, widget)
    rest = [i for i in first if i != worst]
    # classic is seeded: the same data gives the same forests, so any gain is the correction's
    assert np.mean([quality(i) for i in rest]) > np.mean([first[i] for i in rest])
