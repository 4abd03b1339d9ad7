"""INSID3 head: training-free in-context segmentation from frozen ViT patch tokens.

Pure functions on numpy arrays (torch inside for the matrix products). Shapes: a slice's
patch grid is (h, w), token width D; "unit-norm" means L2-normalised over D.

Steps (INSID3; docs/parity.md): positional debias → reference prototype → candidates
(forward ∧ backward, K-shot majority vote) → agglomerative clustering of the target's
original tokens → seed cluster → aggregation by cross × intra × area > threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from src_models.heads.insid3_debias import unit


@dataclass(frozen=True)
class Insid3Params:
    """Thresholds of the INSID3 head (defaults from the paper/official code).

    Attributes:
        tau: clustering similarity threshold; clusters stop merging at cosine distance 1 − tau.
        merge_threshold: keep clusters whose cross × intra × area score exceeds this.
        forward_quantile: when no target patch has positive similarity to the prototype,
            the forward candidates are the patches above this quantile (top 10%).
        negative_filter: drop non-seed clusters whose debiased prototype is closer to the
            examples' negative (unannotated) prototype than to the object prototype.
        temperature: width of the sigmoid that turns a cluster's score into a probability
            (probability 0.5 exactly at ``merge_threshold``).
    """

    tau: float = 0.6
    merge_threshold: float = 0.2
    forward_quantile: float = 0.9
    negative_filter: bool = True
    temperature: float = 0.05


def patch_mask(
    mask: np.ndarray, grid: tuple[int, int], input_size: tuple[int, int] | None = None
) -> np.ndarray:
    """(H, W) bool pixel mask → (h, w) bool patch mask by the official rule.

    As the official ``load_mask`` + ``downsample_mask``: nearest resize to the model input
    size, bilinear to the grid and > 0.5; if that is empty, nearest to the grid; if that is
    empty too, the patch of the mask's centroid. An empty mask gives an empty patch mask.

    Args:
        mask: (H, W) bool.
        grid: (h, w) patch grid.
        input_size: (h·p, w·p) model input size, or None when ``mask`` is already at it.
    """
    m = torch.from_numpy(np.ascontiguousarray(mask, np.float32))[None, None]
    if input_size is not None and tuple(m.shape[-2:]) != tuple(input_size):
        m = F.interpolate(m, size=tuple(input_size), mode="nearest")
    down = F.interpolate(m, size=grid, mode="bilinear", align_corners=False)[0, 0] > 0.5
    if not down.any():
        down = F.interpolate(m, size=grid, mode="nearest")[0, 0] > 0.5
    if not down.any() and bool(m.any()):
        center = torch.argwhere(m[0, 0] > 0).float().mean(dim=0)
        scale = m.shape[-1] // grid[1]
        cy, cx = (center / scale).int().tolist()
        down[min(cy, grid[0] - 1), min(cx, grid[1] - 1)] = True
    return down.numpy()


def prototype(
    tokens: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """Mean of each shot's masked tokens, averaged over shots, unit-norm.

    Args:
        tokens: per shot, (h, w, D) debiased tokens.
        masks: per shot, (h, w) bool patch masks (empty shots are skipped).
        weights: per shot, its weight in the average over shots (default 1).

    Returns:
        (D,) float32 (zeros when every mask is empty).
    """
    weights = [1.0] * len(tokens) if weights is None else list(weights)
    kept = [(t[m].mean(0), w) for t, m, w in zip(tokens, masks, weights, strict=True) if m.any()]
    if not kept:
        return np.zeros(tokens[0].shape[-1], np.float32)
    mean = np.average([k[0] for k in kept], axis=0, weights=[k[1] for k in kept])
    return unit(torch.from_numpy(mean.astype(np.float32))).numpy()


def forward_candidates(target: np.ndarray, proto: np.ndarray, quantile: float = 0.9) -> np.ndarray:
    """(h, w, D) debiased target · (D,) prototype > 0, or the top (1 − quantile) if none is.

    Returns:
        (h, w) bool.
    """
    sim = target @ proto
    out = sim > 0
    return out if out.any() else sim > np.quantile(sim, quantile)


def backward_votes(
    target: np.ndarray, refs: Sequence[np.ndarray], masks: Sequence[np.ndarray]
) -> np.ndarray:
    """Count the shots in which a target patch's nearest reference patch lies in the mask.

    Args:
        target: (h, w, D) debiased target tokens.
        refs: per shot, (h_s, w_s, D) debiased reference tokens.
        masks: per shot, (h_s, w_s) bool patch masks.

    Returns:
        (h, w) int32 votes in 0..K.
    """
    flat = torch.from_numpy(np.asarray(target, np.float32).reshape(-1, target.shape[-1]))
    votes = np.zeros(flat.shape[0], np.int32)
    for ref, mask in zip(refs, masks, strict=True):
        ref_flat = torch.from_numpy(np.asarray(ref, np.float32).reshape(-1, ref.shape[-1]))
        nearest = (flat @ ref_flat.T).argmax(1).numpy()
        votes += mask.reshape(-1)[nearest]
    return votes.reshape(target.shape[:2])


def candidates(
    target: np.ndarray,
    refs: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    proto: np.ndarray,
    quantile: float = 0.9,
) -> np.ndarray:
    """Forward ∧ backward candidates, the backward vote a majority (≥ ⌈K/2⌉) of the K shots.

    Returns:
        (h, w) bool.
    """
    votes = backward_votes(target, refs, masks)
    return forward_candidates(target, proto, quantile) & (votes >= math.ceil(len(refs) / 2))


def cluster_patches(tokens: np.ndarray, tau: float = 0.6) -> np.ndarray:
    """Agglomerative clustering (average linkage, cosine distance) of one slice's tokens.

    Args:
        tokens: (h, w, D) unit-norm original (not debiased) tokens.
        tau: merging stops at cosine distance 1 − tau.

    Returns:
        (h, w) int64 cluster ids 0..n−1.
    """
    from sklearn.cluster import AgglomerativeClustering

    flat = torch.from_numpy(tokens.reshape(-1, tokens.shape[-1])).double()
    flat = unit(flat)
    if flat.shape[0] < 2:
        return np.zeros(tokens.shape[:2], np.int64)
    dist = (1.0 - flat @ flat.T).clamp_(min=0.0).numpy()
    np.fill_diagonal(dist, 0.0)
    model = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=1.0 - tau
    )
    return model.fit_predict(dist).reshape(tokens.shape[:2]).astype(np.int64)


def cluster_prototypes(tokens: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit-norm mean token of every cluster.

    Args:
        tokens: (h, w, D) float32; labels: (h, w) int cluster ids 0..n−1.

    Returns:
        (n, D) float32.
    """
    flat = torch.from_numpy(np.ascontiguousarray(tokens.reshape(-1, tokens.shape[-1]), np.float32))
    ids = torch.from_numpy(labels.reshape(-1).astype(np.int64))
    sums = torch.zeros(int(ids.max()) + 1, flat.shape[1]).index_add_(0, ids, flat)
    return unit(sums).numpy()


