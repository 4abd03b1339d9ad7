"""`python -m napari_incontext`: open napari with the sample stack and the widget docked."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import napari

    from napari_incontext._widget import InContextWidget

PLUGIN = "napari-incontext"
WIDGET = "In-context annotation"
SAMPLE = "synthetic_stack"


def open_demo(viewer: napari.Viewer) -> InContextWidget:
    """Load the sample through the plugin's contributions and dock the widget."""
    viewer.open_sample(PLUGIN, SAMPLE)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return widget


def main() -> None:
    import napari

    viewer = napari.Viewer(title="napari-incontext demo")
    open_demo(viewer)
    napari.run()


if __name__ == "__main__":
    main()
