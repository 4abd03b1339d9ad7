"""The widget reports classic's automatic choices after a run and Save records every run's
backend, options and choices in provenance.json (issue 16 point 3)."""

from __future__ import annotations

import json

from napari_incontext._session import Session
from tests.plugin.plugin_helpers import choose_backend, run_and_wait, wait_idle


def test_a_classic_run_names_its_choices_and_save_records_them(qtbot, viewer_widget, tmp_path):
    _, widget = viewer_widget
    choose_backend(widget, "classic")
    run_and_wait(qtbot, widget)
    status = widget.review.status_label.text()
    assert status.startswith("finished:"), status
    assert "(chosen from the data)" in status
    assert "per_slice o" in status and "position o" in status
    assert "link o" not in status  # the checkbox decides it in the widget, not the data

    widget.save(str(tmp_path / "saved"))
    wait_idle(qtbot, widget)
    record = json.loads((tmp_path / "saved" / "provenance.json").read_text())
    (run,) = record["runs"]
    assert run["backend"] == "classic" and run["link"] is False
    assert run["options"]["per_slice"] is None  # left to auto
    chosen = run["automatic_choices"]
    assert {"per_slice", "position", "drift"} <= set(chosen) and "link" not in chosen
    on_off = "on" if chosen["per_slice"] else "off"
    assert f"per_slice {on_off}" in status

    widget.viewer.dims.set_current_step(0, 0)
    widget.controls.run_slice_button.click()  # a second run (its fit skipped): a second record
    wait_idle(qtbot, widget)
    assert [r["automatic_choices"] for r in widget.session.runs] == [chosen, chosen]


def test_provenance_files_with_and_without_runs_restore() -> None:
    rows = [{"index": 2, "status": "example", "confidence": None, "backend": None}]
    old = Session()
    old.restore_provenance(rows)  # a file saved before "runs" existed: its slices alone
    assert old.status(2) == "example" and old.runs == []
    run = {"backend": "classic", "options": {}, "automatic_choices": {"per_slice": 1.0}}
    new = Session()
    new.restore_provenance({"slices": rows, "runs": [run]})
    assert new.status(2) == "example" and new.runs == [run]
    assert new.snapshot().provenance()["runs"] == [run]  # what Save's worker writes
