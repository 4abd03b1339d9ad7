"""Running from the widget: streaming, cancel, errors, responsiveness, object ids."""

from __future__ import annotations

import time

import numpy as np
from qtpy.QtCore import QTimer

from tests.plugin.conftest import hold_after
from tests.plugin.plugin_helpers import (
    N_SLICES,
    choose_backend,
    dock,
    proposals,
    run_and_wait,
    wait_idle,
)


def _filled(viewer) -> int:
    """Number of proposal slices holding any label (0 before the layer exists)."""
    from napari_incontext._layers import PROPOSALS, role

    if not any(role(layer) == PROPOSALS for layer in viewer.layers):
        return 0
    data = proposals(viewer).data
    return int(sum(data[i].any() for i in range(len(data))))


def _spy_results(widget, on_each=None) -> list:
    """Record every result the widget receives (and call ``on_each`` after it is shown)."""
    seen = []
    original = widget.runner.on_result

    def spy(result):
        original(result)
        seen.append(result)
        if on_each is not None:
            on_each(result)

    widget.runner.on_result = spy
    return seen


def test_run_streams_proposals_slice_by_slice(qtbot, viewer_widget, stack):
    viewer, widget = viewer_widget
    _, truth, labels = stack
    seen = []  # (index, slices filled when that slice's result arrived)
    _spy_results(widget, lambda result: seen.append((result.index, _filled(viewer))))
    run_and_wait(qtbot, widget)

    example = N_SLICES // 2
    assert sorted(i for i, _ in seen) == [i for i in range(N_SLICES) if i != example]
    assert [n for _, n in seen] == list(range(1, N_SLICES))  # one more slice per result
    assert abs(seen[0][0] - example) == 1  # nearest slices first
    assert not proposals(viewer).data[example].any()
    np.testing.assert_array_equal(viewer.layers["examples"].data, labels)  # untouched
    statuses = {i: widget.session.status(i) for i in range(N_SLICES)}
    assert statuses[example] == "example"
    assert [s for i, s in statuses.items() if i != example] == ["proposed"] * (N_SLICES - 1)
    widget.review.table.refresh_now()
    assert widget.review.table.model().rowCount() == N_SLICES
    assert widget.controls.run_button.isEnabled() and not widget.controls.cancel_button.isEnabled()
    # the classic backend finds the objects again on the neighbouring slice
    near = example + 1
    fg = proposals(viewer).data[near] != 0
    iou = (fg & (truth[near] != 0)).sum() / (fg | (truth[near] != 0)).sum()
    assert iou > 0.5


def test_table_sorted_lowest_confidence_first_and_click_moves(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    table = widget.review.table
    table.refresh_now()
    scores = [float(table.row_text(r, 1)) for r in range(N_SLICES - 1)]
    assert scores == sorted(scores)
    assert table.row_text(N_SLICES - 1, 2) == "example"
    target = table.row_index(2)
    table.click_row(2)
    assert viewer.dims.current_step[0] == target


def test_cancel_stops_mid_run_and_keeps_layers_consistent(
    qtbot, viewer_widget, stack, built, monkeypatch
):
    viewer, widget = viewer_widget
    release = hold_after(monkeypatch, 2)  # the example and the first target, then wait
    choose_backend(widget, "slow")
    controls = widget.controls
    controls.run_button.click()
    assert not controls.run_button.isEnabled() and controls.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: widget.runner.worker is not None, timeout=30_000)
    assert widget.runner.worker.pbar.total == N_SLICES - 1  # napari progress, a step a slice
    qtbot.waitUntil(lambda: _filled(viewer) >= 1, timeout=30_000)
    controls.cancel_button.click()
    release.set()  # the slice in flight finishes; the run stops at its next step
    wait_idle(qtbot, widget, 30_000)

    proposed = [i for i in range(N_SLICES) if widget.session.status(i) == "proposed"]
    assert 1 <= len(proposed) < N_SLICES - 1
    filled = [i for i in range(N_SLICES) if proposals(viewer).data[i].any()]
    assert filled == proposed  # every written slice is in the table, and only those
    np.testing.assert_array_equal(viewer.layers["examples"].data, stack[2])
    assert controls.run_button.isEnabled() and not controls.cancel_button.isEnabled()
    # Run again with the same settings resumes: only the missing slices are proposed, and
    # the slices encoded before the cancel come from the cache
    misses = widget.session.cache.misses
    seen = _spy_results(widget)
    run_and_wait(qtbot, widget)
    assert sorted(r.index for r in seen) == sorted(
        i for i in range(N_SLICES) if i != 3 and i not in proposed
    )
    assert all(widget.session.status(i) == "proposed" for i in range(N_SLICES) if i != 3)
    assert widget.session.cache.misses == misses + (N_SLICES - 1 - len(proposed))


