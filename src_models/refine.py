"""Edge-aware upsampling of patch-level maps to pixels (guided filter, He et al. 2013)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi


def upsample(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(C, h, w) → (C, H, W) float32, bilinear."""
    t = torch.from_numpy(np.ascontiguousarray(maps, np.float32))[None]
    return F.interpolate(t, size=shape, mode="bilinear", align_corners=False)[0].numpy()


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Gray-guide guided filter.

    Args:
        guide: (H, W) float32 image, about [0, 1].
        src: (C, H, W) float32 maps to filter.
        radius: box radius in pixels (about one patch).
        eps: regulariser; smaller follows edges more closely.

    Returns:
        (C, H, W) float32.
    """
    size = 2 * radius + 1

    def box(x: np.ndarray) -> np.ndarray:
        return ndi.uniform_filter(x, size=size, mode="reflect")

    mean_i = box(guide)
    var_i = box(guide * guide) - mean_i**2
    out = np.empty_like(src)
    for c, p in enumerate(src):
        mean_p = box(p)
        a = (box(guide * p) - mean_i * mean_p) / (var_i + eps)
        b = mean_p - a * mean_i
        out[c] = box(a) * guide + box(b)
    return out


def refine_probabilities(
    probs: np.ndarray, guide: np.ndarray, radius: int, eps: float = 1e-3
) -> np.ndarray:
    """Upsample (C, h, w) class probabilities to the guide's (H, W) and snap them to its edges.

    Returns:
        (C, H, W) float32 probabilities (non-negative, summing to 1 over C).
    """
    up = upsample(probs, guide.shape)
    if radius > 0:
        up = np.clip(guided_filter(guide.astype(np.float32), up, radius, eps), 0, None)
        up /= np.maximum(up.sum(0, keepdims=True), 1e-8)
    return up.astype(np.float32)
