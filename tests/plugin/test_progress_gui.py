"""Progress and status in the widget: slices done / total with ETA, and how a run ended."""

from __future__ import annotations

from napari_incontext._progress import duration
from tests.plugin.plugin_helpers import N_SLICES, choose_backend, run_and_wait, wait_idle

TARGETS = N_SLICES - 1  # every slice but the example


def _status(widget) -> str:
    return widget.review.status_label.text()


def test_a_finished_run_shows_slices_done_and_seconds_per_slice(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    progress = widget.controls.progress
    run_and_wait(qtbot, widget)
    assert (progress.bar.value(), progress.bar.maximum()) == (TARGETS, TARGETS)
    assert progress.bar.text() == f"{TARGETS} / {TARGETS} slices"
    assert _status(widget).startswith(f"finished: {TARGETS} slice(s) in ")
    assert progress.last_per_slice is not None and progress.last_per_slice > 0
    assert progress.info.text() == f"last run: {progress.last_per_slice:.2f} s/slice"


def test_a_run_in_progress_shows_an_eta_and_a_cancel_says_where_it_stopped(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    progress = widget.controls.progress
    choose_backend(widget, "slow")  # 0.15 s per slice
    widget.controls.run_button.click()
    qtbot.waitUntil(lambda: progress.bar.value() >= 1, timeout=60_000)
    assert progress.bar.text().startswith(f"{progress.bar.value()} / {TARGETS} slices, ETA ")
    widget.controls.cancel_button.click()
    wait_idle(qtbot, widget)
    done = progress.done
    assert 1 <= done < TARGETS and progress.bar.value() == done
    assert _status(widget).startswith(f"cancelled at {done} of {TARGETS} slices")


def test_a_failed_run_says_why(qtbot, viewer_widget, monkeypatch):
    viewer, widget = viewer_widget
    monkeypatch.setattr("napari_incontext._workers.show_error", lambda text: None)
    choose_backend(widget, "broken")  # predict raises
    run_and_wait(qtbot, widget)
    assert _status(widget) == (
        f"failed at 0 of {TARGETS} slices: RuntimeError: predict exploded (test backend)"
    )
    choose_backend(widget, "counting")  # the next run's status is its own
    run_and_wait(qtbot, widget)
    assert _status(widget).startswith(f"finished: {TARGETS} slice(s)")


def test_a_run_that_cannot_start_says_so(qtbot, viewer_widget, monkeypatch):
    viewer, widget = viewer_widget
    monkeypatch.setattr("napari_incontext._running.show_error", lambda text: None)
    viewer.layers["examples"].data = viewer.layers["examples"].data * 0
    run_and_wait(qtbot, widget)
    assert _status(widget).startswith("not started: no example")


def test_durations_read_naturally():
    assert [duration(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]
