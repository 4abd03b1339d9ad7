"""Image sets (several 2D images opened from files) and saving labels with their provenance."""

from __future__ import annotations

import json

import numpy as np
import tifffile
from imageio import v3 as iio

from napari_incontext._layers import PROPOSALS, role
from napari_incontext._save import LABELS_FILE, PROVENANCE_FILE
from tests.plugin.plugin_helpers import (
    EXAMPLE,
    N_SLICES,
    choose_backend,
    dock,
    run_and_wait,
    run_image_set,
    wait_idle,
)


def test_saved_stack_and_provenance(qtbot, viewer_widget, tmp_path):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    widget.accept([EXAMPLE + 1])
    widget.reject(EXAMPLE - 1)
    widget.save(str(tmp_path / "out"))
    wait_idle(qtbot, widget)

    saved = tifffile.imread(tmp_path / "out" / LABELS_FILE)
    np.testing.assert_array_equal(saved, viewer.layers["examples"].data)
    record = json.loads((tmp_path / "out" / PROVENANCE_FILE).read_text())
    rows = {row["index"]: row for row in record["slices"]}
    assert record["mode"] == "stack" and record["n_slices"] == N_SLICES
    assert rows[EXAMPLE]["status"] == "example" and rows[EXAMPLE]["confidence"] is None
    assert rows[EXAMPLE + 1]["status"] == "accepted" and rows[EXAMPLE + 1]["backend"] == "counting"
    assert rows[EXAMPLE + 1]["weight"] == 0.2  # accepted without an edit: a weak example
    assert rows[EXAMPLE - 1]["status"] == "rejected"
    assert 0 < rows[EXAMPLE + 1]["confidence"] <= 1


def test_image_set_through_the_plugin_path(
    qtbot, make_napari_viewer, stack, test_backends, tmp_path
):
    _, truth, labels = stack
    viewer = make_napari_viewer()
    image = stack[0]
    names = ["first", "second", "third"]
    images = {"first": image[EXAMPLE], "second": image[EXAMPLE + 1]}
    images["third"] = image[EXAMPLE - 1, :40, :44]  # sizes may differ
    widget = run_image_set(qtbot, viewer, images, labels[EXAMPLE], tmp_path / "in")

    assert widget.workspace.is_set and len(widget.workspace) == 3  # the example is no target
    assert not any(layer.name == PROPOSALS for layer in viewer.layers)
    for name, z in zip(names[1:], (EXAMPLE + 1, EXAMPLE - 1), strict=True):
        proposal = viewer.layers[f"proposals [{name}]"]
        assert role(proposal) == PROPOSALS and proposal.contour > 0  # drawn as outlines
        assert proposal.data.shape == viewer.layers[name].data.shape
        assert set(np.unique(proposal.data)) == {0, 1, 2}  # both objects, ids kept
        inside = truth[z][: proposal.data.shape[0], : proposal.data.shape[1]]
        assert ((proposal.data != 0) & (inside != 0)).sum() > 0.5 * (inside != 0).sum()
    assert [widget.session.status(i) for i in range(3)] == ["example", "proposed", "proposed"]

    widget.review.next_image_button.click()  # the second image, on screen alone
    assert widget.current_index() == 1
    visible = {layer.name for layer in viewer.layers if layer.visible}
    assert visible == {"second", "proposals [second]", "labels [second]"}
    assert viewer.layers.selection.active.name == "labels [second]"  # paint corrections here
    widget.review.accept_button.click()  # acts on the image on screen
    accepted = viewer.layers["labels [second]"]
    np.testing.assert_array_equal(accepted.data, viewer.layers["proposals [second]"].data)
    assert widget.session.status(1) == "accepted" and widget.session.status(2) == "proposed"
    accepted.undo()
    assert not accepted.data.any()
    accepted.redo()
    widget.review.previous_button.click()
    widget.review.previous_button.click()  # wraps around to the third image
    assert widget.current_index() == 2
    assert {layer.name for layer in viewer.layers if layer.visible} >= {"third"}
    assert not viewer.layers["second"].visible

    widget.save(str(tmp_path / "out"))
    wait_idle(qtbot, widget)
    saved = {p.stem: iio.imread(p) for p in (tmp_path / "out" / "masks").glob("*.png")}
    assert sorted(saved) == sorted(names)  # one mask per image, named after it
    np.testing.assert_array_equal(saved["first"], labels[EXAMPLE])
    np.testing.assert_array_equal(saved["second"], accepted.data)
    assert not saved["third"].any() and saved["third"].shape == (40, 44)
    record = json.loads((tmp_path / "out" / PROVENANCE_FILE).read_text())
    assert [(r["name"], r["status"]) for r in record["slices"]] == [
        ("first", "example"),
        ("second", "accepted"),
        ("third", "proposed"),
    ]


def test_a_folder_of_mixed_sizes_gets_a_message_before_the_run(
    qtbot, make_napari_viewer, stack, test_backends, tmp_path, monkeypatch
):
    image, _, labels = stack
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i, shape in enumerate([(48, 48), (40, 44), (48, 48)]):
        iio.imwrite(
            folder / f"img{i}.png", (image[i][: shape[0], : shape[1]] // 256).astype(np.uint8)
        )
    viewer = make_napari_viewer()
    viewer.open(folder)  # napari stacks a dropped folder lazily, with the first image's shape
    viewer.add_labels(np.zeros(viewer.layers[0].data.shape, np.int32), name="examples")
    viewer.layers["examples"].data[1] = labels[EXAMPLE]
    messages = []
    monkeypatch.setattr("napari_incontext._workers.show_error", messages.append)
    widget = dock(viewer)
    choose_backend(widget, "counting")
    run_and_wait(qtbot, widget)
    assert len(messages) == 1 and "different sizes" in messages[0]
    assert "image set" in messages[0] and "Open Files" in messages[0]
    assert not any(role(layer) == PROPOSALS for layer in viewer.layers)  # nothing ran