def select_seed(
    labels: np.ndarray, cand: np.ndarray, deb_protos: np.ndarray, proto: np.ndarray
) -> int:
    """The cluster touching the candidates whose debiased prototype best matches ``proto``.

    Args:
        labels: (h, w) cluster ids; cand: (h, w) bool candidates;
        deb_protos: (n, D) debiased cluster prototypes; proto: (D,) reference prototype.

    Returns:
        the seed cluster id, or −1 when there is no candidate.
    """
    touching = np.unique(labels[cand])
    if len(touching) == 0:
        return -1
    return int(touching[np.argmax(deb_protos[touching] @ proto)])


def cluster_scores(
    labels: np.ndarray,
    cand: np.ndarray,
    seed: int,
    target: np.ndarray,
    target_deb: np.ndarray,
    proto: np.ndarray,
) -> np.ndarray:
    """Aggregation score of every cluster: cross × intra × area.

    cross = mean debiased cosine to the prototype over the cluster; intra = cosine between
    the cluster's and the seed's original-space prototypes; area = fraction of the cluster
    that is candidate (1 for the seed).

    Returns:
        (n,) float32.
    """
    n = int(labels.max()) + 1
    flat = labels.reshape(-1)
    sizes = np.bincount(flat, minlength=n).astype(np.float32)
    cross = np.bincount(flat, weights=(target_deb @ proto).reshape(-1), minlength=n) / sizes
    protos = cluster_prototypes(target, labels)
    intra = protos @ protos[seed]
    area = np.bincount(flat, weights=cand.reshape(-1).astype(np.float64), minlength=n) / sizes
    area[seed] = 1.0
    return (cross * intra * area).astype(np.float32)


