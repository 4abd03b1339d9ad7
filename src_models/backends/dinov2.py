"""`dinov2`: training-free matching of DINOv2 patch tokens against the examples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src_models.backbones.dinov2 import PatchEncoder, build_dinov2
from src_models.backends.base import (
    BackendBase,
    example_weights,
    labels_from_probs,
    object_ids,
    trusted,
)
from src_models.backends.configs import Dinov2Config
from src_models.cache import model_tag
from src_models.channels import to_three
from src_models.device import pick_device, pick_dtype
from src_models.matching import ExampleBank, build_bank, class_scores, scores_to_probabilities
from src_models.refine import refine_probabilities
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example


@dataclass(frozen=True)
class PatchFeatures:
    """Cached per-image features: (h, w, D) float32 tokens and an (H, W) float16 gray guide."""

    tokens: np.ndarray
    guide: np.ndarray


class Dinov2Backend(BackendBase):
    """Prototype + nearest-neighbour matching on DINOv2 tokens, refined to pixels."""

    name = "dinov2"
    _models = ("encoder",)

    def __init__(self, encoder: PatchEncoder, config: Dinov2Config) -> None:
        self.encoder = encoder
        self.config = config
        self._bank: ExampleBank | None = None

    @property
    def feature_key(self) -> str:
        c = self.config
        enc = self.encoder
        model = model_tag(enc.model)
        return f"dinov2:{c.backbone}:{c.input_size}:{enc.dtype}:{model}:{c.channels}"

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> PatchFeatures:
        return self.compute_features_batch([image], timer)[0]

    def compute_features_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[PatchFeatures]:
        self.check_open()
        channels = self.config.chosen_channels
        tokens = self.encoder.encode_batch([to_three(image, channels) for image in images], timer)
        return [
            PatchFeatures(t, image.mean(-1).astype(np.float16))
            for t, image in zip(tokens, images, strict=True)
        ]

    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        examples = trusted(examples)
        ids = object_ids(examples)
        self._bank = build_bank(
            [e.features.tokens for e in examples],
            [e.labels for e in examples],
            ids,
            weights=example_weights(examples),
        )

    def predict(
        self, features: PatchFeatures, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        self.check_open()
        if self._bank is None:
            raise RuntimeError("call fit() with at least one example before predict()")
        c = self.config
        with timer("matching"):
            scores = class_scores(features.tokens, self._bank, c.proto_weight, c.topk)
            probs = scores_to_probabilities(scores, c.temperature * max(float(scores.std()), 1e-3))
        with timer("refine"):
            radius = max(1, round(shape[0] / features.tokens.shape[0])) if c.refine else 0
            probs = refine_probabilities(
                probs, features.guide.astype(np.float32), radius, c.refine_eps
            )
        return labels_from_probs(probs, np.concatenate([[0], self._bank.ids]))


def build_dinov2_backend(
    config: Dinov2Config, *, device: str = "auto", weights: str | Path | None = None
) -> Dinov2Backend:
    """Build the dinov2 backend; ``weights="random"`` gives an untrained model (tests)."""
    torch_device = pick_device(device)
    model = build_dinov2(config.backbone, weights)
    dtype = pick_dtype(config.dtype, torch_device)
    return Dinov2Backend(PatchEncoder(model, config.input_size, torch_device, dtype), config)
