"""Image sets (several 2D image layers) and saving labels with their provenance."""

from __future__ import annotations

import json

import numpy as np
import tifffile
from imageio import v3 as iio

from napari_incontext._layers import PROPOSALS
from napari_incontext._save import LABELS_FILE, PROVENANCE_FILE
from tests.plugin.plugin_helpers import EXAMPLE, N_SLICES, run_and_wait, run_image_set


def test_saved_stack_and_provenance(qtbot, viewer_widget, tmp_path):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    widget.accept([EXAMPLE + 1])
    widget.reject(EXAMPLE - 1)
    widget.save(str(tmp_path))

    saved = tifffile.imread(tmp_path / LABELS_FILE)
    np.testing.assert_array_equal(saved, viewer.layers["examples"].data)
    record = json.loads((tmp_path / PROVENANCE_FILE).read_text())
    rows = {row["index"]: row for row in record["slices"]}
    assert record["mode"] == "stack" and record["n_slices"] == N_SLICES
    assert rows[EXAMPLE]["status"] == "example" and rows[EXAMPLE]["confidence"] is None
    assert rows[EXAMPLE + 1]["status"] == "accepted" and rows[EXAMPLE + 1]["backend"] == "counting"
    assert rows[EXAMPLE - 1]["status"] == "rejected"
    assert 0 < rows[EXAMPLE + 1]["confidence"] <= 1


def test_image_set_of_layers(qtbot, make_napari_viewer, stack, test_backends, tmp_path):
    image, truth, labels = stack
    viewer = make_napari_viewer()
    names = ["first", "second", "third"]
    images = {"first": image[EXAMPLE], "second": image[EXAMPLE + 1]}
    images["third"] = image[EXAMPLE - 1, :40, :44]  # sizes may differ
    widget = run_image_set(qtbot, viewer, images, labels[EXAMPLE])

    assert widget.workspace.is_set and PROPOSALS not in viewer.layers
    for name, z in zip(names[1:], (EXAMPLE + 1, EXAMPLE - 1)):
        proposal = viewer.layers[f"proposals [{name}]"].data
        assert proposal.shape == viewer.layers[name].data.shape
        assert set(np.unique(proposal)) == {0, 1, 2}  # both objects, ids kept
        inside = truth[z][: proposal.shape[0], : proposal.shape[1]]
        assert ((proposal != 0) & (inside != 0)).sum() > 0.5 * (inside != 0).sum()
    assert [widget.session.status(i) for i in range(3)] == ["example", "proposed", "proposed"]

    widget.goto(1)
    widget.accept_button.click()
    accepted = viewer.layers["labels [second]"]
    np.testing.assert_array_equal(accepted.data, viewer.layers["proposals [second]"].data)
    accepted.undo()
    assert not accepted.data.any()
    accepted.redo()

    widget.save(str(tmp_path))
    saved = {p.stem: iio.imread(p) for p in (tmp_path / "masks").glob("*.png")}
    assert sorted(saved) == sorted(names)
    np.testing.assert_array_equal(saved["first"], labels[EXAMPLE])
    np.testing.assert_array_equal(saved["second"], accepted.data)
    assert not saved["third"].any() and saved["third"].shape == (40, 44)
    record = json.loads((tmp_path / PROVENANCE_FILE).read_text())
    assert [(r["name"], r["status"]) for r in record["slices"]] == [
        ("first", "example"),
        ("second", "accepted"),
        ("third", "proposed"),
    ]
