"""Which slices a run proposes, in which order, and how much accepted slices weigh."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Direction = Literal["both", "forward", "backward"]
DIRECTIONS: tuple[Direction, ...] = ("both", "forward", "backward")


def nearest_example(index: int, examples: Sequence[int]) -> int:
    """The example slice nearest to ``index`` (ties: the lower one)."""
    return min(examples, key=lambda e: (abs(e - index), e))


def propagation_order(
    n: int,
    examples: Sequence[int],
    targets: Sequence[int] | None = None,
    keep_examples: bool = False,
) -> list[int]:
    """Targets sorted by distance to the nearest example, then by index.

    Ties alternate both directions, so the run moves outward from the examples. Without
    examples (all of them come from elsewhere) the order is by index. Example slices are
    left out unless ``keep_examples`` (scribbled slices need a proposal too).
    """
    skip = set() if keep_examples else set(examples)
    wanted = [i for i in (range(n) if targets is None else targets) if i not in skip]
    for i in wanted:
        if not 0 <= i < n:
            raise ValueError(f"target slice {i} is outside 0..{n - 1}")
    if not examples:
        return sorted(wanted)
    ex = np.asarray(examples)
    return sorted(wanted, key=lambda i: (int(np.abs(ex - i).min()), i))


def select_targets(
    n: int,
    examples: Sequence[int],
    first: int | None = None,
    last: int | None = None,
    direction: Direction = "both",
) -> list[int]:
    """Slices to propose: ``first``..``last`` (inclusive) without the examples, optionally
    only those after (``forward``) or before (``backward``) their nearest example."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    lo, hi = 0 if first is None else first, n - 1 if last is None else last
    if not 0 <= lo <= hi < n:
        raise ValueError(f"slice range {lo}..{hi} is not inside 0..{n - 1}: choose first <= last")
    wanted = [i for i in range(lo, hi + 1) if i not in set(examples)]
    if direction == "both" or not examples:
        return wanted
    sign = 1 if direction == "forward" else -1
    return [i for i in wanted if np.sign(i - nearest_example(i, examples)) == sign]


WEAK_SHARE = 0.2
"""Slices accepted without an edit weigh together this share of the painted or corrected
examples by default (measured in docs/benchmarks.md, Review block)."""


def weak_weight(share: float, verified: int, accepted: int) -> float:
    """Per-slice weight of ``accepted`` slices accepted without an edit, so that together
    they weigh at most ``share`` of the ``verified`` (painted or corrected) examples, and each
    at most ``share``: many accepted slices cannot outweigh what the person verified."""
    if accepted == 0:
        return share
    return min(share, share * max(verified, 1) / accepted)


def unblocked(index: int, examples: Sequence[int], blocked: dict[tuple[int, int], int]) -> bool:
    """False for a slice beyond a stop: ``blocked`` maps (example, side) to the distance from
    that example where the run stopped on that side."""
    if examples:
        e = nearest_example(index, examples)
        stop = blocked.get((e, int(np.sign(index - e))))
        return stop is None or abs(index - e) <= stop
    return True
