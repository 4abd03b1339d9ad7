"""Stage timers: how every backend reports where its seconds go.

The engine creates one :class:`Timer` per call of ``compute_features``, ``fit`` and
``predict`` and passes it in; a backend wraps each stage in ``with timer("backbone"):``. The
stages reach :attr:`src_models.types.SliceResult.timings`, ``--timings`` and the benchmark
tables without any side-channel attribute.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from src_models.device import synchronize

if TYPE_CHECKING:
    import torch


class Timer:
    """Seconds per named stage; a stage entered twice accumulates.

    Attributes:
        seconds: stage name → seconds (float).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str, device: torch.device | None = None) -> Iterator[None]:
        """Time the ``with`` block as ``stage``; on CUDA, wait for ``device`` before stopping."""
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(device)
            self.add(stage, time.perf_counter() - start)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class NullTimer(Timer):
    """A timer that records nothing: the default when a backend is called directly."""

    def add(self, stage: str, seconds: float) -> None:
        return None


NULL_TIMER: Timer = NullTimer()
