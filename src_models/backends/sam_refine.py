"""SAM refinement for any backend: each proposed object is re-segmented by SAM from its box
and its mask (as a low-res mask prompt).

``SamRefined(inner, encoder, config)`` implements the Backend protocol, so the engine needs
no change: ``build_backend("classic", sam_refine="vit_b")`` wraps any registered backend.
To refine only chosen slices, run the wrapped backend with ``propagate(..., targets=[...])``
or call :func:`refine_labels` on one slice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from src_models.backends.base import Backend, BackendBase
from src_models.backends.configs import SamRefineConfig
from src_models.cache import model_tag
from src_models.channels import to_three
from src_models.sam.persam import mask_box
from src_models.sam.predictor import SamEmbedding, SamEncoder, SamHead, combine_objects
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example


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


class SamRefined(BackendBase):
    """Wraps a backend: its proposals are refined by SAM (box + mask prompt per object)."""

    _models = ("encoder", "head")

    def __init__(
        self, inner: Backend, encoder: SamEncoder, config: SamRefineConfig | None = None
    ) -> None:
        self.inner = inner
        self.encoder = encoder
        self.head = SamHead(encoder.sam)
        self.config = config or SamRefineConfig()
        self.name = f"{inner.name}+sam"

    @property
    def feature_key(self) -> str:
        return f"{self.inner.feature_key}|{self.encoder.key}:{model_tag(self.encoder.sam)}"

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> RefinedFeatures:
        return self.compute_features_batch([image], timer)[0]

    def compute_features_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[RefinedFeatures]:
        self.check_open()
        inner = self.inner.compute_features_batch(images, timer)
        sam = self.encoder.encode_batch([to_three(image) for image in images], timer)
        return [RefinedFeatures(f, e) for f, e in zip(inner, sam, strict=True)]

    @property
    def batch_size(self) -> int:
        return int(getattr(self.inner, "batch_size", 1))

    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        inner = [replace(e, features=e.features.inner) for e in examples]
        self.inner.fit(inner, timer)

    @property
    def observe_neighbour(self) -> Callable[..., None] | None:
        """The inner backend's video path (SEGIC), on the inner features; None without one."""
        observe = getattr(self.inner, "observe_neighbour", None)
        if observe is None:
            return None

        def forward(
            index: int,
            neighbour: int,
            features: RefinedFeatures | None,
            labels: np.ndarray | None,
            is_example: bool,
        ) -> None:
            inner = None if features is None else features.inner
            observe(index, neighbour, inner, labels, is_example)

        return forward

    def predict(
        self, features: RefinedFeatures, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        self.check_open()
        with timer("proposal"):
            labels, _ = self.inner.predict(features.inner, shape, timer)
        with timer("refinement"):
            return refine_labels(self.head, features.sam, labels, self.config)

    def close(self) -> None:
        self.inner.close()
        super().close()


def wrap_with_sam(
    backend: Backend,
    config: SamRefineConfig,
    *,
    device: str = "auto",
    sam_weights: str | Path | None = None,
) -> SamRefined:
    """``registry.build_backend(..., sam_refine=ARCH)`` lands here.

    Args:
        backend: the backend whose proposals are refined.
        config: the ``sam_refine_*`` options (``model`` = the SAM architecture).
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        sam_weights: SAM checkpoint path, ``"random"``, or None to find it locally.
    """
    from src_models.device import pick_device, pick_dtype
    from src_models.sam.build import build_sam

    torch_device = pick_device(device)
    sam = build_sam(config.model, sam_weights)
    encoder = SamEncoder(sam, torch_device, pick_dtype(config.dtype, torch_device))
    return SamRefined(backend, encoder, config)
