"""Pure numpy/torch core of napari-incontext: backends, heads, matching, engine, weights.

Never imports napari, Qt or magicgui.
"""

from src_models.cache import FeatureCache
from src_models.engine import propagate
from src_models.registry import BACKENDS, build_backend, list_backends
from src_models.types import Example, SliceResult

__all__ = [
    "BACKENDS",
    "Example",
    "FeatureCache",
    "SliceResult",
    "build_backend",
    "list_backends",
    "propagate",
]