@dataclass(frozen=True)
class Reference:
    """One object's examples, prepared for matching.

    Attributes:
        tokens: per shot, (h_s, w_s, D) debiased tokens of a slice that contains the object.
        masks: per shot, (h_s, w_s) bool patch masks of the object.
        proto: (D,) unit-norm object prototype (debiased).
        negative: (D,) unit-norm prototype of every unannotated / other-object example patch
            (debiased), zeros when there is none.
    """

    tokens: list[np.ndarray]
    masks: list[np.ndarray]
    proto: np.ndarray
    negative: np.ndarray


def make_reference(
    shots: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    negatives: Sequence[np.ndarray],
    weights: Sequence[float] | None = None,
) -> Reference:
    """Build a :class:`Reference`.

    Args:
        shots: per shot, (h, w, D) debiased tokens; masks: per shot, (h, w) bool patch masks.
        negatives: (n_i, D) debiased tokens of the examples' patches outside the object.
        weights: per shot, its weight in the prototype (default 1).
    """
    neg = np.concatenate(
        [n for n in negatives if len(n)] or [np.zeros((0, shots[0].shape[-1]), np.float32)]
    )
    neg_proto = (
        unit(torch.from_numpy(neg.mean(0))).numpy()
        if len(neg)
        else np.zeros(shots[0].shape[-1], np.float32)
    )
    return Reference(
        list(shots), list(masks), prototype(shots, masks, weights), neg_proto.astype(np.float32)
    )


def segment_clusters(
    reference: Reference,
    target: np.ndarray,
    target_deb: np.ndarray,
    labels: np.ndarray,
    params: Insid3Params = Insid3Params(),
    cand: np.ndarray | None = None,
) -> np.ndarray:
    """Score every target cluster for one object.

    Args:
        reference: the object's examples.
        target: (h, w, D) original unit-norm target tokens; target_deb: the debiased ones.
        labels: (h, w) cluster ids of ``target`` (:func:`cluster_patches`).
        cand: (h, w) bool candidates when already computed (else :func:`candidates`).

    Returns:
        (n,) float32 probability per cluster, sigmoid((score − merge_threshold)/temperature);
        all zeros when there is no candidate.
    """
    n = int(labels.max()) + 1
    if cand is None:
        cand = candidates(
            target_deb, reference.tokens, reference.masks, reference.proto, params.forward_quantile
        )
    deb_protos = cluster_prototypes(target_deb, labels)
    seed = select_seed(labels, cand, deb_protos, reference.proto)
    if seed < 0:
        return np.zeros(n, np.float32)
    scores = cluster_scores(labels, cand, seed, target, target_deb, reference.proto)
    if params.negative_filter and reference.negative.any():
        closer_to_negative = deb_protos @ reference.negative > deb_protos @ reference.proto
        closer_to_negative[seed] = False
        scores[closer_to_negative] = -np.inf
    logits = (scores - params.merge_threshold) / params.temperature
    return (1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))).astype(np.float32)


def segment_object(
    reference: Reference,
    target: np.ndarray,
    target_deb: np.ndarray,
    labels: np.ndarray,
    params: Insid3Params = Insid3Params(),
) -> tuple[np.ndarray, np.ndarray]:
    """One object on one target slice.

    Returns:
        (h, w) float32 foreground probability (its cluster's) and (h, w) float32 fraction of
        shots whose nearest reference patch lies in the object's mask (backward vote).
    """
    votes = backward_votes(target_deb, reference.tokens, reference.masks)
    forward = forward_candidates(target_deb, reference.proto, params.forward_quantile)
    cand = forward & (votes >= math.ceil(len(reference.tokens) / 2))
    probs = segment_clusters(reference, target, target_deb, labels, params, cand)[labels]
    return probs, (votes / len(reference.tokens)).astype(np.float32)


def resolve_overlaps(probs: np.ndarray, votes: np.ndarray) -> np.ndarray:
    """Give a patch claimed by several objects (probability > 0.5) to the best-voted one.

    Clusters are found per object, so two objects that look alike can share a cluster; the
    backward vote says which object's example patches a target patch resembles most.

    Args:
        probs: (K, h, w) per-object probabilities; votes: (K, h, w) backward vote fractions.

    Returns:
        (K, h, w) float32 with the losers' probabilities set to 0 on contested patches.
    """
    claimed = probs > 0.5
    contested = claimed.sum(0) > 1
    if not contested.any():
        return probs
    winner = np.argmax(np.where(claimed, votes + 1e-3 * probs, -1.0), axis=0)
    loser = claimed & contested[None] & (np.arange(len(probs))[:, None, None] != winner[None])
    return np.where(loser, 0.0, probs).astype(np.float32)
