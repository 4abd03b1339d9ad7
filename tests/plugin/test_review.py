"""Review from the widget: accept (undoable), reject, corrections, shortcuts, re-runs."""

from __future__ import annotations

import numpy as np
from napari.utils.key_bindings import KeyBinding

from napari_incontext._layers import PROPOSALS
from tests.plugin.plugin_helpers import EXAMPLE, N_SLICES, run_and_wait

TARGET = EXAMPLE + 1


def _paint(qtbot, viewer, index: int, value: int) -> np.ndarray:
    """Paint a 6x6 square on slice ``index`` through napari's undoable API (as a brush does)."""
    viewer.dims.set_current_step(0, index)
    layer = viewer.layers["examples"]
    ys, xs = np.mgrid[2:8, 2:8]
    layer.data_setitem((np.full(ys.size, index), ys.ravel(), xs.ravel()), value)
    qtbot.wait(20)  # the widget re-reads the painted slice on the next event-loop tick
    mask = np.zeros(layer.data.shape[1:], bool)
    mask[2:8, 2:8] = True
    return mask


def test_accept_copies_the_proposal_and_undo_restores(qtbot, viewer_widget, stack):
    viewer, widget = viewer_widget
    labels = viewer.layers["examples"]
    run_and_wait(qtbot, widget)
    proposal = viewer.layers[PROPOSALS].data[TARGET].copy()
    assert proposal.any()

    widget.goto(TARGET)
    widget.accept_button.click()
    np.testing.assert_array_equal(labels.data[TARGET], proposal)
    assert widget.session.status(TARGET) == "accepted"
    np.testing.assert_array_equal(np.delete(labels.data, TARGET, 0), np.delete(stack[2], TARGET, 0))

    labels.undo()
    np.testing.assert_array_equal(labels.data, stack[2])
    widget.goto(TARGET)  # navigating re-reads the slice: the undone accept is a proposal again
    assert widget.session.status(TARGET) == "proposed"
    labels.redo()
    np.testing.assert_array_equal(labels.data[TARGET], proposal)


def test_accept_never_overwrites_painted_pixels(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    labels = viewer.layers["examples"]
    run_and_wait(qtbot, widget)
    proposal = viewer.layers[PROPOSALS].data[TARGET].copy()
    mask = _paint(qtbot, viewer, TARGET, 7)
    assert widget.session.status(TARGET) == "edited"  # a painted slice is a correction

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
    widget.threshold_spin.setValue(threshold)
    threshold = widget.threshold_spin.value()  # the spin box rounds
    widget.reject(min(scores, key=scores.get))
    widget.accept_all_button.click()

    accepted = {i for i in scores if widget.session.status(i) == "accepted"}
    rejected = {i for i in scores if widget.session.status(i) == "rejected"}
    expected = {i for i, s in scores.items() if s >= threshold} - rejected
    assert accepted == expected and accepted
    assert all(labels.data[i].any() for i in accepted)
    labels.undo()
    np.testing.assert_array_equal(labels.data, stack[2])


def test_reject_next_lowest_and_shortcuts(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    order = [i for i, _, s in widget.session.review_rows() if s == "proposed"]

    viewer.keymap[KeyBinding.from_str("Shift-N")](viewer)
    assert viewer.dims.current_step[0] == order[0]
    viewer.keymap[KeyBinding.from_str("Shift-R")](viewer)
    assert widget.session.status(order[0]) == "rejected"
    viewer.keymap[KeyBinding.from_str("Shift-N")](viewer)
    assert viewer.dims.current_step[0] == order[1]
    viewer.keymap[KeyBinding.from_str("Shift-A")](viewer)
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
    assert widget.session.status(0) == "edited"
    results = []
    original = widget._on_result
    widget._on_result = lambda result: (results.append(result.index), original(result))
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
    widget.options_edit.setText("delay=0.0")
    run_and_wait(qtbot, widget)
    assert len(built) == 2 and built[1] is not built[0]
    assert built[1].computed == 0  # same feature_key: every slice came from the cache


def test_layer_choices_follow_the_viewer(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    labels_choices = [widget.labels_combo.itemText(i) for i in range(widget.labels_combo.count())]
    assert labels_choices == ["examples"]  # the proposals layer is not offered
    viewer.layers["stack"].name = "renamed"
    assert widget.image_combo.currentText() == "renamed"
    viewer.add_image(np.zeros((2, 8, 8)), name="another")
    assert widget.image_combo.findText("another") >= 0


def test_a_correction_makes_the_rerun_better(qtbot, viewer_widget, stack):
    from tests.plugin.plugin_helpers import choose_backend

    viewer, widget = viewer_widget
    _, truth, _ = stack
    choose_backend(widget, "classic")

    def quality(index: int) -> float:
        scores = []
        for k in (1, 2):
            a, b = viewer.layers[PROPOSALS].data[index] == k, truth[index] == k
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
    qtbot.wait(20)
    assert widget.session.status(worst) == "edited"
    run_and_wait(qtbot, widget)
    rest = [i for i in first if i != worst]
    assert np.mean([quality(i) for i in rest]) > np.mean([first[i] for i in rest]) + 0.02
