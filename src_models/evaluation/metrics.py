"""Segmentation metrics: IoU, Dice, mIoU, FB-IoU, DAVIS J and F, instance matching.

Conventions, exact on empty masks: when prediction and truth are both empty, IoU, Dice,
J and F are 1 (nothing to find, nothing wrongly found); when exactly one is empty they are 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import disk

DAVIS_BOUND_TH = 0.008


def _binary(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2D mask, got shape {mask.shape}")
    return mask.astype(bool)


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> None:
    if np.shape(pred) != np.shape(truth):
        raise ValueError(
            f"prediction {np.shape(pred)} and truth {np.shape(truth)} differ: resize one first"
        )


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two (H, W) masks (nonzero = object); 1.0 when both are empty."""
    _check_pair(pred, truth)
    p, t = _binary(pred), _binary(truth)
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, t).sum() / union)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient 2|P∩T| / (|P| + |T|) of two (H, W) masks; 1.0 when both are empty."""
    _check_pair(pred, truth)
    p, t = _binary(pred), _binary(truth)
    total = p.sum() + t.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(p, t).sum() / total)


def object_ious(pred: np.ndarray, truth: np.ndarray, ids: Iterable[int]) -> dict[int, float]:
    """IoU of each label id between two (H, W) int label images."""
    _check_pair(pred, truth)
    return {int(k): iou(np.asarray(pred) == k, np.asarray(truth) == k) for k in ids}


@dataclass
class IoUAccumulator:
    """Per-class intersections and unions summed over many images (the FSS convention).

    ``miou`` is the mean over classes of (Σ intersection / Σ union); ``fb_iou`` the mean of
    the foreground (any nonzero) and background IoU, also summed over every image.
    """

    intersection: dict[int, int] = field(default_factory=dict)
    union: dict[int, int] = field(default_factory=dict)
    fb_intersection: list[int] = field(default_factory=lambda: [0, 0])
    fb_union: list[int] = field(default_factory=lambda: [0, 0])

    def add(self, pred: np.ndarray, truth: np.ndarray, classes: Iterable[int]) -> None:
        """Add one (H, W) int prediction and its truth; ``classes`` are the nonzero ids scored."""
        _check_pair(pred, truth)
        pred, truth = np.asarray(pred), np.asarray(truth)
        for k in classes:
            p, t = pred == k, truth == k
            self.intersection[k] = self.intersection.get(k, 0) + int(np.logical_and(p, t).sum())
            self.union[k] = self.union.get(k, 0) + int(np.logical_or(p, t).sum())
        for i, (p, t) in enumerate([(pred == 0, truth == 0), (pred != 0, truth != 0)]):
            self.fb_intersection[i] += int(np.logical_and(p, t).sum())
            self.fb_union[i] += int(np.logical_or(p, t).sum())

    def class_iou(self) -> dict[int, float]:
        """IoU per class; a class never present in prediction nor truth scores 1.0."""
        return {
            k: 1.0 if self.union[k] == 0 else self.intersection[k] / self.union[k]
            for k in sorted(self.union)
        }

    def miou(self) -> float:
        values = list(self.class_iou().values())
        return float(np.mean(values)) if values else float("nan")

    def fb_iou(self) -> float:
        parts = [
            1.0 if u == 0 else i / u
            for i, u in zip(self.fb_intersection, self.fb_union, strict=True)
        ]
        return float(np.mean(parts))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool, True on object pixels whose right, lower or lower-right neighbour differs.

    Pixels outside the image count as equal to their neighbour, so the image border is not
    a boundary (the DAVIS ``seg2bmap`` convention at the input resolution).
    """
    m = np.pad(_binary(mask), ((0, 1), (0, 1)), mode="edge")
    core = m[:-1, :-1]
    return (core ^ m[:-1, 1:]) | (core ^ m[1:, :-1]) | (core ^ m[1:, 1:])


