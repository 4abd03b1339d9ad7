"""Evaluation protocols: one-shot / K-shot image sets, instance one-shot; slice and video
propagation live in :mod:`.sequences` (re-exported here). Each is a generator yielding
:class:`Progress` and returning an :class:`EvalResult` (use :func:`drain` to run one to the
end)."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.evaluation import metrics
from src_models.evaluation.datasets import AnnotatedImages, InstanceImage
from src_models.evaluation.results import (
    RANDOM_NOTE,
    EvalResult,
    Progress,
    build_for_eval,
    collect,
    drain,
    mean_or_nan,
    timing_row,
    timing_summary,
)
from src_models.evaluation.sequences import (
    default_start,
    nearest_targets,
    object_substack,
    propagate_stack,
    select_objects,
    slice_iou,
    video,
)

__all__ = [  # the protocols, and what they share (re-exported from .results)
    "RANDOM_NOTE",
    "EvalResult",
    "Progress",
    "build_for_eval",
    "crop_windows",
    "default_start",
    "drain",
    "episode_starts",
    "instance_one_shot",
    "nearest_targets",
    "object_substack",
    "one_shot",
    "propagate_stack",
    "select_objects",
    "slice_iou",
    "timing_summary",
    "video",
]


# one-shot / K-shot on image sets -----------------------------------------------------------


def episode_starts(n: int, episodes: int | None, seed: int) -> list[int]:
    """All starts 0..n-1, or ``episodes`` of them: 0 (the canonical reference) + a seeded sample."""
    if episodes is None or episodes >= n:
        return list(range(n))
    rng = np.random.default_rng(seed)
    rest = rng.choice(np.arange(1, n), size=max(episodes - 1, 0), replace=False)
    return [0] + sorted(int(r) for r in rest)


def _reference_ids(masks: list[np.ndarray]) -> list[int]:
    return sorted({int(v) for m in masks for v in np.unique(m) if v != 0})


def _relabel(labels: np.ndarray, keys: dict[int, int]) -> np.ndarray:
    """(H, W) ids → accumulator keys; ids without a key become 0 (background)."""
    out = np.zeros(labels.shape, np.int32)
    for k, key in keys.items():
        out[labels == k] = key
    return out


def one_shot(
    dataset: AnnotatedImages,
    backend: Backend,
    *,
    shots: int = 1,
    episodes: int | None = None,
    seed: int = 0,
    cache: FeatureCache | None = None,
    note: str = "",
) -> Generator[Progress, None, EvalResult]:
    """K-shot within each class: K reference images (cyclic window from each start) → the rest.

    Binary sets (``dataset.multiclass`` False): any nonzero label is the class. Multi-class
    sets: the references keep their ids and each id k of the references is its own class,
    scored as the prediction's id k against the target's id k; target ids absent from the
    references count as background. mIoU averages the IoU per class (per group, or per
    group and id) accumulated over every target; FB-IoU averages foreground and background
    IoU; ``mean IoU`` / ``Dice`` average per target the mean over its scored ids.
    """
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    start_time, cache = time.perf_counter(), cache or FeatureCache()
    acc = metrics.IoUAccumulator()
    items: list[dict[str, Any]] = []
    key_names: dict[int, str] = {}
    keys: dict[tuple[str, int], int] = {}
    for group, idx in dataset.group_indices().items():
        if len(idx) <= shots:
            continue
        for start in episode_starts(len(idx), episodes, seed):
            refs = [idx[(start + j) % len(idx)] for j in range(shots)]
            targets = [i for i in idx if i not in refs]
            images = [dataset.images[i] for i in refs + targets]
            masks = [dataset.masks[i] for i in refs]
            labels = [(m if dataset.multiclass else m != 0).astype(np.int32) for m in masks]
            ids = _reference_ids(labels) if dataset.multiclass else [1]
            for k in ids:
                keys.setdefault((group, k), len(keys) + 1)
                key_names[keys[group, k]] = f"{group}/{k}" if dataset.multiclass else group
            episode = {k: keys[group, k] for k in ids}
            results = yield from collect(
                images,
                labels + [None] * len(targets),
                backend,
                cache,
                None,
                f"{group}: reference {dataset.names[refs[0]]}",
            )
            for res in results:
                t = targets[res.index - shots]
                pred, truth = res.labels, dataset.masks[t]
                if not dataset.multiclass:
                    pred, truth = (pred != 0).astype(np.int32), (truth != 0).astype(np.int32)
                acc.add(_relabel(pred, episode), _relabel(truth, episode), episode.values())
                items.append(
                    {
                        "class": group,
                        "reference": [dataset.names[r] for r in refs],
                        "target": dataset.names[t],
                        "ids": ids,
                        "iou": slice_iou(pred, truth, ids),
                        "dice": mean_or_nan(metrics.dice(pred == k, truth == k) for k in ids),
                        "score": res.score,
                        "confidence": res.mean_confidence,
                        **timing_row(res),
                    }
                )
    if not items:
        raise ValueError(f"{dataset.name}: no class has more than {shots} images to score")
    summary = {
        "mIoU": acc.miou(),
        "FB-IoU": acc.fb_iou(),
        "pairs": float(len(items)),
        "mean IoU": mean_or_nan(i["iou"] for i in items),
        "Dice": mean_or_nan(i["dice"] for i in items),
        **timing_summary(items),
    }
    summary.update({f"IoU[{key_names[k]}]": v for k, v in acc.class_iou().items()})
    return EvalResult(
        f"{shots}-shot",
        dataset.name,
        backend.name,
        summary,
        items,
        time.perf_counter() - start_time,
        note,
    )


# instance one-shot: a fully labelled crop → every instance of the image --------------------


def crop_windows(labels: np.ndarray, size: int, count: int) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` non-overlapping windows holding the most whole instances."""
    h, w = labels.shape
    step = max(size // 2, 1)
    scored = []
    for y in range(0, max(h - size, 0) + 1, step):
        for x in range(0, max(w - size, 0) + 1, step):
            win = labels[y : y + size, x : x + size]
            border = np.unique(np.concatenate([win[0], win[-1], win[:, 0], win[:, -1]]))
            scored.append((len(set(np.unique(win)) - set(border) - {0}), -y, -x))
    chosen: list[tuple[int, int]] = []
    for _, my, mx in sorted(scored, reverse=True):
        if all(abs(-my - y) >= size or abs(-mx - x) >= size for y, x in chosen):
            chosen.append((-my, -mx))
        if len(chosen) == count:
            break
    return chosen


def instance_one_shot(
    dataset: InstanceImage,
    backend: Backend,
    *,
    shots: int = 1,
    crop: int = 128,
    cache: FeatureCache | None = None,
    note: str = "",
) -> Generator[Progress, None, EvalResult]:
    """Label every instance inside ``shots`` crop windows, segment the whole image.

    The crops (every pixel labelled: nuclei 1, rest 0) are the examples; the full image is
    the target. Foreground → connected components → Hungarian matching at IoU >= 0.5.
    The crops are part of the scored image, which slightly favours the backend.
    """
    start_time = time.perf_counter()
    size = min(crop, *dataset.labels.shape)
    corners = crop_windows(dataset.labels, size, shots)
    crops = [dataset.image[y : y + size, x : x + size] for y, x in corners]
    masks = [(dataset.labels[y : y + size, x : x + size] != 0).astype(np.int32) for y, x in corners]
    results = yield from collect(
        crops + [dataset.image],
        masks + [None],
        backend,
        cache or FeatureCache(),
        None,
        f"{dataset.name}: whole image",
    )
    res = results[0]
    pred_fg, truth = res.labels != 0, dataset.labels
    match = metrics.match_instances(ndi.label(pred_fg)[0], truth)
    summary = {
        "IoU (fg)": metrics.iou(pred_fg, truth != 0),
        "Dice (fg)": metrics.dice(pred_fg, truth != 0),
        "instance F1@0.5": match.f1,
        "precision": match.precision,
        "recall": match.recall,
        "matched IoU": match.mean_matched_iou,
        "true instances": float(match.tp + match.fn),
        **timing_summary([timing_row(res)]),
    }
    items = [
        {
            "crops": corners,
            "crop": size,
            "tp": match.tp,
            "fp": match.fp,
            "fn": match.fn,
            **timing_row(res),
        }
    ]
    return EvalResult(
        f"instance {shots}-shot",
        dataset.name,
        backend.name,
        summary,
        items,
        time.perf_counter() - start_time,
        note,
    )
