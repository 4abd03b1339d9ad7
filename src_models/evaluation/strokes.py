"""Scribbles made from ground truth, for tests and the scribble benchmark.

Each class is eroded (so strokes stay inside it) and skeletonised; strokes are walks along
that skeleton, at most ``max_length`` pixels each, as a person scribbling in ilastik or
convpaint would paint them: each stroke starts in the longest skeleton piece without a stroke
(separate objects get one each first; then the piece with the most unpainted pixels), at the
unpainted end farthest from the strokes so far (so a large connected class, such as a video's
background, gets several strokes spread over it rather than one), and follows the skeleton's
longest route from there.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from scipy import ndimage as ndi

MIN_SKELETON = 10
"""A class whose skeleton has fewer pixels is traced along the rim of its eroded mask."""
EIGHT = np.ones((3, 3), bool)
STEPS = [(-1, 0), (0, -1), (0, 1), (1, 0), (-1, -1), (-1, 1), (1, -1), (1, 1)]


def class_strokes(mask: np.ndarray, strokes: int, erosion: int, max_length: int) -> np.ndarray:
    """(H, W) bool: up to ``strokes`` walks along the skeleton of ``mask``, at most
    ``max_length`` pixels each (erosion is skipped where it would erase the class, e.g. thin
    membranes; a blob whose skeleton is a dot is traced along its eroded rim instead)."""
    from skimage.morphology import skeletonize

    eroded = ndi.binary_erosion(mask, iterations=erosion) if erosion > 0 else mask
    eroded = eroded if eroded.any() else mask
    skeleton = skeletonize(eroded)
    if skeleton.sum() < MIN_SKELETON:  # a round blob's skeleton is a dot: trace its rim
        skeleton = eroded & ~ndi.binary_erosion(eroded)
    pieces, _ = ndi.label(skeleton, structure=EIGHT)
    out = np.zeros_like(skeleton)
    for _ in range(strokes):
        left = skeleton & ~out
        if not left.any():
            break
        piece = pieces == _next_piece(pieces, left, out)
        start = _farthest_end(left & piece, out)
        _walk(left & piece, start, max_length, out)
    return out


def _next_piece(pieces: np.ndarray, left: np.ndarray, painted: np.ndarray) -> int:
    """The piece the next stroke goes in: the longest one without a stroke yet (of at least
    MIN_SKELETON pixels), else the one with the most unpainted pixels."""
    unpainted = np.bincount(pieces[left], minlength=pieces.max() + 1)
    fresh = np.where(unpainted >= MIN_SKELETON, unpainted, 0)
    fresh[np.unique(pieces[painted])] = 0
    return int(np.argmax(fresh if fresh[1:].any() else unpainted))


def _farthest_end(free: np.ndarray, painted: np.ndarray) -> tuple[int, int]:
    """An end of the unpainted skeleton ``free`` (a pixel with at most one free neighbour;
    any pixel on a loop), the one farthest from ``painted`` (the first in row order when
    nothing is painted yet)."""
    neighbours = ndi.convolve(free.astype(np.int32), EIGHT.astype(np.int32), mode="constant")
    ends = free & (neighbours <= 2)
    ys, xs = np.nonzero(ends if ends.any() else free)
    if not painted.any():
        return int(ys[0]), int(xs[0])
    far = ndi.distance_transform_edt(~painted)[ys, xs]
    best = int(np.argmax(far))
    return int(ys[best]), int(xs[best])


def _walk(free: np.ndarray, start: tuple[int, int], length: int, out: np.ndarray) -> None:
    """Paint into ``out`` the first ``length`` pixels of the longest route through ``free``
    from ``start``: the path to the pixel farthest from it along the skeleton (breadth-first
    search), so a stroke follows the skeleton's main line, not a short spur."""
    height, width = free.shape
    parent = {start: start}
    queue, last = deque([start]), start
    while queue:
        last = y, x = queue.popleft()
        for dy, dx in STEPS:
            step = (y + dy, x + dx)
            inside = 0 <= step[0] < height and 0 <= step[1] < width
            if inside and free[step] and step not in parent:
                parent[step] = last
                queue.append(step)
    path = [last]
    while path[-1] != start:
        path.append(parent[path[-1]])
    for y, x in path[::-1][:length]:
        out[y, x] = True


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
