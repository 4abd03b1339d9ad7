"""Sample data contribution: a generated stack that needs no download."""

from __future__ import annotations

from typing import Any

from src_models.sample_data import example_labels, synthetic_stack


def make_sample_stack() -> list[tuple[Any, dict[str, Any], str]]:
    """A 12-slice 16-bit stack with two objects, and labels on its middle slice only.

    Returns napari layer data tuples: an image layer and a labels layer ("examples").
    """
    image, truth = synthetic_stack()
    labels = example_labels(truth)
    return [
        (image, {"name": "synthetic stack"}, "image"),
        (labels, {"name": "examples", "opacity": 0.6}, "labels"),
    ]
