"""A big stack's proposals and confidence layers live in a zarr array on disk, one chunk
per slice, in a folder the plugin made and deletes when the layers leave the viewer; the
proposals, Accept, undo and saving are those of the in-memory layers."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_incontext import _backing
from napari_incontext._layers import CONFIDENCE, role
from src_models import weights
from src_models.sample_data import example_labels, synthetic_stack
from tests.plugin.plugin_helpers import (
    EXAMPLE,
    N_SLICES,
    SIZE,
    choose_backend,
    dock,
    open_stack,
    proposals,
    run_and_wait,
)

TARGET = EXAMPLE + 1


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user cache dir moved into the test's folder; returns the layers' root."""
    monkeypatch.setattr(weights, "cache_dir", lambda: tmp_path / "cache" / "weights")
    return tmp_path / "cache" / "layers"


@pytest.fixture
def main_reads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The selections read from any zarr array on the main (GUI) thread."""
    reads: list[object] = []
    original = zarr.Array.__getitem__

    def recording(self, selection):
        if threading.current_thread() is threading.main_thread():
            reads.append(selection)
        return original(self, selection)

    monkeypatch.setattr(zarr.Array, "__getitem__", recording)
    return reads


def _slices_read(selection: object) -> int:
    first = selection[0] if isinstance(selection, tuple) else selection
    return len(range(N_SLICES)[first]) if isinstance(first, slice) else 1


def _run(qtbot, viewer, folder: Path):
    image, truth = synthetic_stack(N_SLICES, SIZE, seed=1)
    open_stack(viewer, folder, image, example_labels(truth, EXAMPLE))
    widget = dock(viewer)
    choose_backend(widget, "counting")
    widget.review.confidence_check.setChecked(True)
    viewer.dims.set_current_step(0, TARGET)  # on screen while it is written
    run_and_wait(qtbot, widget)
    return widget


def _generated(viewer) -> list:
    return [layer for layer in viewer.layers if role(layer)]


def test_a_big_stacks_proposals_are_on_disk_and_equal_the_in_memory_ones(
    qtbot, make_napari_viewer, test_backends, cache, main_reads, tmp_path, monkeypatch
):
    small = make_napari_viewer()
    _run(qtbot, small, tmp_path / "small")
    expected = {role(layer): np.array(layer.data) for layer in _generated(small)}
    assert all(isinstance(layer.data, np.ndarray) for layer in _generated(small))
    assert expected[CONFIDENCE].any() and not cache.exists()

    monkeypatch.setattr(_backing, "LAZY_BYTES", 0)
    viewer = make_napari_viewer()
    user = tmp_path / "user"
    widget = _run(qtbot, viewer, user)
    assert main_reads and all(_slices_read(s) == 1 for s in main_reads)  # never the stack
    user_files = {p: p.read_bytes() for p in user.iterdir()}
    folders = sorted(cache.iterdir())
    assert len(folders) == 2  # proposals and confidence, one folder each
    for layer in _generated(viewer):
        assert isinstance(layer.data, zarr.Array) and layer.data.chunks == (1, SIZE, SIZE)
        np.testing.assert_array_equal(np.asarray(layer.data[:]), expected[role(layer)])
        shown = np.asarray(layer._slice.image.raw)  # what napari displays: refreshed
        np.testing.assert_array_equal(shown, expected[role(layer)][TARGET])
    main_reads.clear()  # (the test's own reads above)

    labels = viewer.layers["examples"]
    before = np.array(labels.data)
    widget.goto(TARGET)
    widget.review.accept_button.click()
    np.testing.assert_array_equal(labels.data[TARGET], proposals(viewer).data[TARGET])
    assert labels.data[TARGET].any() and widget.session.status(TARGET) == "accepted"
    labels.undo()
    np.testing.assert_array_equal(labels.data, before)
    assert main_reads and all(_slices_read(s) == 1 for s in main_reads)

    viewer.close()
    assert not any(f.exists() for f in folders)  # the plugin's folders are deleted
    assert {p: p.read_bytes() for p in user.iterdir()} == user_files  # the user's are not


def test_removing_the_layers_deletes_only_the_plugins_folders(
    qtbot, make_napari_viewer, test_backends, cache, tmp_path, monkeypatch
):
    monkeypatch.setattr(_backing, "LAZY_BYTES", 0)
    viewer = make_napari_viewer()
    widget = _run(qtbot, viewer, tmp_path / "user")
    mine = cache / "layer-mine"  # a folder in the same place that the plugin did not make
    (mine / "c").mkdir(parents=True)
    (mine / "zarr.json").write_text("{}")
    layer = proposals(viewer)
    folder = _backing.backing_folder(layer.data)
    assert folder is not None and folder.parent == cache.resolve()

    saved = layer.save(str(tmp_path / "proposals.tif"), plugin="napari-incontext")
    np.testing.assert_array_equal(tifffile.imread(saved[0]), layer.data[:])

    widget.close()  # the widget's × keeps the layers (and their review) in the viewer
    assert folder.is_dir()
    viewer.layers.remove(layer)
    assert not folder.exists()
    _backing.release(mine)
    _backing.release_all()  # what runs at exit
    assert (mine / "zarr.json").read_text() == "{}" and (mine / "c").is_dir()
    assert not [p for p in cache.iterdir() if p != mine]


def test_accept_into_a_zarr_backed_labels_layer(
    qtbot, make_napari_viewer, test_backends, cache, tmp_path
):
    image, truth = synthetic_stack(N_SLICES, SIZE, seed=1)
    store = tmp_path / "labels.zarr"
    lazy = zarr.create_array(
        str(store), shape=truth.shape, dtype=np.uint32, chunks=(1, SIZE, SIZE), fill_value=0
    )
    lazy[:] = example_labels(truth, EXAMPLE)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="stack")
    labels = viewer.add_labels(zarr.open_array(str(store), mode="r+"), name="examples")
    widget = dock(viewer)
    choose_backend(widget, "counting")
    run_and_wait(qtbot, widget)
    proposal = np.array(proposals(viewer).data[TARGET])
    assert proposal.any()

    widget.goto(TARGET)
    widget.review.accept_button.click()
    np.testing.assert_array_equal(zarr.open_array(str(store))[TARGET], proposal)  # on disk
    labels.undo()
    assert not zarr.open_array(str(store))[TARGET].any()
    viewer.close()
    assert zarr.open_array(str(store))[EXAMPLE].any()  # the user's store is kept


def test_a_full_disk_stops_the_run_with_a_message(
    qtbot, make_napari_viewer, test_backends, cache, tmp_path, monkeypatch
):
    monkeypatch.setattr(_backing, "LAZY_BYTES", 0)
    errors: list[str] = []
    monkeypatch.setattr("napari_incontext._widget.show_error", errors.append)

    def full(self, selection, value):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zarr.Array, "__setitem__", full)
    viewer = make_napari_viewer()
    widget = _run(qtbot, viewer, tmp_path / "user")
    assert len(errors) == 1 and "No space left" in errors[0] and str(cache) in errors[0]
    assert not widget.runner.busy and not widget.session.has_proposal(TARGET)
    assert not widget.session.resume.get("done")  # nothing written: all proposed again
