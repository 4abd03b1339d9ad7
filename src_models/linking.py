"""Linking proposals along a stack: keep only what touches the neighbouring slice's objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage as ndi


def default_radius(shape: tuple[int, int]) -> int:
    """How far (pixels) an object may move between neighbouring slices: 3% of the larger side."""
    return max(2, round(0.03 * max(shape)))


def neighbour_toward_examples(index: int, examples: Sequence[int]) -> int:
    """The slice next to ``index`` on the way to its nearest example (ties: the lower one)."""
    nearest = min(examples, key=lambda e: (abs(e - index), e))
    return index - int(np.sign(index - nearest))


def keep_linked(
    labels: np.ndarray, confidence: np.ndarray, reference: np.ndarray, radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per id, keep the connected components that overlap that id in ``reference``, dilated.

    Look-alikes that appear away from the object (another cell, a bright artefact) are
    dropped, and an object that ended on the neighbouring slice is not invented again.

    Args:
        labels: (H, W) int32 proposal.
        confidence: (H, W) float32 confidence of the proposal.
        reference: (H, W) int labels of the neighbouring slice (an example or a proposal).
        radius: dilation of the reference, in pixels.

    Returns:
        The filtered labels and confidence; a removed pixel becomes 0 with confidence
        1 − its old confidence (the two-class complement).
    """
    import cv2
    from skimage.morphology import disk

    out, conf = labels.copy(), confidence.copy()
    footprint = disk(radius).astype(np.uint8)
    for k in np.unique(labels[labels != 0]):
        # OpenCV's dilation: scipy's binary_dilation with this disk cost 10× more
        grown = cv2.dilate((reference == k).astype(np.uint8), footprint).astype(bool)
        parts, count = ndi.label(labels == k)
        touching = np.unique(parts[grown & (parts > 0)])
        drop = (parts > 0) & ~np.isin(parts, touching)
        out[drop] = 0
        conf[drop] = 1.0 - conf[drop]
    return out, conf


def link_to_neighbour(
    index: int,
    labels: np.ndarray,
    confidence: np.ndarray,
    done: Mapping[int, np.ndarray],
    examples: Sequence[int],
    radius: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Filter a proposal against its neighbour toward the examples, when that one is known."""
    reference = done.get(neighbour_toward_examples(index, examples))
    if reference is None or reference.shape != labels.shape:
        return labels, confidence
    return keep_linked(labels, confidence, reference, radius or default_radius(labels.shape))
