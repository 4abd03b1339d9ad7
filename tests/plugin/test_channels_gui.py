"""A napari channel group (viewer.add_image(..., channel_axis=1)) used as one multichannel
stack from the widget."""

from __future__ import annotations

import numpy as np

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
