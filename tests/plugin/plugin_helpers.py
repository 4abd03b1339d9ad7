"""Helpers shared by the GUI tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

N_SLICES, SIZE = 6, 48
EXAMPLE = N_SLICES // 2


def choose_backend(widget, name: str) -> None:
    index = widget.backend_combo.findData(name)
    assert index >= 0, f"backend {name} is not offered"
    widget.backend_combo.setCurrentIndex(index)


def run_and_wait(qtbot, widget, timeout: int = 60_000) -> None:
    """Click Run and wait until the run finished (success, cancel or error)."""
    widget.run_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def make_widget(qtbot, viewer):
    """Dock a new widget on the viewer."""
    from napari_incontext._widget import InContextWidget

    widget = InContextWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def run_image_set(qtbot, viewer, images: dict, example_labels):
    """Add 2D image layers (the first holds ``example_labels``), dock the widget with the
    counting backend, run, and return the widget."""
    for name, image in images.items():
        viewer.add_image(image, name=name)
    first = next(iter(images))
    viewer.add_labels(example_labels.copy(), name=f"{first} labels")
    widget = make_widget(qtbot, viewer)
    choose_backend(widget, "counting")
    widget.image_combo.setCurrentText(first)
    widget.labels_combo.setCurrentText(f"{first} labels")
    run_and_wait(qtbot, widget)
    return widget
