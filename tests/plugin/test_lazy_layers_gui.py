"""napari's lazy (dask) and multiscale image layers run from the widget without being read
whole on the main thread, and give the proposals of the same data in memory."""

from __future__ import annotations

import threading

import numpy as np

from src_models.sample_data import example_labels, synthetic_stack
from tests.plugin.plugin_helpers import (
    EXAMPLE,
    N_SLICES,
    SIZE,
    choose_backend,
    dock,
    proposals,
    run_and_wait,
)


class Recording:
    """A (N, Y, X) array that records which slices each thread reads."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim
        self.main: set[int] = set()  # slices read on the main (GUI) thread
        self.other: set[int] = set()

    def __getitem__(self, key):
        first = key[0] if isinstance(key, tuple) else key
        read = set(range(N_SLICES)[first]) if isinstance(first, slice) else {int(first)}
        is_main = threading.current_thread() is threading.main_thread()
        (self.main if is_main else self.other).update(read)
        return self.array[key]


def _run(qtbot, viewer, data, labels, **kw) -> np.ndarray:
    viewer.add_image(data, name="image", **kw)
    viewer.add_labels(labels, name="examples")
    widget = dock(viewer)
    choose_backend(widget, "counting")
    widget.controls.image_combo.setCurrentText("image")
    widget.controls.labels_combo.setCurrentText("examples")
    replaced = []  # whole-data assignments to a layer added during the run

    def watch(event) -> None:
        event.value.events.data.connect(lambda e: replaced.append(event.value.name))

    viewer.layers.events.inserted.connect(watch)
    run_and_wait(qtbot, widget)
    layer = proposals(viewer)
    assert layer.name not in replaced  # each slice written in place, never a new stack
    return np.array(layer.data)


def test_dask_and_multiscale_layers_give_the_in_memory_proposals(
    qtbot, make_napari_viewer, test_backends
):
    import dask.array as da

    image, truth = synthetic_stack(N_SLICES, SIZE, seed=1)
    labels = example_labels(truth, EXAMPLE)
    expected = _run(qtbot, make_napari_viewer(), image, labels)
    assert expected[[i for i in range(N_SLICES) if i != EXAMPLE]].any()

    source = Recording(image)
    lazy = da.from_array(source, chunks=(1, SIZE, SIZE), asarray=False)
    np.testing.assert_array_equal(_run(qtbot, make_napari_viewer(), lazy, labels), expected)
    assert source.other == set(range(N_SLICES))  # the worker read every slice
    assert len(source.main) < N_SLICES  # the GUI thread only what napari displays

    levels = [Recording(image), Recording(image[:, ::2, ::2].copy())]
    pyramid = [
        da.from_array(level, chunks=(1, *level.shape[1:]), asarray=False) for level in levels
    ]
    got = _run(qtbot, make_napari_viewer(), pyramid, labels, multiscale=True)
    np.testing.assert_array_equal(got, expected)  # level 0 at full resolution
    assert levels[0].other == set(range(N_SLICES)) and len(levels[0].main) < N_SLICES
    # (napari's own slicing thread reads the lower level for display, so it is not checked)
