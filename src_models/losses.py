"""Mask losses shared by the trainable heads (PerSAM-F's weights, SEGIC's decoder)."""

from __future__ import annotations

import torch


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 − soft dice with +1 smoothing, per mask, averaged over masks.

    Args:
        logits: (..., N) float logits; every leading index is one mask of N points/pixels.
        targets: same shape, {0, 1} floats.

    Returns:
        Scalar ``mean(1 − (2·Σ p·t + 1) / (Σ p + Σ t + 1))`` with p = sigmoid(logits).
    """
    probs = logits.sigmoid()
    numerator = 2 * (probs * targets).sum(-1) + 1
    return (1 - numerator / (probs.sum(-1) + targets.sum(-1) + 1)).mean()


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Mean sigmoid focal loss (Lin et al.), torchvision's implementation."""
    from torchvision.ops import sigmoid_focal_loss

    return sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="mean")
