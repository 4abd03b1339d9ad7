"""INSID3's positional debias: the channel-space basis of the positional signal that a ViT's
tokens carry whatever the image (from the tokens of a constant image), and its removal."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def unit(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise over the last axis (zeros stay zeros)."""
    return F.normalize(x, dim=-1, eps=1e-8)


def positional_basis(constant_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Channel-space basis of the positional signal, from the tokens of a constant image.

    Args:
        constant_tokens: (h, w, D) tokens of a black image (``(0 − mean) / std`` after
            ImageNet normalisation, as the official code).

    Returns:
        basis (D, r) float32 orthonormal columns sorted by singular value, r = min(D, h·w − 1),
        and the (r,) float32 singular values.
    """
    e = unit(torch.from_numpy(constant_tokens).double().reshape(-1, constant_tokens.shape[-1])).T
    e = e - e.mean(dim=1, keepdim=True)  # centre each channel over positions
    u, s, _ = torch.linalg.svd(e, full_matrices=False)
    rank = min(e.shape[0], e.shape[1] - 1)
    return u[:, :rank].float().numpy(), s[:rank].float().numpy()


OFFICIAL_COMPONENTS = 500


def default_components(dim: int, scaled: bool = False) -> int:
    """Positional components removed from tokens of width ``dim``.

    The official code removes 500 whatever the width (``--svd-comps``, tuned on ViT-L, 1024
    wide). On a backbone no wider than that (ViT-S, 384) it would remove every channel and
    leave rounding noise, so there — and for every width when ``scaled`` — the 500 are
    scaled to the width (500/1024 · dim: 188 for ViT-S, 375 for ViT-B).
    """
    if scaled or dim <= OFFICIAL_COMPONENTS:
        return round(dim * OFFICIAL_COMPONENTS / 1024)
    return OFFICIAL_COMPONENTS


def debias(tokens: np.ndarray, basis: np.ndarray, n_components: int) -> np.ndarray:
    """Project tokens onto the orthogonal complement of the top positional components.

    Args:
        tokens: (..., D) float32 unit-norm tokens.
        basis: (D, r) float32 from :func:`positional_basis`.
        n_components: number of leading basis columns removed (clamped to r).

    Returns:
        (..., D) float32 unit-norm debiased tokens.
    """
    u = torch.from_numpy(basis[:, : max(0, min(n_components, basis.shape[1]))])
    x = torch.from_numpy(np.ascontiguousarray(tokens, np.float32))
    return unit(x - (x @ u) @ u.T).numpy()