def boundary_tolerance(shape: tuple[int, int], bound_th: float = DAVIS_BOUND_TH) -> int:
    """Tolerance in pixels: ``bound_th`` itself when >= 1, else ceil(bound_th × diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return math.ceil(bound_th * math.hypot(*shape))


def boundary_precision_recall(
    pred: np.ndarray, truth: np.ndarray, bound_th: float = DAVIS_BOUND_TH
) -> tuple[float, float]:
    """Boundary precision and recall with a disk tolerance (DAVIS F-measure parts)."""
    _check_pair(pred, truth)
    pb, tb = boundary_map(pred), boundary_map(truth)
    n_p, n_t = int(pb.sum()), int(tb.sum())
    if n_p == 0 and n_t == 0:
        return 1.0, 1.0
    if n_p == 0:
        return 1.0, 0.0
    if n_t == 0:
        return 0.0, 1.0
    footprint = disk(boundary_tolerance(pb.shape, bound_th)).astype(bool)
    precision = float((pb & ndi.binary_dilation(tb, footprint)).sum() / n_p)
    recall = float((tb & ndi.binary_dilation(pb, footprint)).sum() / n_t)
    return precision, recall


def boundary_f(pred: np.ndarray, truth: np.ndarray, bound_th: float = DAVIS_BOUND_TH) -> float:
    """DAVIS F: harmonic mean of boundary precision and recall; 1.0 when both are empty."""
    precision, recall = boundary_precision_recall(pred, truth, bound_th)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def davis_j(pred: np.ndarray, truth: np.ndarray) -> float:
    """DAVIS J (region similarity) is the IoU."""
    return iou(pred, truth)


def j_and_f(j_values: Iterable[float], f_values: Iterable[float]) -> dict[str, float]:
    """J mean, F mean and their average J&F over frames (or sequences)."""
    j, f = float(np.mean(list(j_values))), float(np.mean(list(f_values)))
    return {"J": j, "F": f, "J&F": (j + f) / 2}


@dataclass(frozen=True)
class InstanceMatch:
    """One-to-one matching of predicted to true instances at an IoU threshold.

    Attributes:
        tp, fp, fn: matched pairs, unmatched predictions, unmatched true instances.
        precision, recall, f1: from tp/fp/fn; 1.0 when both images have no instance.
        mean_matched_iou: mean IoU of the matched pairs (0.0 when none).
        pairs: (true id, predicted id, IoU) of every match.
    """

    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    mean_matched_iou: float
    pairs: list[tuple[int, int, float]]


def instance_iou_matrix(
    pred: np.ndarray, truth: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU between every true and predicted instance: (T, P) float64, true ids, pred ids."""
    _check_pair(pred, truth)
    pred, truth = np.asarray(pred).ravel(), np.asarray(truth).ravel()
    t_ids, t_inv = np.unique(truth, return_inverse=True)
    p_ids, p_inv = np.unique(pred, return_inverse=True)
    counts = np.zeros((len(t_ids), len(p_ids)), np.int64)
    np.add.at(counts, (t_inv, p_inv), 1)
    union = counts.sum(1, keepdims=True) + counts.sum(0, keepdims=True) - counts
    ious = counts / np.maximum(union, 1)
    t_keep, p_keep = t_ids != 0, p_ids != 0
    return ious[t_keep][:, p_keep], t_ids[t_keep], p_ids[p_keep]


def match_instances(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> InstanceMatch:
    """Hungarian matching on IoU of two (H, W) instance label images, kept at IoU >= threshold."""
    from scipy.optimize import linear_sum_assignment

    ious, t_ids, p_ids = instance_iou_matrix(pred, truth)
    rows, cols = linear_sum_assignment(-ious) if ious.size else (np.zeros(0, int),) * 2
    pairs = [
        (int(t_ids[r]), int(p_ids[c]), float(ious[r, c]))
        for r, c in zip(rows, cols, strict=True)
        if ious[r, c] >= threshold
    ]
    tp, fp, fn = len(pairs), len(p_ids) - len(pairs), len(t_ids) - len(pairs)
    precision = 1.0 if tp + fp == 0 else tp / (tp + fp)
    recall = 1.0 if tp + fn == 0 else tp / (tp + fn)
    f1 = 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
    mean_iou = float(np.mean([p[2] for p in pairs])) if pairs else 0.0
    return InstanceMatch(tp, fp, fn, precision, recall, f1, mean_iou, pairs)