def test_error_in_worker_is_notified_and_loses_nothing(qtbot, viewer_widget, stack, monkeypatch):
    viewer, widget = viewer_widget
    messages = []
    monkeypatch.setattr("napari_incontext._workers.show_error", messages.append)
    choose_backend(widget, "broken")
    run_and_wait(qtbot, widget)

    assert len(messages) == 1 and "predict exploded" in messages[0]
    np.testing.assert_array_equal(viewer.layers["examples"].data, stack[2])
    assert widget.controls.run_button.isEnabled()
    assert not widget.controls.cancel_button.isEnabled()
    assert _filled(viewer) == 0


def test_missing_example_is_reported_without_starting(qtbot, viewer_widget, monkeypatch):
    viewer, widget = viewer_widget
    messages = []
    monkeypatch.setattr("napari_incontext._running.show_error", messages.append)
    viewer.layers["examples"].data = np.zeros_like(viewer.layers["examples"].data)
    run_and_wait(qtbot, widget)
    assert widget.runner.worker is None and messages and "no example" in messages[0]
    assert _filled(viewer) == 0


def test_object_ids_are_preserved(qtbot, viewer_widget, stack):
    viewer, widget = viewer_widget
    _, _, labels = stack
    relabelled = np.select([labels == 1, labels == 2], [5, 9], 0).astype(labels.dtype)
    viewer.layers["examples"].data = relabelled
    run_and_wait(qtbot, widget)
    ids = set(np.unique(proposals(viewer).data).tolist())
    assert ids == {0, 5, 9}


def test_gui_stays_responsive_during_a_run(qtbot, viewer_widget, monkeypatch):
    viewer, widget = viewer_widget
    release = hold_after(monkeypatch, 2)  # the run waits in a "model forward" after one result
    choose_backend(widget, "slow")
    stamps: list[float] = []
    first_result: list[float] = []
    _spy_results(widget, lambda _r: first_result or first_result.append(time.perf_counter()))
    timer = QTimer()
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    timer.start(10)
    widget.controls.run_button.click()
    qtbot.waitUntil(lambda: bool(first_result), timeout=60_000)
    qtbot.waitUntil(lambda: sum(t >= first_result[0] for t in stamps) > 30, timeout=30_000)
    release.set()
    wait_idle(qtbot, widget)
    timer.stop()

    after = [t for t in stamps if first_result and t >= first_result[0]]
    gaps = np.diff(after)
    assert len(after) > 20, "the event loop barely ran during the run"
    assert gaps.max() < 0.1, f"GUI blocked for {gaps.max() * 1000:.0f} ms"


def test_backend_list_marks_missing_weights(qtbot, make_napari_viewer, monkeypatch):
    from src_models import registry
    from src_models.registry import BackendInfo

    classic = registry.BACKENDS["classic"]
    info = BackendInfo(
        "heavy",
        "needs weights",
        classic.config,
        classic.builder,
        needs=lambda config: ["sam_vit_h"],
        gpu_recommended=True,
    )
    monkeypatch.setitem(registry.BACKENDS, "heavy", info)
    combo = dock(make_napari_viewer()).controls.backend_combo
    assert combo.itemText(combo.findData("heavy")) == "heavy (no weights, GPU recommended)"
    assert combo.itemText(combo.findData("classic")) == "classic"


def test_link_checkbox_drops_a_look_alike_away_from_the_object(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    image = viewer.layers["stack"].data.copy()
    example = N_SLICES // 2
    texture = image[example][viewer.layers["examples"].data[example] == 1][:100]
    image[N_SLICES - 1, :10, :10] = texture.reshape(10, 10)  # object 1 pasted far away
    viewer.layers["stack"].data = image
    run_and_wait(qtbot, widget)
    free = proposals(viewer).data[N_SLICES - 1, :10, :10].copy()
    widget.controls.link_check.setChecked(True)
    run_and_wait(qtbot, widget)
    linked = proposals(viewer).data[N_SLICES - 1, :10, :10]
    assert (free == 1).mean() > 0.5  # the classifier alone takes the pasted texture
    assert not (linked == 1).any()  # a linked run keeps only what continues object 1


def test_run_this_slice_proposes_only_the_slice_on_screen(qtbot, viewer_widget, built):
    viewer, widget = viewer_widget
    target = N_SLICES // 2 + 2
    viewer.dims.set_current_step(0, target)
    widget.controls.run_slice_button.click()
    wait_idle(qtbot, widget)
    filled = [i for i in range(N_SLICES) if proposals(viewer).data[i].any()]
    assert filled == [target]
    assert built[-1].computed == 2  # the example and this slice only
    assert widget.session.status(target) == "proposed"


def test_removing_the_widget_cancels_its_run(qtbot, viewer_widget, built):
    viewer, widget = viewer_widget
    choose_backend(widget, "slow")
    widget.controls.run_button.click()
    qtbot.waitUntil(lambda: _filled(viewer) >= 1, timeout=30_000)
    worker = widget.runner.worker
    viewer.window.remove_dock_widget(widget)  # what the dock's close button does
    wait_idle(qtbot, widget, 30_000)
    assert worker.abort_requested
    assert built[-1].computed < N_SLICES  # stopped before encoding every slice
