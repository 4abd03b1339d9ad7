"""SEGIC mask loss: BCE + Dice on importance-sampled points (PointRend / Mask2Former style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from src_models.losses import dice_loss


def point_sample(values: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of (B, C, H, W) at (B, P, 2) xy coordinates in [0, 1] → (B, C, P)."""
    grid = (2 * coords - 1)[:, :, None]
    return F.grid_sample(values, grid, mode="bilinear", align_corners=False)[..., 0]


@torch.no_grad()
def importance_points(
    logits: torch.Tensor, count: int, oversample: float = 3.0, importance: float = 0.75
) -> torch.Tensor:
    """Points where the prediction is most uncertain, plus uniform ones.

    Draws ``oversample · count`` uniform points, keeps the ``importance · count`` with the
    smallest |logit|, and adds ``(1 − importance) · count`` fresh uniform points.

    Args:
        logits: (B, 1, h, w) float mask logits.

    Returns:
        (B, count, 2) float xy coordinates in [0, 1].
    """
    batch = logits.shape[0]
    drawn = torch.rand(batch, int(oversample * count), 2, device=logits.device)
    uncertainty = -point_sample(logits.float(), drawn)[:, 0].abs()
    n_important = int(importance * count)
    top = uncertainty.topk(n_important, dim=1).indices
    chosen = torch.gather(drawn, 1, top[..., None].expand(-1, -1, 2))
    uniform = torch.rand(batch, count - n_important, 2, device=logits.device)
    return torch.cat([chosen, uniform], dim=1)


def mask_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    num_points: int = 12544,
    oversample: float = 3.0,
    importance: float = 0.75,
    bce_weight: float = 1.0,
    dice_weight: float = 1.0,
) -> torch.Tensor:
    """BCE + Dice between low-resolution logits and full-resolution targets on sampled points.

    Args:
        logits: (B, 1, h, w) float mask logits covering the padded input frame.
        targets: (B, 1, S, S) float {0, 1} masks in the same frame.

    Returns:
        Scalar loss.
    """
    coords = importance_points(logits, num_points, oversample, importance)
    point_logits = point_sample(logits, coords)[:, 0]
    point_targets = point_sample(targets.float(), coords)[:, 0]
    bce = F.binary_cross_entropy_with_logits(point_logits, point_targets)
    return bce_weight * bce + dice_weight * dice_loss(point_logits, point_targets)
