"""What every evaluation protocol shares: progress items, the result record, timing
summaries and the run-to-the-end helper (:mod:`.protocols` holds the protocols)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.engine import propagate
from src_models.types import SliceResult

RANDOM_NOTE = "random weights: tests plumbing, not accuracy"
# the engine's ``link``; the protocols default to "auto", the product's default
Link = bool | Literal["auto"]
T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` steps of the current stage, with a short description."""

    done: int
    total: int
    message: str


@dataclass
class EvalResult:
    """Outcome of one protocol on one dataset.

    Attributes:
        summary: headline numbers (mIoU, J&F, ...), all floats.
        items: one dict per scored pair / slice / frame / sequence.
        seconds: wall time of the whole protocol.
        note: e.g. :data:`RANDOM_NOTE` for random-weight backends.
        read_as: what the dataset folder was read as (:func:`datasets.describe`).
    """

    protocol: str
    dataset: str
    backend: str
    summary: dict[str, float]
    items: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""
    read_as: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def drain(gen: Generator[Any, None, T], on_item: Callable[[Any], None] | None = None) -> T:
    """Run a protocol generator to the end and return its result."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_item is not None:
            on_item(item)


def build_for_eval(
    name: str, *, weights: str | None = None, device: str = "auto", **options: Any
) -> tuple[Backend, str]:
    """Build any registered backend and the note its result rows carry."""
    from src_models.registry import build_backend

    backend = build_backend(name, device=device, weights=weights, **options)
    return backend, RANDOM_NOTE if weights == "random" else ""


def timing_row(res: SliceResult) -> dict[str, float]:
    """A result's timings; the run's first result also holds ``fit`` (the head's fit)."""
    return {k: float(v) for k, v in res.timings.items()}


def timing_summary(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    """``s/slice``: mean features + head seconds per predicted slice; ``fit s``: mean seconds
    of one fit of the head (once per propagation run; fits the engine's memo skipped are
    left out). The fit is not part of s/slice: a run costs fit s + slices × s/slice."""
    rows = list(rows)
    per_slice = [r["features"] + r["head"] for r in rows if "features" in r and "head" in r]
    fits = [r["fit"] for r in rows if "fit" in r and not r.get("fit_reused")]
    return {"s/slice": mean_or_nan(per_slice), "fit s": mean_or_nan(fits)}


def mean_or_nan(values: Iterable[float]) -> float:
    """The mean, or NaN for no values (a column with nothing to average)."""
    values = list(values)
    return float(np.mean(values)) if values else float("nan")


def collect(
    images: Any,
    labels: Any,
    backend: Backend,
    cache: FeatureCache,
    targets: list[int] | None,
    message: str,
    link: Link = "auto",
) -> Generator[Progress, None, list[SliceResult]]:
    """Propagate and collect every SliceResult, yielding progress per slice."""
    results = []
    for res in propagate(images, labels, backend, cache=cache, targets=targets, link=link):
        results.append(res)
        yield Progress(res.done, res.total, message)
    return results
