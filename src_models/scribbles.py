"""What unpainted pixels mean: dense masks ("background") or sparse strokes ("unlabelled").

In dense mode (the default) every pixel of an example slice counts: 0 is the background
class, the negatives of every backend. In scribble mode, the way convpaint and ilastik users
paint, only the strokes count: the label ``background_id`` is the background class (the
backends see it as 0) and unpainted pixels become :data:`UNKNOWN` (-1), which no backend
trains on: classic samples painted pixels only, the matching heads take patches (and
negatives) only where something is painted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Unpainted = Literal["background", "unlabelled"]
UNPAINTED: tuple[Unpainted, ...] = ("background", "unlabelled")

UNKNOWN = -1
"""Compact label of a pixel nobody painted in scribble mode (never a negative)."""

DEFAULT_BACKGROUND_ID = 1
"""Scribble mode's default background label (label 1 = background, as in convpaint)."""

SPARSE_SHARE = 0.01
"""Dense mode warns when an example slice has less than this share of its pixels painted:
strokes that thin are probably scribbles, whose unpainted pixels would all become background."""


class SparseExamplesWarning(UserWarning):
    """Dense-mode examples that look like scribbles (see :data:`SPARSE_SHARE`)."""


def check_unpainted(unpainted: str, background_id: int) -> None:
    """Refuse an unknown mode or a background id < 1 (``ValueError`` saying what to give)."""
    if unpainted not in UNPAINTED:
        raise ValueError(f"unpainted must be one of {', '.join(UNPAINTED)}, got {unpainted!r}")
    if unpainted == "unlabelled" and background_id < 1:
        raise ValueError(
            f"background id {background_id}: give the label (>= 1) you paint background with"
        )


def to_scribbles(
    labels: list[np.ndarray], table: np.ndarray, background_id: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Compact ids (0 = unpainted) → scribble ids (-1 = unknown, 0 = background, 1..K-1).

    Args:
        labels: per slice, (H, W) int32 compact ids 0..K.
        table: (K + 1,) the user id of each compact id (``table[0] == 0``).
        background_id: the user's background label.

    Returns:
        The relabelled slices (int32) and the (K,) table without ``background_id``, so the
        backends' background 0 comes back to the user as 0.

    Raises:
        ValueError: no stroke holds ``background_id``, or no stroke holds an object.
    """
    found = np.flatnonzero(table == background_id)
    if len(found) == 0 or found[0] == 0:
        raise ValueError(
            f"no background strokes: paint some background with label {background_id}, or "
            "choose the label you used as background (or unpainted = background for dense masks)"
        )
    if len(table) < 3:
        raise ValueError(
            f"only background strokes (label {background_id}): paint the objects too, with "
            "other labels"
        )
    b = int(found[0])
    lut = np.arange(len(table), dtype=np.int32)
    lut[b + 1 :] -= 1
    lut[b], lut[0] = 0, UNKNOWN
    return [lut[lab] for lab in labels], np.delete(table, b)


def painted_share(labels: np.ndarray) -> float:
    """Share of the pixels of an (H, W) label slice that hold a nonzero label."""
    return float(np.count_nonzero(labels)) / max(labels.size, 1)


def sparse_message(labels: Sequence[np.ndarray | None], share: float = SPARSE_SHARE) -> str | None:
    """The warning for dense-mode examples painted on less than ``share`` of their slice.

    Args:
        labels: per slice, (H, W) user labels or None (no example).

    Returns:
        One line naming the slices and what to choose, or None when every example is dense.
    """
    thin = []
    for index, lab in enumerate(labels):
        if lab is None:
            continue
        covered = painted_share(np.asarray(lab))
        if 0 < covered < share:
            thin.append(f"{index} ({covered:.1%})")
    if not thin:
        return None
    shown = ", ".join(thin[:5]) + (" …" if len(thin) > 5 else "")
    return (
        f"example slice(s) {shown} cover less than {share:.0%} of their slice: every unpainted "
        "pixel counts as background. If these are scribbles, choose unpainted = unlabelled "
        "and paint background strokes with the background id"
    )
