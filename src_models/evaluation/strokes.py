"""Scribbles made from ground truth, for tests and the scribble benchmark.

Each class is eroded (so strokes stay inside it), skeletonised, and its longest skeleton
pieces are kept: a few thin strokes per class, as a person scribbling in ilastik or
convpaint would paint them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

MIN_SKELETON = 10
"""A class whose skeleton has fewer pixels is traced along the rim of its eroded mask."""


def class_strokes(mask: np.ndarray, strokes: int, erosion: int, max_length: int) -> np.ndarray:
    """(H, W) bool: up to ``strokes`` skeleton pieces of ``mask``, at most ``max_length``
    pixels each (erosion is skipped where it would erase the class, e.g. thin membranes;
    a blob whose skeleton is a dot is traced along its eroded rim instead)."""
    from skimage.morphology import skeletonize

    eroded = ndi.binary_erosion(mask, iterations=erosion) if erosion > 0 else mask
    eroded = eroded if eroded.any() else mask
    skeleton = skeletonize(eroded)
    if skeleton.sum() < MIN_SKELETON:  # a round blob's skeleton is a dot: trace its rim
        skeleton = eroded & ~ndi.binary_erosion(eroded)
    pieces, n = ndi.label(skeleton, structure=np.ones((3, 3)))
    if n == 0:
        return skeleton
    sizes = np.bincount(pieces.ravel())[1:]
    out = np.zeros_like(skeleton)
    for piece in np.argsort(-sizes)[:strokes] + 1:
        ys, xs = np.nonzero(pieces == piece)
        order = np.lexsort((xs, ys))[:max_length]  # a run of the piece, not scattered pixels
        out[ys[order], xs[order]] = True
    return out


def strokes_from_truth(
    truth: np.ndarray,
    background_id: int,
    strokes: int = 3,
    erosion: int = 2,
    max_length: int = 200,
) -> np.ndarray:
    """Scribbles of one (H, W) ground-truth slice: background (0) painted as
    ``background_id``, object k painted as k, everything else 0 (unpainted).

    Raises:
        ValueError: ``background_id`` is also an object id of ``truth``.
    """
    ids = [int(k) for k in np.unique(truth) if k != 0]
    if background_id in ids:
        raise ValueError(f"background id {background_id} is an object of the truth: pick another")
    out = np.zeros(truth.shape, np.int32)
    for k in [0, *ids]:
        out[class_strokes(truth == k, strokes, erosion, max_length)] = k or background_id
    return out
