"""A napari channel group (viewer.add_image(..., channel_axis=1)) used as one multichannel
stack from the widget."""

from __future__ import annotations

import numpy as np
import tifffile

from src_models.sample_data import example_labels, synthetic_stack
from tests.helpers import iou
from tests.plugin.plugin_helpers import (
    EXAMPLE,
    N_SLICES,
    SIZE,
    choose_backend,
    dock,
    proposals,
    run_and_wait,
)


def test_all_channels_of_a_group(qtbot, make_napari_viewer, test_backends):
    image, truth = synthetic_stack(N_SLICES, SIZE, seed=1)
    noise = np.random.default_rng(2).integers(0, 4000, image.shape, dtype=np.uint16)
    viewer = make_napari_viewer()
    layers = viewer.add_image(np.stack([noise, image], axis=1), channel_axis=1, name=["a", "b"])
    assert len(layers) == 2  # napari made one layer per channel
    viewer.add_labels(example_labels(truth, EXAMPLE), name="examples")
    widget = dock(viewer)
    choose_backend(widget, "counting")
    widget.controls.image_combo.setCurrentText("a")  # the noise channel alone shows nothing
    widget.controls.labels_combo.setCurrentText("examples")
    others = [i for i in range(N_SLICES) if i != EXAMPLE]

    run_and_wait(qtbot, widget)
    alone = proposals(viewer).data.copy()
    assert np.mean([iou(alone[i] == 1, truth[i] == 1) for i in others]) < 0.5

    statuses = []
    widget.runner.on_status = statuses.append
    widget.controls.channels_check.setChecked(True)
    run_and_wait(qtbot, widget)
    data = proposals(viewer).data
    assert np.mean([iou(data[i] == 1, truth[i] == 1) for i in others]) > 0.8
    assert any("on 2 channels (a, b)" in line for line in statuses), statuses


def test_one_channel_last_layer_opened_from_a_file(
    qtbot, make_napari_viewer, test_backends, tmp_path
):
    image, truth = synthetic_stack(N_SLICES, SIZE, seed=1)
    noise = np.random.default_rng(2).integers(0, 4000, image.shape, dtype=np.uint16)
    tifffile.imwrite(tmp_path / "both.tif", np.stack([noise, image], axis=-1))  # (Z, Y, X, 2)
    viewer = make_napari_viewer()
    viewer.open(tmp_path / "both.tif")
    assert viewer.layers["both"].data.shape == (N_SLICES, SIZE, SIZE, 2)
    assert not viewer.layers["both"].rgb
    viewer.add_labels(example_labels(truth, EXAMPLE), name="examples")
    widget = dock(viewer)
    choose_backend(widget, "counting")
    widget.controls.image_combo.setCurrentText("both")
    widget.controls.labels_combo.setCurrentText("examples")
    assert widget.workspace is not None and widget.workspace.channels == 2
    statuses = []
    widget.runner.on_status = statuses.append

    run_and_wait(qtbot, widget)
    data = proposals(viewer).data
    assert data.shape == truth.shape  # one proposal per slice, channels gone
    others = [i for i in range(N_SLICES) if i != EXAMPLE]
    assert np.mean([iou(data[i] == 1, truth[i] == 1) for i in others]) > 0.8  # noise + image
    assert any("on 2 channels (the last axis of 'both')" in line for line in statuses), statuses


def test_2d_channel_last_images_form_an_image_set(qtbot, make_napari_viewer, test_backends):
    image, truth = synthetic_stack(2, SIZE, seed=3)
    noise = np.random.default_rng(4).integers(0, 4000, image.shape, dtype=np.uint16)
    viewer = make_napari_viewer()
    for i, name in enumerate(["first", "second"]):
        viewer.add_image(np.stack([noise[i], image[i]], axis=-1), name=name)
    viewer.add_labels(example_labels(truth[:1], 0)[0], name="examples")
    widget = dock(viewer)
    choose_backend(widget, "counting")
    widget.controls.image_combo.setCurrentText("first")
    widget.controls.labels_combo.setCurrentText("examples")
    assert widget.workspace.is_set and widget.workspace.channels == 2
    assert [ref.name for ref in widget.workspace.targets] == ["second"]

    run_and_wait(qtbot, widget)
    second = next(layer for layer in viewer.layers if layer.name == "proposals [second]")
    assert second.data.shape == (SIZE, SIZE)
    assert iou(second.data == 1, truth[1] == 1) > 0.8
