"""Pair image files with mask files whose names differ (``21_training.tif`` ↔ ``21_manual1.gif``).

Rules, tried in order for each image stem:

1. a mask with the same stem;
2. a mask whose stem is the image stem plus a known suffix (:data:`MASK_NAME_SUFFIXES`,
   e.g. ``img`` ↔ ``img_mask``);
3. the masks sharing the longest run of leading name tokens with the image (tokens split at
   ``_``, ``-``, ``.`` and spaces): ``21_training`` and ``21_manual1`` share ``21``. The best
   mask must be unique and share at least one token.

A mask claimed by two images, or a tie in rule 3, is refused with a message: guessing would
score an image against another image's mask.
"""

from __future__ import annotations

import re
from pathlib import Path

MASK_NAME_SUFFIXES = ("_mask", "_masks", "_manual1", "_label", "_labels", "_gt", "_seg", "_anno")


def _tokens(stem: str) -> list[str]:
    return [t for t in re.split(r"[_\-. ]+", stem.lower()) if t]


def _shared_tokens(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _by_suffix(stem: str, masks: dict[str, Path]) -> str | None:
    lowered = {m.lower(): m for m in masks}
    for suffix in MASK_NAME_SUFFIXES:
        if stem.lower() + suffix in lowered:
            return lowered[stem.lower() + suffix]
    return None


def _by_prefix(stem: str, masks: dict[str, Path], folder: Path) -> str | None:
    tokens = _tokens(stem)
    shared = {m: _shared_tokens(tokens, _tokens(m)) for m in masks}
    best = max(shared.values(), default=0)
    if best == 0:
        return None
    winners = sorted(m for m, n in shared.items() if n == best)
    if len(winners) > 1:
        raise ValueError(
            f"{folder}: image {stem!r} matches several masks equally well "
            f"({', '.join(winners[:4])}); rename the masks to the image stem (or stem + _mask)"
        )
    return winners[0]


def pair_files(
    images: dict[str, Path], masks: dict[str, Path], folder: Path
) -> tuple[dict[str, Path], list[str]]:
    """Match each image stem to one mask file.

    Args:
        images, masks: file stem → path, for one image folder and its mask folder.
        folder: named in error messages.

    Returns:
        (image stem → mask path for every matched image, image stems left without a mask).

    Raises:
        ValueError: ambiguous match, or one mask matched to two images.
    """
    found: dict[str, str] = {}
    for stem in images:
        match = stem if stem in masks else _by_suffix(stem, masks)
        if match is not None:
            found[stem] = match
    taken = set(found.values())
    free = {m: p for m, p in masks.items() if m not in taken}
    unmatched: list[str] = []
    for stem in images:
        if stem not in found:
            match = _by_prefix(stem, free, folder)
            if match is None:
                unmatched.append(stem)
            else:
                found[stem] = match
    claimed: dict[str, str] = {}
    for stem, mask in found.items():
        if mask in claimed:
            raise ValueError(
                f"{folder}: mask {mask!r} matches both {claimed[mask]!r} and {stem!r}; "
                "give each image a mask named after it (stem, or stem + _mask)"
            )
        claimed[mask] = stem
    return {s: masks[found[s]] for s in images if s in found}, unmatched
