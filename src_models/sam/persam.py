"""Training-free PerSAM (Zhang et al., ICLR 2024) on top of :mod:`src_models.sam.predictor`.

Recipe (docs/parity.md): target embedding = mean of the example's SAM features under its
mask → cosine similarity map on the target → positive point at the argmax, negative at the
argmin → first decoding with target-guided attention and target-semantic prompting
(single mask) → refinement 1 with the first logits as mask prompt (multimask, best score) →
refinement 2 adding the box of that mask (multimask, best score).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from src_models.sam.persam_decoder import PersamContext, persam_prompts
from src_models.sam.predictor import Prediction, SamEmbedding, SamHead

# PerSeg masks are palette PNGs read as RGB: the object is (128, 0, 0). PerSAM keeps the
# cells whose red channel is > 0 after SAM's pixel normalisation (red > 123.675).
REFERENCE_RED = 128


@dataclass(frozen=True)
class PersamConfig:
    """Switches of the PerSAM recipe (all on = the paper's training-free PerSAM).

    Attributes:
        guided_attention: add the similarity bias to the token→image attention.
        semantic_prompt: add the target embedding to the decoder tokens.
        negative_point: add a background point at the similarity argmin.
        refine_steps: cascaded refinement steps after the first decoding (0, 1 or 2).
        attention_bias: ``official`` stretches the similarity map over the whole embedding
            grid (as persam.py); ``aligned`` resizes and pads it like the image, so each bias
            lands on the cell it describes (differs on non-square images).
    """

    guided_attention: bool = True
    semantic_prompt: bool = True
    negative_point: bool = True
    refine_steps: int = 2
    attention_bias: Literal["official", "aligned"] = "official"


def reference_grid_mask(head: SamHead, emb: SamEmbedding, mask: np.ndarray) -> np.ndarray:
    """(H, W) bool example mask → (g, g) bool foreground cells of the embedding grid.

    The official rule (``persam.py``): the mask as PerSeg stores it (red 128 on the object)
    goes through ``ResizeLongestSide`` (PIL bilinear on uint8) and ``Sam.preprocess``
    (normalised with the pixel mean/std, padded with 0), bilinear to the grid; cells > 0
    are kept. A mask too small for any cell keeps its best cell (the official code would
    average no feature).
    """
    from PIL import Image

    sam: Any = head.sam
    h, w = emb.input_size
    red = Image.fromarray(np.where(mask, REFERENCE_RED, 0).astype(np.uint8))
    resized = np.asarray(red.resize((w, h), Image.Resampling.BILINEAR), np.float32)
    mean, std = (float(v[0]) for v in (sam.pixel_mean, sam.pixel_std))
    img = int(sam.image_encoder.img_size)
    x = F.pad((torch.from_numpy(resized) - mean)[None, None] / std, (0, img - w, 0, img - h))
    size = tuple(emb.embedding.shape[-2:])
    grid = F.interpolate(x, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()
    keep = grid > 0
    if not keep.any() and mask.any():
        keep = grid == grid.max()
    return keep


def masked_features(head: SamHead, emb: SamEmbedding, mask: np.ndarray) -> np.ndarray:
    """(n, C) float32 SAM features of the grid cells under ``mask`` (n may be 0)."""
    keep = reference_grid_mask(head, emb, mask)
    return emb.embedding.astype(np.float32).transpose(1, 2, 0)[keep]


def target_embedding(
    head: SamHead,
    embs: Sequence[SamEmbedding],
    masks: Sequence[np.ndarray],
    mode: str = "mean",
    weights: Sequence[float] | None = None,
) -> np.ndarray | None:
    """(C,) float32 target embedding of an object over one or more examples.

    As in the official code it is *not* normalised: the raw mean is what target-semantic
    prompting adds to the decoder tokens, and :func:`similarity_map` normalises it for the
    cosine. K examples: the features under every mask are pooled (an inferred extension).

    Args:
        mode: ``mean`` (PerSAM) or ``max_mean`` ((max + mean) / 2, PerSAM-F).
        weights: per example, its weight (default 1): each feature under a mask counts with
            its example's weight in the mean.

    Returns None when no example has the object.
    """
    weights = [1.0] * len(embs) if weights is None else list(weights)
    pooled = [
        (masked_features(head, e, m), w)
        for e, m, w in zip(embs, masks, weights, strict=True)
        if m.any()
    ]
    pooled = [(f, w) for f, w in pooled if len(f)]
    if not pooled:
        return None
    stacked = np.concatenate([f for f, _ in pooled])
    per_feature = np.concatenate([np.full(len(f), w) for f, w in pooled])
    vector = np.average(stacked, axis=0, weights=per_feature)
    if mode == "max_mean":
        vector = (stacked.max(0) + vector) / 2
    elif mode != "mean":
        raise ValueError(f"unknown target embedding mode {mode!r}: choose mean or max_mean")
    return vector.astype(np.float32)


def similarity_map(head: SamHead, emb: SamEmbedding, target: np.ndarray) -> np.ndarray:
    """(H, W) float32 cosine similarity of ``target`` (C,, any norm) to the image's SAM features.

    Computed on the grid, upsampled ×4 and then through ``postprocess_masks`` (PerSAM).
    """
    feats = torch.from_numpy(emb.embedding.astype(np.float32))
    feats = F.normalize(feats, dim=0)
    unit = F.normalize(torch.from_numpy(target).float(), dim=0)
    sim = torch.einsum("c,chw->hw", unit, feats)[None, None]
    sim = F.interpolate(sim, scale_factor=4, mode="bilinear", align_corners=False)
    sim = head.sam.postprocess_masks(sim, emb.input_size, emb.original_size)
    return sim[0, 0].numpy()


def point_selection(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positive point at the argmax, negative at the argmin of an (H, W) map.

    Returns:
        positive (1, 2) and negative (1, 2) float32 (x, y) pixel coordinates.
    """
    pos = np.unravel_index(int(np.argmax(sim)), sim.shape)
    neg = np.unravel_index(int(np.argmin(sim)), sim.shape)
    return (np.array([[pos[1], pos[0]]], np.float32), np.array([[neg[1], neg[0]]], np.float32))


def attention_bias(
    head: SamHead, emb: SamEmbedding, sim: np.ndarray, frame: str = "official"
) -> torch.Tensor:
    """PerSAM's ``attn_sim``: z-scored (H, W) similarity on the grid, sigmoid, (1, 1, 1, g·g).

    Args:
        frame: ``official`` resizes the whole map to the grid (``persam.py``; on a
            non-square image the bias is stretched over the padding); ``aligned`` resizes
            and pads it like the image so each bias lands on the cell it describes (padded
            cells get the lowest value).
    """
    z = (sim - sim.mean()) / max(float(sim.std(ddof=1)), 1e-8)  # torch.std is unbiased
    grid_size = tuple(emb.embedding.shape[-2:])
    if frame == "official":
        x = torch.from_numpy(np.ascontiguousarray(z, np.float32))[None, None]
        grid = F.interpolate(x, size=grid_size, mode="bilinear", align_corners=False)[0, 0]
    elif frame == "aligned":
        grid = torch.from_numpy(head.image_grid_map(emb, z, fill=float(z.min())))
    else:
        raise ValueError(f"unknown attention_bias {frame!r}: choose official or aligned")
    return torch.sigmoid(grid).reshape(1, 1, 1, -1)


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """(4,) float32 x0, y0, x1, y1 of a boolean (H, W) mask, or None when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32)


def cascade_refine(
    head: SamHead, points: np.ndarray, labels: np.ndarray, first: Prediction, index: int, steps: int
) -> tuple[np.ndarray, float]:
    """PerSAM's cascaded post-refinement starting from ``first.*[index]``.

    Step 1: same points + ``mask_input`` = the first low-res logits (multimask, best score).
    Step 2: adds the box of the step-1 mask and uses its logits (multimask, best score).

    Returns:
        (H, W) float32 logits and the predicted IoU of the kept mask.
    """
    pred, best = first, index
    for step in range(steps):
        box = None
        if step == 1:
            box = mask_box(pred.logits[best] > 0)
            if box is None:
                break
        pred = head.predict(points, labels, box=box, mask_input=pred.low_res[best : best + 1])
        best = pred.best()
    return pred.logits[best], float(pred.scores[best])


def persam_predict(
    head: SamHead,
    context: PersamContext,
    emb: SamEmbedding,
    target: np.ndarray,
    prior: np.ndarray,
    config: PersamConfig,
) -> tuple[np.ndarray, float]:
    """Segment one object on an image whose embedding is set in ``head``.

    Args:
        target: (C,) target embedding, the raw masked mean (semantic prompting).
        prior: (H, W) location prior: points and the attention bias come from it (PerSAM
            uses :func:`similarity_map`; ``dinov2-sam`` passes DINOv2 correspondence).

    Returns:
        (H, W) float32 logits and the predicted IoU.
    """
    pos, neg = point_selection(prior)
    points = np.concatenate([pos, neg]) if config.negative_point else pos
    labels = np.array([1, 0] if config.negative_point else [1], np.int64)
    device = head.predictor.device
    attn = (
        attention_bias(head, emb, prior, config.attention_bias).to(device)
        if config.guided_attention
        else None
    )
    semantic = (
        torch.from_numpy(target).reshape(1, 1, -1).to(device) if config.semantic_prompt else None
    )
    with persam_prompts(context, attn, semantic):
        first = head.predict(points, labels, multimask=False)
    return cascade_refine(head, points, labels, first, 0, config.refine_steps)
