"""`dinov2`: training-free matching of DINOv2 patch tokens against the examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src_models.backbones.dinov2 import PatchEncoder, build_dinov2, pick_device, pick_dtype
from src_models.backends.base import object_ids
from src_models.cache import model_tag
from src_models.matching import ExampleBank, build_bank, class_scores, scores_to_probabilities
from src_models.refine import refine_probabilities
from src_models.types import Example


@dataclass(frozen=True)
class Dinov2Config:
    """Hyperparameters of the dinov2 backend.

    Attributes:
        model: DINOv2 size, ``vits14`` (default), ``vitb14``, ``vitl14`` or ``vitg14``.
        input_size: longest side fed to the ViT (518 = the native 37×37 grid).
        dtype: ``auto`` (bf16 on CPUs with AMX/AVX512-BF16 and on CUDA), ``float32``, ``bfloat16``.
        proto_weight: share of the prototype cosine in a class score (rest: top-k neighbours).
        topk: neighbours averaged per class.
        temperature: softmax temperature turning scores into probabilities, as a fraction of
            the spread (std) of the slice's scores, so it adapts to how peaked a model's
            cosines are.
        refine: snap the upsampled probabilities to image edges with a guided filter.
        refine_eps: guided-filter regulariser.
    """

    model: str = "vits14"
    input_size: int = 518
    dtype: str = "auto"
    proto_weight: float = 0.2
    topk: int = 1
    temperature: float = 0.25
    refine: bool = True
    refine_eps: float = 1e-3


@dataclass(frozen=True)
class PatchFeatures:
    """Cached per-image features: (h, w, D) float32 tokens and an (H, W) float16 gray guide."""

    tokens: np.ndarray
    guide: np.ndarray


class Dinov2Backend:
    """Prototype + nearest-neighbour matching on DINOv2 tokens, refined to pixels."""

    name = "dinov2"

    def __init__(self, encoder: PatchEncoder, config: Dinov2Config) -> None:
        self.encoder = encoder
        self.config = config
        self._bank: ExampleBank | None = None

    @property
    def feature_key(self) -> str:
        c = self.config
        return (
            f"dinov2:{c.model}:{c.input_size}:{self.encoder.dtype}:{model_tag(self.encoder.model)}"
        )

    @property
    def last_timings(self) -> dict[str, float]:
        return self.encoder.last_timings

    def compute_features(self, image: np.ndarray) -> PatchFeatures:
        return PatchFeatures(self.encoder(image), image.mean(-1).astype(np.float16))

    def fit(self, examples: Sequence[Example]) -> None:
        ids = object_ids(examples)
        self._bank = build_bank(
            [e.features.tokens for e in examples], [e.labels for e in examples], ids
        )

    def predict(
        self, features: PatchFeatures, shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._bank is None:
            raise RuntimeError("call fit() with at least one example before predict()")
        c = self.config
        scores = class_scores(features.tokens, self._bank, c.proto_weight, c.topk)
        probs = scores_to_probabilities(scores, c.temperature * max(float(scores.std()), 1e-3))
        radius = max(1, round(shape[0] / features.tokens.shape[0])) if c.refine else 0
        probs = refine_probabilities(probs, features.guide.astype(np.float32), radius, c.refine_eps)
        best = probs.argmax(0)
        classes = np.concatenate([[0], self._bank.ids]).astype(np.int32)
        confidence = np.take_along_axis(probs, best[None], 0)[0]
        return classes[best], np.clip(confidence, 0, 1).astype(np.float32)


def build_dinov2_backend(
    device: str = "auto", weights: str | Path | None = None, **options: object
) -> Dinov2Backend:
    """Build the dinov2 backend; ``weights="random"`` gives an untrained model (tests)."""
    config = Dinov2Config(**options)  # type: ignore[arg-type]
    torch_device = pick_device(device)
    model = build_dinov2(config.model, weights)
    encoder = PatchEncoder(
        model, config.input_size, torch_device, pick_dtype(config.dtype, torch_device)
    )
    return Dinov2Backend(encoder, config)
