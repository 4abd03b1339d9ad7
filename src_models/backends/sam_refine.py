"""SAM refinement for any backend: each proposed object is re-segmented by SAM from its box
and its mask (as a low-res mask prompt).

``SamRefined(inner, encoder, config)`` implements the Backend protocol, so the engine needs
no change: ``build_backend("classic", sam_refine="vit_b")`` wraps any registered backend.
To refine only chosen slices, run the wrapped backend with ``propagate(..., targets=[...])``
or call :func:`refine_labels` on one slice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from src_models.backends.base import Backend
from src_models.cache import model_tag
from src_models.sam.persam import mask_box
from src_models.sam.predictor import SamEmbedding, SamEncoder, SamHead, combine_objects
from src_models.types import Example


@dataclass(frozen=True)
class SamRefineConfig:
    """How proposals are turned into SAM prompts.

    Attributes:
        use_box: prompt with the bounding box of each object's proposal.
        use_mask: prompt with the proposal itself as low-res mask logits.
        multimask: ask SAM for three masks and keep the best-scored one.
        min_pixels: objects with fewer proposed pixels are left as proposed.
        keep_empty: when SAM returns an empty mask, keep the proposal for that object.
    """

    use_box: bool = True
    use_mask: bool = True
    multimask: bool = False
    min_pixels: int = 4
    keep_empty: bool = True

    def __post_init__(self) -> None:
        if not (self.use_box or self.use_mask):
            raise ValueError("SAM refinement needs a prompt: set use_box or use_mask (or both)")


def refine_labels(
    head: SamHead, emb: SamEmbedding, labels: np.ndarray, config: SamRefineConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Refine every object of an (H, W) int label image with SAM.

    Args:
        head: the SAM head; ``emb`` is set on it here.
        emb: the slice's SAM embedding.
        labels: (H, W) int proposal (0 = background).

    Returns:
        labels (H, W) int32 and confidence (H, W) float32 in [0, 1].
    """
    config = config or SamRefineConfig()
    head.set_embedding(emb)
    ids = [int(k) for k in np.unique(labels) if k != 0]
    logits: list[np.ndarray | None] = []
    for k in ids:
        mask = labels == k
        if mask.sum() < config.min_pixels:
            logits.append(np.where(mask, 10.0, -10.0).astype(np.float32))
            continue
        box = mask_box(mask) if config.use_box else None
        mask_input = head.mask_to_low_res(emb, mask) if config.use_mask else None
        pred = head.predict(box=box, mask_input=mask_input, multimask=config.multimask)
        out = pred.logits[pred.best()]
        if config.keep_empty and not (out > 0).any():
            out = np.where(mask, 10.0, -10.0).astype(np.float32)
        logits.append(out)
    return combine_objects(ids, logits, labels.shape)


@dataclass(frozen=True)
class RefinedFeatures:
    """Features of the inner backend plus the slice's SAM embedding."""

    inner: Any
    sam: SamEmbedding


class SamRefined:
    """Wraps a backend: its proposals are refined by SAM (box + mask prompt per object)."""

    def __init__(
        self, inner: Backend, encoder: SamEncoder, config: SamRefineConfig | None = None
    ) -> None:
        self.inner = inner
        self.encoder = encoder
        self.head = SamHead(encoder.sam)
        self.config = config or SamRefineConfig()
        self.name = f"{inner.name}+sam"
        self.last_timings: dict[str, float] = {}
        self.last_predict_timings: dict[str, float] = {}

    @property
    def feature_key(self) -> str:
        return f"{self.inner.feature_key}|{self.encoder.key}:{model_tag(self.encoder.sam)}"

    def compute_features(self, image: np.ndarray) -> RefinedFeatures:
        inner = self.inner.compute_features(image)
        timings = dict(getattr(self.inner, "last_timings", {}))
        sam = self.encoder(image)
        timings.update(self.encoder.last_timings)
        self.last_timings = timings
        return RefinedFeatures(inner, sam)

    def fit(self, examples: Sequence[Example]) -> None:
        self.inner.fit([Example(e.index, e.features.inner, e.labels) for e in examples])

    def predict(
        self, features: RefinedFeatures, shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        labels, _ = self.inner.predict(features.inner, shape)
        middle = time.perf_counter()
        out = refine_labels(self.head, features.sam, labels, self.config)
        self.last_predict_timings = {
            "proposal": middle - start,
            "refinement": time.perf_counter() - middle,
        }
        return out


def wrap_with_sam(
    backend: Backend,
    sam_refine: str = "vit_b",
    device: str = "auto",
    sam_refine_weights: str | Path | None = None,
    sam_refine_dtype: str = "auto",
    **options: Any,
) -> SamRefined:
    """``registry.build_backend(..., sam_refine=ARCH)`` lands here.

    Args:
        sam_refine: SAM architecture (``vit_b``, ``vit_l``, ``vit_h``, ``test_tiny``).
        sam_refine_weights: checkpoint path, ``"random"``, or None to find it locally.
        sam_refine_dtype: encoder dtype (``auto`` = bf16 where the hardware has it).
        options: :class:`SamRefineConfig` fields prefixed ``sam_refine_`` (e.g.
            ``sam_refine_use_mask=False``).
    """
    from src_models.backbones.dinov2 import pick_device, pick_dtype
    from src_models.sam.build import build_sam

    fields = {k.removeprefix("sam_refine_"): v for k, v in options.items()}
    config = SamRefineConfig(**fields)
    torch_device = pick_device(device)
    sam = build_sam(sam_refine, sam_refine_weights)
    encoder = SamEncoder(sam, torch_device, pick_dtype(sam_refine_dtype, torch_device))
    return SamRefined(backend, encoder, config)
