"""Patch-level matching of target tokens against example tokens (prototypes, nearest neighbours)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def patch_label_fractions(labels: np.ndarray, grid: tuple[int, int], ids: np.ndarray) -> np.ndarray:
    """Fraction of the painted pixels of each patch held by background and by each id.

    Args:
        labels: (H, W) int label image; -1 = unpainted (scribble mode), counted nowhere.
        grid: (h, w) patch grid of the tokens.
        ids: (K,) object ids.

    Returns:
        (K+1, h, w) float32; row 0 is background; rows sum to 1 where a patch holds a painted
        pixel and to 0 where it holds none (so a thin stroke makes its patches count fully).
    """
    onehot = np.stack([labels == 0] + [labels == k for k in ids]).astype(np.float32)
    resized = F.interpolate(torch.from_numpy(onehot)[None], size=grid, mode="area")[0]
    if (labels >= 0).all():
        return resized.numpy()
    painted = F.interpolate(
        torch.from_numpy((labels >= 0).astype(np.float32))[None, None], size=grid, mode="area"
    )[0]
    return (resized / painted.clamp_min(1e-8)).numpy()


def painted_patches(labels: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: the patches holding at least one painted pixel (label >= 0); every patch
    of a dense mask, only the patches a stroke crosses in scribble mode."""
    if (labels >= 0).all():
        return np.ones(grid, bool)
    painted = torch.from_numpy((labels >= 0).astype(np.float32))[None, None]
    return (F.interpolate(painted, size=grid, mode="area")[0, 0] > 0).numpy()


@dataclass(frozen=True)
class ExampleBank:
    """Example patch tokens grouped by class (0 = background, then the object ids).

    Attributes:
        ids: (K,) int64 object ids; class c > 0 is ``ids[c - 1]``.
        center: (D,) float32 mean of all example tokens, removed before every cosine so the
            component shared by all patches (position, global tone) does not dominate.
        tokens: per class, (n_c, D) float32 unit-norm centred tokens (n_c may be 0).
        prototypes: (K+1, D) float32 unit-norm class means weighted by the examples'
            weights (zeros where a class is empty).
        weights: per class, (n_c,) float32 weight of each token's example (None: all 1).
    """

    ids: np.ndarray
    center: np.ndarray
    tokens: list[np.ndarray]
    prototypes: np.ndarray
    weights: list[np.ndarray] | None = None


def center_tokens(tokens: np.ndarray, center: np.ndarray) -> np.ndarray:
    """(..., D) tokens minus ``center``, re-normalised to unit length."""
    out = tokens - center
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-8)


def build_bank(
    tokens: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    ids: np.ndarray,
    min_fraction: float = 0.5,
    weights: Sequence[float] | None = None,
) -> ExampleBank:
    """Collect the patches of every example whose class covers at least ``min_fraction``.

    Args:
        tokens: per example, (h, w, D) float32 unit-norm tokens.
        labels: per example, (H, W) int labels.
        ids: (K,) object ids to keep.
        weights: per example, its weight in (0, 1] (default 1): prototypes are weighted
            means, and :func:`class_scores` trusts a weak example's patches less.
    """
    weights = [1.0] * len(tokens) if weights is None else list(weights)
    per_class: list[list[np.ndarray]] = [[] for _ in range(len(ids) + 1)]
    per_weight: list[list[np.ndarray]] = [[] for _ in range(len(ids) + 1)]
    center = np.average(
        [t.reshape(-1, t.shape[-1]).mean(0) for t in tokens], axis=0, weights=weights
    )
    for tok, lab, weight in zip(tokens, labels, weights, strict=True):
        tok = center_tokens(tok, center)
        frac = patch_label_fractions(lab, tok.shape[:2], ids)
        best = frac.argmax(0)
        for c in range(len(ids) + 1):
            keep = (best == c) & (frac[c] >= min_fraction)
            if c > 0 and not keep.any() and frac[c].max() > 0:  # small: its best patch
                keep = frac[c] == frac[c].max()
            per_class[c].append(tok[keep])
            per_weight[c].append(np.full(int(keep.sum()), weight, np.float32))
    stacked = [np.concatenate(chunks).astype(np.float32) for chunks in per_class]
    token_weights = [np.concatenate(chunks) for chunks in per_weight]
    protos = np.stack(
        [
            np.average(t, axis=0, weights=w) if len(t) else np.zeros(t.shape[1], np.float32)
            for t, w in zip(stacked, token_weights, strict=True)
        ]
    )
    protos /= np.maximum(np.linalg.norm(protos, axis=1, keepdims=True), 1e-8)
    return ExampleBank(
        ids=ids,
        center=center.astype(np.float32),
        tokens=stacked,
        prototypes=protos.astype(np.float32),
        weights=token_weights,
    )


def class_scores(
    target: np.ndarray, bank: ExampleBank, proto_weight: float = 0.2, topk: int = 3
) -> np.ndarray:
    """Similarity of every target patch to every class.

    score_c = (1 − proto_weight) · mean of the top-k cosines to class-c example patches
            + proto_weight · cosine to the class-c prototype.

    A patch of an example with weight w < 1 counts as w · its cosine + (1 − w) · the
    prototype's cosine: a weak example can only pull toward what the class already holds.

    Args:
        target: (h, w, D) float32 unit-norm tokens (centred here with the bank's centre).

    Returns:
        (K+1, h, w) float32; classes without example patches get -1.
    """
    h, w, dim = target.shape
    flat = torch.from_numpy(center_tokens(target, bank.center).reshape(-1, dim).astype(np.float32))
    out = np.full((len(bank.tokens), h * w), -1.0, np.float32)
    protos = torch.from_numpy(bank.prototypes)
    for c, tokens in enumerate(bank.tokens):
        if len(tokens) == 0:
            continue
        proto_sim = flat @ protos[c]
        sims = flat @ torch.from_numpy(tokens).T
        if bank.weights is not None and (bank.weights[c] < 1).any():
            trust = torch.from_numpy(bank.weights[c])
            sims = trust * sims + (1 - trust) * proto_sim[:, None]
        nn = sims.topk(min(topk, sims.shape[1]), dim=1).values.mean(1)
        out[c] = ((1 - proto_weight) * nn + proto_weight * proto_sim).numpy()
    return out.reshape(-1, h, w)


def scores_to_probabilities(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax over classes of (K+1, h, w) scores / temperature."""
    return torch.softmax(torch.from_numpy(scores) / temperature, dim=0).numpy()
