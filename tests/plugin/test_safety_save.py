"""Safety suite, napari side: the widget's Save and the npe2 writer never replace a file they
did not write; Save asks before replacing its own earlier save; napari's own save path
(``layer.save`` / ``viewer.layers.save``) goes through the writer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from imageio import v3 as iio
from qtpy.QtWidgets import QMessageBox

from napari_incontext._save import LABELS_FILE, MASKS_FOLDER, PROVENANCE_FILE
from src_models.atomic import MANIFEST
from src_models.outputs import file_problem, folder_problem
from tests.plugin.plugin_helpers import (
    EXAMPLE,
    choose_backend,
    dock,
    open_stack,
    run_and_wait,
    run_image_set,
    wait_idle,
)
from tests.safety_helpers import snapshot

Button = QMessageBox.StandardButton  # scoped enums: PyQt6 has no QMessageBox.Yes


@pytest.fixture
def ran(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    return viewer, widget


def _answer(monkeypatch: pytest.MonkeyPatch, button: int) -> list[str]:
    asked: list[str] = []

    def question(parent, title, text, *args):  # type: ignore[no-untyped-def]
        asked.append(text)
        return button

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    return asked


def test_save_keeps_a_users_labels_tif_and_writes_beside_it(qtbot, ran, tmp_path) -> None:
    viewer, widget = ran
    truth = np.full((6, 48, 48), 5, np.uint16)
    tifffile.imwrite(tmp_path / LABELS_FILE, truth)  # e.g. the ground truth of a dataset
    (tmp_path / PROVENANCE_FILE).write_text('{"mine": true}')
    before = snapshot(tmp_path)
    widget.save(str(tmp_path))
    wait_idle(qtbot, widget)
    after = snapshot(tmp_path)
    assert all(after[k] == v for k, v in before.items())  # every user file intact
    saved = tifffile.imread(tmp_path / "labels-2.tif")
    np.testing.assert_array_equal(saved, viewer.layers["examples"].data)
    record = json.loads((tmp_path / "provenance-2.json").read_text())
    assert record["labels"] == "labels-2.tif" and record["written_by"] == "napari-incontext"


def test_save_keeps_a_users_masks_folder(qtbot, make_napari_viewer, stack, test_backends, tmp_path):
    image, _, labels = stack
    images = {"first": image[EXAMPLE], "second": image[EXAMPLE + 1]}
    widget = run_image_set(qtbot, make_napari_viewer(), images, labels[EXAMPLE], tmp_path / "in")
    (tmp_path / MASKS_FOLDER).mkdir()
    iio.imwrite(tmp_path / MASKS_FOLDER / "first.png", np.ones((48, 48), np.uint8))
    before = snapshot(tmp_path)
    widget.save(str(tmp_path))
    wait_idle(qtbot, widget)
    after = snapshot(tmp_path)
    assert all(after[k] == v for k, v in before.items())
    written = sorted(p.name for p in (tmp_path / "masks-2").iterdir())
    assert written == [MANIFEST, "first.png", "second.png"]
    np.testing.assert_array_equal(iio.imread(tmp_path / "masks-2" / "first.png"), labels[EXAMPLE])


@pytest.mark.parametrize(
    ("button", "expect"),
    [(Button.Yes, "replaced"), (Button.No, "beside"), (Button.Cancel, "nothing")],
)
def test_a_second_save_asks_before_replacing_the_first(
    qtbot, ran, tmp_path, monkeypatch, button, expect
) -> None:
    viewer, widget = ran
    asked = _answer(monkeypatch, Button.Yes)
    widget.save(str(tmp_path))
    wait_idle(qtbot, widget)
    assert asked == []  # nothing to replace the first time
    first = snapshot(tmp_path)
    widget.accept([EXAMPLE + 1])
    asked = _answer(monkeypatch, button)
    widget.save(str(tmp_path))
    wait_idle(qtbot, widget)
    assert len(asked) == 1 and LABELS_FILE in asked[0]
    now = snapshot(tmp_path)
    if expect == "replaced":
        assert set(now) == set(first) and now[LABELS_FILE] != first[LABELS_FILE]
        assert file_problem(tmp_path / LABELS_FILE) is None
    elif expect == "beside":
        assert all(now[k] == v for k, v in first.items()) and "labels-2.tif" in now
    else:
        assert now == first


def test_save_into_a_file_is_an_error_that_writes_nothing(
    qtbot, ran, tmp_path, monkeypatch
) -> None:
    viewer, widget = ran
    errors: list[str] = []
    monkeypatch.setattr("napari_incontext._widget.show_error", errors.append)
    target = tmp_path / "a_file"
    target.write_text("mine")
    before = snapshot(tmp_path)
    widget.save(str(target))
    wait_idle(qtbot, widget)
    assert errors and "is a file" in errors[0] and snapshot(tmp_path) == before


def test_an_edited_earlier_save_is_not_ours_any_more(qtbot, ran, tmp_path, monkeypatch) -> None:
    viewer, widget = ran
    _answer(monkeypatch, Button.Yes)
    widget.save(str(tmp_path))
    wait_idle(qtbot, widget)
    data = tifffile.imread(tmp_path / LABELS_FILE)
    data[0, 0, 0] = 9
    with tifffile.TiffFile(tmp_path / LABELS_FILE) as tif:
        description = tif.pages[0].description
    tifffile.imwrite(tmp_path / LABELS_FILE, data, metadata=None, description=description)
    before = snapshot(tmp_path)
    asked = _answer(monkeypatch, Button.Yes)
    widget.save(str(tmp_path))
    wait_idle(qtbot, widget)
    assert asked == []  # nothing of ours to replace: the edited file is kept, no question
    after = snapshot(tmp_path)
    assert after[LABELS_FILE] == before[LABELS_FILE] and "labels-2.tif" in after


# --------------------------------------------------------------------------- the npe2 writer
def test_napari_save_goes_through_the_writer_and_keeps_user_files(
    make_napari_viewer, tmp_path, monkeypatch
) -> None:
    import napari.utils.notifications

    warned: list[str] = []
    monkeypatch.setattr(napari.utils.notifications, "show_warning", warned.append)
    viewer = make_napari_viewer()
    data = np.zeros((2, 20, 20), np.uint64)
    data[0, 3:9, 3:9] = 2**63 + 7
    layer = viewer.add_labels(data, name="mine")
    theirs = tmp_path / "gt.tif"
    tifffile.imwrite(theirs, np.ones((4, 4), np.uint8))
    (tmp_path / "folder.tif").mkdir()
    before = snapshot(tmp_path)

    written = layer.save(str(tmp_path / "new.tif"), plugin="napari-incontext")
    assert written == [str(tmp_path / "new.tif")] and file_problem(tmp_path / "new.tif") is None
    stored = tifffile.imread(tmp_path / "new.tif")
    assert stored.dtype == np.uint64 and stored.max() == 2**63 + 7  # ids never wrapped

    kept = layer.save(str(theirs), plugin="napari-incontext")
    assert kept == [str(tmp_path / "gt-2.tif")]
    assert len(warned) == 1 and "was kept" in warned[0] and "gt-2.tif" in warned[0]
    assert layer.save(str(tmp_path / "folder.tif"), plugin="napari-incontext") == [
        str(tmp_path / "folder-2.tif")
    ]
    after = snapshot(tmp_path)
    assert all(after[k] == v for k, v in before.items())

    layer.data[1, 0, 0] = 1
    viewer.layers.selection = {layer}
    again = viewer.layers.save(str(tmp_path / "new.tif"), selected=True, plugin="napari-incontext")
    assert again == [str(tmp_path / "new.tif")]  # our own file: replaced in place
    assert tifffile.imread(tmp_path / "new.tif")[1, 0, 0] == 1
    assert not [p for p in tmp_path.iterdir() if ".incontext-" in p.name]


def test_the_manifest_declares_the_labels_writer() -> None:
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-incontext")
    (writer,) = manifest.contributions.writers
    assert writer.layer_types == ["labels"] and ".tif" in writer.filename_extensions


def test_folder_outputs_carry_a_manifest_of_every_file(tmp_path) -> None:
    from src_models.io import write_labels

    out = write_labels(tmp_path / "m", [np.eye(4, dtype=np.uint8)], ["x"])
    record = json.loads((out / MANIFEST).read_text())
    assert record["written_by"] == "napari-incontext" and set(record["files"]) == {"x.png"}
    assert folder_problem(out) is None


def test_uint64_ids_survive_run_accept_and_save(
    qtbot, make_napari_viewer, stack, test_backends, tmp_path
):
    """Ids above int32 are never wrapped on the napari side either."""
    image, _, labels = stack
    big = np.where(labels == 1, 2**63 + 5, np.where(labels == 2, 3_000_000_000, 0))
    viewer = make_napari_viewer()
    open_stack(viewer, tmp_path / "in", image, big.astype(np.uint64))
    widget = dock(viewer)
    choose_backend(widget, "counting")
    run_and_wait(qtbot, widget)
    proposal = viewer.layers["proposals"].data[EXAMPLE + 1]
    assert set(np.unique(proposal)) == {0, 2**63 + 5, 3_000_000_000}
    widget.accept([EXAMPLE + 1])
    accepted = viewer.layers["examples"].data[EXAMPLE + 1]
    assert set(np.unique(accepted)) == {0, 2**63 + 5, 3_000_000_000}
    widget.save(str(tmp_path))
    wait_idle(qtbot, widget)
    saved = tifffile.imread(tmp_path / LABELS_FILE)
    assert saved.dtype == np.uint64 and (saved == 2**63 + 5).any()


def test_proposal_ids_keep_uint64_ids_above_int64() -> None:
    from napari_incontext._accepting import proposal_ids

    big = 2**63 + 5
    proposal = np.array([[0, big], [3, 3]], dtype=np.uint64)
    assert proposal_ids(proposal) == [3, big]
