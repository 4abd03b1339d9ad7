"""Helpers shared by the GUI tests: dock the widget and open data as a person does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

N_SLICES, SIZE = 6, 48
EXAMPLE = N_SLICES // 2
PLUGIN, WIDGET = "napari-incontext", "In-context annotation"


def dock(viewer):
    """Dock the widget through napari's plugin path (napari hands it a proxy viewer)."""
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return widget


def open_stack(viewer, folder: Path, image: np.ndarray, labels: np.ndarray) -> None:
    """Write the stack and its labels as TIFFs and open them with ``viewer.open``."""
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "stack.tif", image)
    tifffile.imwrite(folder / "examples.tif", labels)
    viewer.open(folder / "stack.tif")
    viewer.open(folder / "examples.tif", layer_type="labels")


def choose_backend(widget, name: str) -> None:
    index = widget.controls.backend_combo.findData(name)
    assert index >= 0, f"backend {name} is not offered"
    widget.controls.backend_combo.setCurrentIndex(index)


def wait_idle(qtbot, widget, timeout: int = 60_000) -> None:
    """Wait until the widget's run, accept-all and file work are all finished."""
    qtbot.waitUntil(lambda: widget.idle, timeout=timeout)


def run_and_wait(qtbot, widget, timeout: int = 60_000) -> None:
    """Click Run and wait until the run finished (success, cancel or error)."""
    widget.controls.run_button.click()
    wait_idle(qtbot, widget, timeout)


def proposals(viewer):
    """The proposals layer (found by the plugin's metadata tag, as the widget does)."""
    from napari_incontext._layers import PROPOSALS, role

    found = [layer for layer in viewer.layers if role(layer) == PROPOSALS]
    assert len(found) == 1, f"expected one proposals layer, found {len(found)}"
    return found[0]


def run_image_set(qtbot, viewer, images: dict, example_labels, folder: Path):
    """Write 2D images (the first with ``example_labels``) as TIFFs into ``folder``, open
    them with ``viewer.open``, dock the widget with the counting backend, run; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        tifffile.imwrite(folder / f"{name}.tif", image)
    first = next(iter(images))
    tifffile.imwrite(folder / f"{first} labels.tif", example_labels)
    viewer.open([folder / f"{name}.tif" for name in images])
    viewer.open(folder / f"{first} labels.tif", layer_type="labels")
    widget = dock(viewer)
    choose_backend(widget, "counting")
    widget.controls.image_combo.setCurrentText(first)
    widget.controls.labels_combo.setCurrentText(f"{first} labels")
    run_and_wait(qtbot, widget)
    return widget
