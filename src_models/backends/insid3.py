"""`dinov3-insid3` / `dinov2-insid3`: INSID3 training-free segmentation on frozen ViT tokens.

One backbone pass per slice (cached by the engine); the head debiases the tokens, matches
them against the examples, clusters the slice and aggregates clusters (see
:mod:`src_models.heads.insid3`), then refines the patch mask to pixels on the CPU with the
guided filter of :mod:`src_models.refine` (the official CRF needs a CUDA library).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from src_models.backbones.dinov2 import PatchEncoder, build_dinov2
from src_models.backbones.dinov3 import build_dinov3, weights_tag
from src_models.backbones.encoder import imagenet_normalize
from src_models.backends.base import BackendBase, labels_from_probs, object_ids, trusted
from src_models.backends.configs import Insid3Config
from src_models.backends.dinov2 import PatchFeatures
from src_models.cache import model_tag
from src_models.channels import to_three
from src_models.device import pick_device, pick_dtype
from src_models.disk_cache import DiskCache, make_key, shape_dtype
from src_models.heads import insid3 as head
from src_models.heads import insid3_debias as debiasing
from src_models.matching import painted_patches, patch_label_fractions
from src_models.refine import refine_probabilities, upsample
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example

# (family, device type) → input size when none is given; see docs/backends/insid3.md
DEFAULT_INPUT_SIZE: dict[tuple[str, str], int] = {
    ("dinov3", "cpu"): 512,
    ("dinov3", "cuda"): 1024,
    ("dinov2", "cpu"): 518,
    ("dinov2", "cuda"): 518,
}


def head_params(c: Insid3Config) -> head.Insid3Params:
    """The head's thresholds from the backend options."""
    return head.Insid3Params(
        c.tau, c.merge_threshold, c.forward_quantile, c.negative_filter, c.temperature
    )


def input_size(c: Insid3Config) -> int:
    """The resolved input side (``build_insid3_backend`` fills a None ``input_size``)."""
    if c.input_size is None:
        raise ValueError("input_size is resolved by build_insid3_backend")
    return c.input_size


def debias_cache(root: Path | None = None) -> DiskCache:
    """Where positional bases are stored: ``<user cache>/napari-incontext/insid3_debias``."""
    return DiskCache("insid3_debias", root, max_bytes=2**28)


@dataclass
class PositionalDebias:
    """Positional bases per patch grid, estimated from a black image (as the official code).

    Bases are kept in memory and, for real weights, on disk (:func:`debias_cache`) keyed by
    backbone, grid, dtype and the weights file (name, size, mtime), so each (model, input
    size) costs one extra forward pass once per machine.
    """

    encoder: PatchEncoder
    key: str
    on_disk: bool
    _bases: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def disk_key(self, grid: tuple[int, int]) -> str:
        return make_key(self.key, f"{grid[0]}x{grid[1]}")

    def has(self, grid: tuple[int, int]) -> bool:
        return grid in self._bases

    def basis(self, grid: tuple[int, int]) -> np.ndarray:
        """(D, r) float32 positional basis for an (h, w) patch grid."""
        if grid not in self._bases:
            found = self._load(grid) if self.on_disk else None
            if found is None:
                found = debiasing.positional_basis(self.constant_tokens(grid))[0]
                self._save(grid, found)
            self._bases[grid] = found
        return self._bases[grid]

    @torch.inference_mode()
    def constant_tokens(self, grid: tuple[int, int]) -> np.ndarray:
        """(h, w, D) float32 unit-norm tokens of a black image, ``(0 − mean) / std``.

        Always computed in float32 (a float32 copy of a bf16/fp16 model for this one
        forward): the basis is an SVD of the small position-dependent part of these tokens,
        which bf16 rounding would swamp (measured: an unrelated subspace on random weights).
        """
        enc = self.encoder
        model = enc.model if enc.dtype == torch.float32 else copy.deepcopy(enc.model).float()
        black = torch.zeros(1, 3, grid[0] * enc.patch, grid[1] * enc.patch)
        x = imagenet_normalize(black).to(enc.device)
        tokens = model.forward_features(x)[0, model.num_prefix_tokens :].float()
        return debiasing.unit(tokens).reshape(*grid, -1).cpu().numpy()

    def _load(self, grid: tuple[int, int]) -> np.ndarray | None:
        model: Any = self.encoder.model
        width = int(model.embed_dim)
        return debias_cache().get(self.disk_key(grid), shape_dtype((width, None), np.float32))

    def _save(self, grid: tuple[int, int], basis: np.ndarray) -> None:
        if self.on_disk:
            debias_cache().put(self.disk_key(grid), basis.astype(np.float32))


@dataclass(frozen=True)
class _Prepared:
    """An example slice's tokens after debiasing: (h, w, D) original and debiased."""

    tokens: np.ndarray
    debiased: np.ndarray
    labels: np.ndarray
    weight: float = 1.0


