"""Layers are tracked by identity through napari's plugin proxy; gone layers are refused."""

from __future__ import annotations

import numpy as np

from napari_incontext._layers import PROPOSALS, role
from tests.plugin.plugin_helpers import EXAMPLE, N_SLICES, choose_backend, run_and_wait, wait_idle


def test_the_widget_gets_a_proxy_and_still_finds_its_layers(qtbot, viewer_widget):
    from napari.utils._proxies import PublicOnlyProxy

    viewer, widget = viewer_widget
    assert isinstance(widget.viewer, PublicOnlyProxy)  # what napari hands a docked plugin
    assert widget.viewer.layers["stack"] is not widget.viewer.layers["stack"]  # new each time
    run_and_wait(qtbot, widget)
    assert [layer.name for layer in viewer.layers if role(layer) == PROPOSALS] == [PROPOSALS]
    assert widget.workspace.labels.get().unique_id == viewer.layers["examples"].unique_id


def test_deleting_the_labels_mid_run_stops_it_and_writes_nothing_more(
    qtbot, viewer_widget, monkeypatch
):
    viewer, widget = viewer_widget
    messages = []
    monkeypatch.setattr("napari_incontext._widget.show_error", messages.append)
    choose_backend(widget, "slow")
    widget.controls.run_button.click()
    qtbot.waitUntil(lambda: len(widget.session.slices) > 1, timeout=30_000)
    viewer.layers.remove("examples")
    wait_idle(qtbot, widget, 30_000)
    assert messages and "'examples' was deleted" in messages[0]
    assert widget.workspace is None  # no review bound to a layer that is gone
    written = [layer for layer in viewer.layers if role(layer) == PROPOSALS][0]
    filled = sum(written.data[i].any() for i in range(N_SLICES))
    assert filled < N_SLICES - 1  # the run stopped


def test_a_replaced_layer_of_the_same_name_is_never_written(qtbot, viewer_widget, stack):
    viewer, widget = viewer_widget
    run_and_wait(qtbot, widget)
    viewer.layers.remove("examples")
    replacement = viewer.add_labels(np.zeros_like(stack[2]), name="examples")
    widget.goto(EXAMPLE + 1)
    widget.review.accept_button.click()
    widget.review.accept_all_button.click()
    wait_idle(qtbot, widget)
    assert not replacement.data.any()  # the proposals of the old layer are not accepted here
    assert widget.session.status(EXAMPLE + 1) is None  # a fresh review for the new layer
