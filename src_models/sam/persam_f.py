"""PerSAM-F: two learnable weights over SAM's three multimask outputs (docs/parity.md).

Training decodes each example once (positive top-1 point at the prototype's best match, no
guided attention, no semantic prompt), then fits ``w = [1 − w1 − w2, w1, w2]`` on the fixed
three high-res logits with dice + sigmoid focal loss (α 0.25, γ 2), AdamW (lr 1e-3, eps
1e-4) and a cosine schedule. Because the decoder is frozen and runs once, the iterations are
cheap tensor arithmetic; their CPU time is measured and reported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from src_models.losses import dice_loss, focal_loss
from src_models.sam.persam import mask_box, point_selection, similarity_map
from src_models.sam.predictor import SamEmbedding, SamHead


@dataclass(frozen=True)
class PersamFConfig:
    """PerSAM-F training hyperparameters (official defaults).

    Attributes:
        iterations: optimiser steps (1000 in the paper).
        lr, eps: AdamW settings.
        focal_alpha, focal_gamma: sigmoid focal loss.
        max_side: downsample the training logits and masks so their longest side is at most
            this (None = full resolution, as the official code); speeds CPU training.
    """

    iterations: int = 1000
    lr: float = 1e-3
    eps: float = 1e-4
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    max_side: int | None = None


def blend(weights: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """(2,) learnable weights, (3, ...) logits → (...) ``(1−w1−w2)·l0 + w1·l1 + w2·l2``."""
    full = torch.cat([1 - weights.sum().reshape(1), weights.reshape(-1)])
    return torch.einsum("m,m...->...", full, logits)


def _training_pair(
    head: SamHead,
    emb: SamEmbedding,
    mask: np.ndarray,
    prototype: np.ndarray,
    max_side: int | None,
    painted: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, ...) logits and (...) target; only the ``painted`` pixels, flattened, when given
    (scribble mode: unpainted pixels are neither object nor background)."""
    head.set_embedding(emb)
    pos, _ = point_selection(similarity_map(head, emb, prototype))
    pred = head.predict(pos, np.array([1]), multimask=True)
    logits = torch.from_numpy(pred.logits)
    target = torch.from_numpy(mask.astype(np.float32))
    known = torch.from_numpy(np.ones(mask.shape, bool) if painted is None else painted)
    if max_side is not None and max(mask.shape) > max_side:
        scale = max_side / max(mask.shape)
        size = (max(1, round(mask.shape[0] * scale)), max(1, round(mask.shape[1] * scale)))
        logits = F.interpolate(logits[None], size, mode="bilinear", align_corners=False)[0]
        target = F.interpolate(target[None, None], size, mode="area")[0, 0]
        known = F.interpolate(known.float()[None, None], size, mode="area")[0, 0] > 0.5
    if painted is None:
        return logits, target
    return logits[:, known], target[known]


def train_weights(
    head: SamHead,
    embs: Sequence[SamEmbedding],
    masks: Sequence[np.ndarray],
    prototype: np.ndarray,
    config: PersamFConfig,
    example_weights: Sequence[float] | None = None,
    painted: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Fit the two mask weights on the examples of one object.

    Args:
        example_weights: per example, its weight (default 1): scales that example's loss.
        painted: per example, (H, W) bool pixels the loss may use (scribble mode: the
            strokes); default every pixel.

    Returns:
        (2,) float32 weights and timings {"persam_f_decode": s, "persam_f_train": s}.
    """
    start = time.perf_counter()
    trust = [1.0] * len(embs) if example_weights is None else list(example_weights)
    known: Sequence[np.ndarray | None] = [None] * len(embs) if painted is None else painted
    pairs = [
        (*_training_pair(head, e, m, prototype, config.max_side, p), w)
        for e, m, w, p in zip(embs, masks, trust, known, strict=True)
        if m.any()
    ]
    decoded = time.perf_counter()
    weights = torch.nn.Parameter(torch.ones(2) / 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is ~30x faster on a busy CPU
    try:
        _fit(weights, pairs, config)
    finally:
        torch.set_num_threads(threads)
    timings = {"persam_f_decode": decoded - start, "persam_f_train": time.perf_counter() - decoded}
    return weights.detach().numpy().astype(np.float32), timings


def _fit(
    weights: torch.nn.Parameter,
    pairs: list[tuple[torch.Tensor, torch.Tensor, float]],
    config: PersamFConfig,
) -> None:
    """AdamW + cosine schedule on dice + focal loss of the blended logits."""
    optimizer = torch.optim.AdamW([weights], lr=config.lr, eps=config.eps)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(config.iterations, 1))
    with torch.enable_grad():
        for _ in range(config.iterations):
            loss = torch.zeros(())
            for logits, target, trust in pairs:
                mixed = blend(weights, logits)
                pair = dice_loss(mixed.flatten(), target.flatten())
                pair = pair + focal_loss(mixed, target, config.focal_alpha, config.focal_gamma)
                loss = loss + trust * pair
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()


def persam_f_predict(
    head: SamHead, prior: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, float]:
    """PerSAM-F inference on the image set in ``head``.

    Positive top-1 point from ``prior`` → three masks blended with ``weights`` → refinement
    with the blended box + blended low-res logits → refinement with the best box + logits.

    Returns:
        (H, W) float32 logits and the predicted IoU of the kept mask.
    """
    pos, _ = point_selection(prior)
    labels = np.array([1])
    pred = head.predict(pos, labels, multimask=True)
    w = torch.from_numpy(weights)
    logits = blend(w, torch.from_numpy(pred.logits)).numpy()
    low_res = blend(w, torch.from_numpy(pred.low_res))[None].numpy()
    score = float(pred.scores.mean())
    for _ in range(2):
        box = mask_box(logits > 0)
        if box is None:
            break
        pred = head.predict(pos, labels, box=box, mask_input=low_res)
        best = pred.best()
        logits, low_res, score = (
            pred.logits[best],
            pred.low_res[best : best + 1],
            float(pred.scores[best]),
        )
    return logits, score