class Insid3Backend(BackendBase):
    """INSID3 on a frozen ViT; each label id is segmented separately, unannotated = negatives."""

    _models = ("encoder", "debiaser")

    def __init__(
        self, encoder: PatchEncoder, config: Insid3Config, debiaser: PositionalDebias
    ) -> None:
        self.name = f"{config.family}-insid3"
        self.encoder = encoder
        self.config = config
        self.debiaser = debiaser
        self._ids = np.zeros(0, np.int64)
        self._refs: list[head.Reference] = []

    @property
    def feature_key(self) -> str:
        c, enc = self.config, self.encoder
        model = model_tag(enc.model)
        return f"insid3:{c.backbone}:{input_size(c)}:{enc.dtype}:{model}:{c.channels}"

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> PatchFeatures:
        """Tokens and guide; the first slice of a grid also times ``debias_basis``."""
        return self.compute_features_batch([image], timer)[0]

    def compute_features_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[PatchFeatures]:
        self.check_open()
        channels = self.config.chosen_channels
        batch = self.encoder.encode_batch([to_three(image, channels) for image in images], timer)
        for tokens in batch:
            if not self.debiaser.has(tokens.shape[:2]):
                with timer("debias_basis"):
                    self.debiaser.basis(tokens.shape[:2])
        return [
            PatchFeatures(t, image.mean(-1).astype(np.float16))
            for t, image in zip(batch, images, strict=True)
        ]

    def _debias(self, tokens: np.ndarray) -> np.ndarray:
        basis = self.debiaser.basis(tokens.shape[:2])
        c = self.config
        n = c.debias_components
        if n is None:
            n = debiasing.default_components(tokens.shape[-1], c.debias_scaled)
        return debiasing.debias(tokens, basis, n)

    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        """Build one :class:`~src_models.heads.insid3.Reference` per label id; the prototype is
        weighted by the examples' weights."""
        examples = trusted(examples)
        ids = object_ids(examples)
        if len(ids) == 0:
            raise ValueError("the examples hold no labelled pixels: paint at least one object")
        prepared = [
            _Prepared(e.features.tokens, self._debias(e.features.tokens), e.labels, e.weight)
            for e in examples
        ]
        self._refs = [self._reference(prepared, int(k)) for k in ids]
        self._ids = ids

    def _reference(self, prepared: Sequence[_Prepared], k: int) -> head.Reference:
        shots, masks, negatives, weights = [], [], [], []
        patch = self.encoder.patch
        for p in prepared:
            grid = p.tokens.shape[:2]
            frac = patch_label_fractions(p.labels, grid, np.array([k]))[1]
            negatives.append(p.debiased[(frac == 0) & painted_patches(p.labels, grid)])
            if frac.max() > 0:
                shots.append(p.debiased)
                size = (grid[0] * patch, grid[1] * patch)
                masks.append(head.patch_mask(p.labels == k, grid, size))
                weights.append(p.weight)
        return head.make_reference(shots, masks, negatives, weights)

    def predict(
        self, features: PatchFeatures, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels (H, W) int32 with the example ids and confidence (H, W) float32 in [0, 1]."""
        self.check_open()
        if not self._refs:
            raise RuntimeError("call fit() with at least one example before predict()")
        c = self.config
        tokens = features.tokens
        with timer("debias"):
            debiased = self._debias(tokens)
        with timer("clustering"):
            clusters = head.cluster_patches(tokens, c.tau)
        with timer("matching"):
            params = head_params(c)
            fg, votes = zip(
                *(head.segment_object(r, tokens, debiased, clusters, params) for r in self._refs),
                strict=True,
            )
            fg = head.resolve_overlaps(np.stack(fg), np.stack(votes))
            probs = np.concatenate([np.prod(1.0 - fg, axis=0, keepdims=True), fg])
            probs = (probs / np.maximum(probs.sum(0, keepdims=True), 1e-8)).astype(np.float32)
        with timer("refine"):
            if c.refine:
                radius = max(1, round(shape[0] / tokens.shape[0]))
                guide = features.guide.astype(np.float32)
                probs = refine_probabilities(probs, guide, radius, c.refine_eps)
            else:
                probs = upsample_hard(probs, shape)
        return labels_from_probs(probs, np.concatenate([[0], self._ids]))


def upsample_hard(probs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The official upsampling: each class's 0/1 patch mask bilinear to pixels, > 0.5.

    Args:
        probs: (C, h, w) class probabilities (class 0 = background).
        shape: (H, W).

    Returns:
        (C, H, W) float32, nonzero only for the pixel's class (background where no upsampled
        mask exceeds 0.5); the value is the bilinear patch probability of that class, so
        ``labels_from_probs`` gives the official mask and a confidence.
    """
    classes = np.arange(len(probs))[:, None, None]
    hard = upsample((classes == probs.argmax(0)[None]).astype(np.float32), shape)
    winner = np.where((hard > 0.5).any(0), hard.argmax(0), 0)[None]
    confidence = np.take_along_axis(upsample(probs, shape), winner, 0)
    return np.where(classes == winner, np.maximum(confidence, 1e-6), 0.0).astype(np.float32)


def build_insid3_backend(
    config: Insid3Config, *, device: str = "auto", weights: str | Path | None = None
) -> Insid3Backend:
    """Build an INSID3 backend; ``weights="random"`` gives an untrained backbone (tests).

    Missing DINOv3 weights raise RuntimeError saying how to request access and where to put
    the file; ``backbone="dinov2_vits14"`` is the ungated fallback.
    """
    size = config.backbone.split("_")[1]
    model = (
        build_dinov3(size, weights) if config.family == "dinov3" else build_dinov2(size, weights)
    )
    torch_device = pick_device(device)
    if config.input_size is None:
        kind = "cuda" if torch_device.type == "cuda" else "cpu"
        config = replace(config, input_size=DEFAULT_INPUT_SIZE[(config.family, kind)])
    dtype = pick_dtype(config.dtype, torch_device)
    encoder = PatchEncoder(model, input_size(config), torch_device, dtype)
    tag = weights_tag(weights, config.backbone)
    key = f"{config.backbone}:{encoder.dtype}:{tag}:black"  # basis of a black image
    return Insid3Backend(
        encoder, config, PositionalDebias(encoder, key, on_disk=tag not in ("random", "unknown"))
    )
