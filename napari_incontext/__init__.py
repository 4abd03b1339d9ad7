"""napari side of napari-incontext: widgets, layers and workers on top of ``src_models``."""

__version__ = "0.1.0"
