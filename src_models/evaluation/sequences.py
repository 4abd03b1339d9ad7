"""Evaluation protocols on stacks and videos: one labelled slice propagated through a stack
(semantic or instance), frame 0 propagated through a video (DAVIS J&F). Generators yielding
:class:`Progress` and returning an :class:`EvalResult`, as :mod:`.protocols`' are.

``link`` defaults to ``"auto"``: what the product does (the backend decides; classic links
continuous stacks), so that a benchmark measures the defaults a user gets.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.evaluation import metrics
from src_models.evaluation.datasets import Stack, Video
from src_models.evaluation.results import (
    EvalResult,
    Link,
    Progress,
    collect,
    mean_or_nan,
    timing_row,
    timing_summary,
)
from src_models.types import SliceResult

# slice propagation --------------------------------------------------------------------------


def default_start(labels: np.ndarray) -> int:
    """The slice nearest the middle among those holding the most classes.

    For a binary stack that is the middle slice when it is labelled, else the labelled slice
    nearest to it; a multi-class stack starts where every class can be shown at once.
    """
    counts = np.array([len(np.unique(s[s != 0])) for s in labels])
    if counts.max() == 0:
        raise ValueError("the label stack is empty: nothing to propagate")
    best = np.flatnonzero(counts == counts.max())
    middle = len(labels) // 2
    return int(min(best, key=lambda i: (abs(i - middle), i)))


def slice_iou(pred: np.ndarray, truth: np.ndarray, classes: Iterable[int]) -> float:
    """Mean IoU over ``classes`` on one slice (a class absent from both scores 1)."""
    return mean_or_nan(metrics.object_ious(pred, truth, classes).values())


def nearest_targets(n: int, start: int, limit: int | None) -> list[int] | None:
    """The ``limit`` slices nearest to ``start`` (None = every other slice)."""
    if limit is None:
        return None
    others = sorted((i for i in range(n) if i != start), key=lambda i: (abs(i - start), i))
    return sorted(others[:limit])


def select_objects(labels: np.ndarray, count: int, min_extent: int = 5) -> list[int]:
    """Instance ids for per-object runs: spanning >= min_extent slices, sizes nearest the median.

    Median-sized objects avoid background-like giant ids and fragments.
    """
    ids, sizes = np.unique(labels[labels != 0], return_counts=True)
    boxes = ndi.find_objects(labels)
    extent = {i: b[0].stop - b[0].start for i, b in enumerate(boxes, start=1) if b is not None}
    keep = [
        (int(i), int(s)) for i, s in zip(ids, sizes, strict=True) if extent[int(i)] >= min_extent
    ]
    if not keep:
        raise ValueError(f"no instance spans {min_extent} slices: lower min_extent")
    median = np.median([s for _, s in keep])
    return [i for i, _ in sorted(keep, key=lambda p: (abs(p[1] - median), p[0]))[:count]]


def object_substack(labels: np.ndarray, obj: int, margin: int) -> tuple[slice, int]:
    """Z range of one object ± margin, and the slice with its largest area inside it."""
    zs = np.flatnonzero((labels == obj).reshape(len(labels), -1).any(1))
    z0, z1 = max(int(zs[0]) - margin, 0), min(int(zs[-1]) + margin + 1, len(labels))
    areas = (labels[z0:z1] == obj).reshape(z1 - z0, -1).sum(1)
    middle = (z1 - z0) // 2
    start = middle if areas[middle] > 0 else int(np.argmax(areas))
    return slice(z0, z1), start


def propagate_stack(
    stack: Stack,
    backend: Backend,
    *,
    start: int | None = None,
    limit: int | None = None,
    n_objects: int = 3,
    margin: int = 2,
    cache: FeatureCache | None = None,
    note: str = "",
    link: Link = "auto",
) -> Generator[Progress, None, EvalResult]:
    """Label one slice with ground truth, propagate, score every other slice.

    Semantic stacks: every class from ``start`` (default :func:`default_start`); ``limit``
    keeps the slices nearest to it. Instance stacks: ``n_objects`` (or ``limit``) objects,
    each on its own z range ± margin, started from its largest slice near the middle.
    ``link`` is the engine's option (keep what continues an object from the next slice).
    """
    start_time, cache = time.perf_counter(), cache or FeatureCache()
    # (name, image, truth, start slice, target slices, z offset) per propagation run
    runs: list[tuple[str, np.ndarray, np.ndarray, int, list[int] | None, int]]
    if stack.instance:
        runs = []
        for obj in select_objects(stack.labels, limit or n_objects):
            zr, s = object_substack(stack.labels, obj, margin)
            truth = (stack.labels[zr] == obj).astype(np.int32)
            runs.append((f"object {obj}", stack.image[zr], truth, s, None, zr.start))
    else:
        s = default_start(stack.labels) if start is None else start
        targets = nearest_targets(len(stack.labels), s, limit)
        runs = [("all classes", stack.image, stack.labels, s, targets, 0)]
    acc = metrics.IoUAccumulator()
    items: list[dict[str, Any]] = []
    for k, (name, image, truth, s, targets, offset) in enumerate(runs, start=1):
        classes = [int(c) for c in np.unique(truth) if c != 0]
        example = np.zeros_like(truth)
        example[s] = truth[s]
        results = yield from collect(
            image, example, backend, cache, targets, f"{stack.name}: {name}", link
        )
        for res in results:
            pred, gt = res.labels, truth[res.index]
            if stack.instance:
                acc.add((pred != 0) * k, (gt != 0) * k, [k])
            else:
                acc.add(pred, gt, classes)
            items.append(
                {
                    "run": name,
                    "start": s + offset,
                    "slice": res.index + offset,
                    "iou": slice_iou(pred, gt, classes),
                    "dice": metrics.dice(pred != 0, gt != 0),
                    "score": res.score,
                    "confidence": res.mean_confidence,
                    **timing_row(res),
                }
            )
    summary = {
        "mIoU": acc.miou(),
        "FB-IoU": acc.fb_iou(),
        "slices": float(len(items)),
        "mean slice IoU": mean_or_nan(i["iou"] for i in items),
        "Dice": mean_or_nan(i["dice"] for i in items),
        **timing_summary(items),
    }
    return EvalResult(
        "propagate",
        stack.name,
        backend.name,
        summary,
        items,
        time.perf_counter() - start_time,
        note,
    )


# video propagation --------------------------------------------------------------------------


def _object_j_f(results: list[SliceResult], truth: np.ndarray, k: int) -> tuple[float, float]:
    """Mean J and mean F of object id ``k`` over the scored frames."""
    j = [metrics.davis_j(r.labels == k, truth[r.index] == k) for r in results]
    f = [metrics.boundary_f(r.labels == k, truth[r.index] == k) for r in results]
    return mean_or_nan(j), mean_or_nan(f)


def video(
    data: Video,
    backend: Backend,
    *,
    limit: int | None = None,
    max_frames: int | None = None,
    note: str = "",
    link: Link = "auto",
) -> Generator[Progress, None, EvalResult]:
    """Frame 0's mask → every later frame; DAVIS J, F and J&F per sequence.

    Each object id of frame 0 is scored on its own (the prediction's id k against the
    truth's id k, as in DAVIS 2017), J and F averaged over frames, then over objects; a
    single-object sequence (0/255 masks) has one object.

    As in the DAVIS semi-supervised evaluation, the first and last frames are not scored
    (when a sequence has more than two frames). ``max_frames`` keeps the first frames only.
    """
    start_time = time.perf_counter()
    items: list[dict[str, Any]] = []
    for seq in data.sequences[:limit]:
        stack = seq.load(max_frames, data.max_side)
        example = np.zeros_like(stack.labels)
        example[0] = stack.labels[0]
        results = yield from collect(
            stack.image, example, backend, FeatureCache(), None, seq.name, link
        )
        last = len(stack.labels) - 1
        scored = [r for r in results if last < 2 or r.index != last]
        objects = [int(k) for k in np.unique(stack.labels[0]) if k != 0]
        per_object = [_object_j_f(scored, stack.labels, k) for k in objects]
        times = [timing_row(r) for r in results]
        items.append(
            {
                "sequence": seq.name,
                "frames": len(stack.labels),
                "objects": len(objects),
                **metrics.j_and_f([o[0] for o in per_object], [o[1] for o in per_object]),
                **timing_summary(times),
            }
        )
    if not items:
        raise ValueError(f"{data.name}: no sequence to score")
    summary = {k: mean_or_nan(i[k] for i in items) for k in ("J&F", "J", "F")}
    summary["sequences"] = float(len(items))
    summary.update({k: mean_or_nan(i[k] for i in items) for k in ("s/slice", "fit s")})
    return EvalResult(
        "video", data.name, backend.name, summary, items, time.perf_counter() - start_time, note
    )
