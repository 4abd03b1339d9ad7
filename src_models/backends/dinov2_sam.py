"""`dinov2-sam`: DINOv2 correspondence as the location prior, SAM prompted PerSAM-style.

Per object id: DINOv2 patch matching against the examples (the engine's
:mod:`src_models.matching`) gives an (H, W) prior → positive point at its best match,
negative at its worst, target-guided attention from it; the SAM target embedding of the
object adds target-semantic prompting; two cascaded refinements finish the mask.
``correspondence="sam"`` uses SAM's own features for the prior (pure PerSAM);
``persam_f=True`` fits PerSAM-F's two mask weights on the examples instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src_models.backbones.dinov2 import PatchEncoder, build_dinov2
from src_models.backends.base import BackendBase, example_weights, object_ids, trusted
from src_models.backends.configs import DinoSamConfig
from src_models.cache import model_tag
from src_models.channels import to_three
from src_models.device import pick_device, pick_dtype
from src_models.disk_cache import DiskCache
from src_models.matching import ExampleBank, build_bank, class_scores
from src_models.refine import upsample
from src_models.sam.build import build_sam
from src_models.sam.persam import PersamConfig, persam_predict, similarity_map, target_embedding
from src_models.sam.persam_decoder import install_persam
from src_models.sam.persam_f import PersamFConfig, persam_f_predict, train_weights
from src_models.sam.predictor import SamEmbedding, SamEncoder, SamHead, combine_objects
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example


@dataclass(frozen=True)
class DinoSamFeatures:
    """Per-slice features: DINOv2 tokens (h, w, D) float32 (None with correspondence=sam)
    and the SAM embedding."""

    tokens: np.ndarray | None
    sam: SamEmbedding


@dataclass
class _Object:
    """What fit() learns per object id."""

    target: np.ndarray
    weights: np.ndarray | None = None


class DinoSamBackend(BackendBase):
    """DINOv2 (or SAM) correspondence → PerSAM-prompted SAM, one object id at a time."""

    name = "dinov2-sam"
    _models = ("dino", "encoder", "head")

    def __init__(
        self, dino: PatchEncoder | None, encoder: SamEncoder, config: DinoSamConfig
    ) -> None:
        self.dino = dino
        self.encoder = encoder
        self.head = SamHead(encoder.sam)
        self.context = install_persam(encoder.sam)
        self.config = config
        self.persam = PersamConfig(
            config.guided_attention,
            config.semantic_prompt,
            config.negative_point,
            config.refine_steps,
            config.attention_bias,
        )
        self._ids = np.zeros(0, np.int64)
        self._objects: dict[int, _Object] = {}
        self._bank: ExampleBank | None = None

    @property
    def feature_key(self) -> str:
        c = self.config
        dino = (
            "none"
            if self.dino is None
            else f"{c.backbone}:{c.input_size}:{self.dino.dtype}:{model_tag(self.dino.model)}"
        )
        sam = f"{self.encoder.key}:{model_tag(self.encoder.sam)}"
        return f"dinov2-sam:{dino}:{sam}:{c.channels}"

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> DinoSamFeatures:
        return self.compute_features_batch([image], timer)[0]

    def compute_features_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[DinoSamFeatures]:
        self.check_open()
        rgb = [to_three(image, self.config.chosen_channels) for image in images]
        tokens = [None] * len(rgb) if self.dino is None else self.dino.encode_batch(rgb, timer)
        sam = self.encoder.encode_batch(rgb, timer)
        return [DinoSamFeatures(t, e) for t, e in zip(tokens, sam, strict=True)]

    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        c = self.config
        examples = trusted(examples)
        weights = example_weights(examples)
        self._ids = object_ids(examples)
        embs = [e.features.sam for e in examples]
        if self.dino is not None:
            tokens = [e.features.tokens for e in examples]
            self._bank = build_bank(tokens, [e.labels for e in examples], self._ids, 0.5, weights)
        self._objects = {}
        sparse = any((e.labels < 0).any() for e in examples)  # scribble mode: strokes only
        painted = [e.labels >= 0 for e in examples] if sparse else None
        for k in self._ids:
            masks = [e.labels == k for e in examples]
            mode = "max_mean" if c.persam_f else "mean"
            target = target_embedding(self.head, embs, masks, mode, weights)
            if target is None:
                continue
            obj = _Object(target)
            if c.persam_f:
                fconf = PersamFConfig(
                    iterations=c.persam_f_iterations, max_side=c.persam_f_max_side
                )
                obj.weights, timings = train_weights(
                    self.head, embs, masks, target, fconf, weights, painted
                )
                for key, value in timings.items():
                    timer.add(key, value)
            self._objects[int(k)] = obj

    def _priors(self, features: DinoSamFeatures, shape: tuple[int, int]) -> dict[int, np.ndarray]:
        """(H, W) location prior per object id that should be predicted."""
        if self.dino is None:
            return {
                k: similarity_map(self.head, features.sam, o.target)
                for k, o in self._objects.items()
            }
        if self._bank is None or features.tokens is None:
            raise RuntimeError("the DINOv2 example bank is missing: call fit() again")
        c = self.config
        scores = class_scores(features.tokens, self._bank, c.proto_weight, c.topk)
        winner = scores.argmax(0)
        priors = {}
        for c_index, k in enumerate(self._bank.ids, start=1):
            if int(k) not in self._objects:
                continue
            if c.presence_check and not (winner == c_index).any():
                continue
            priors[int(k)] = upsample(scores[c_index : c_index + 1], shape)[0]
        return priors

    def predict(
        self, features: DinoSamFeatures, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        self.check_open()
        if not self._objects:
            raise RuntimeError("call fit() with at least one example that has an object first")
        with timer("prior"):
            self.head.set_embedding(features.sam)
            priors = self._priors(features, shape)
        logits: list[np.ndarray | None] = []
        for k in self._ids:
            prior = priors.get(int(k))
            if prior is None:
                logits.append(None)
                continue
            before = len(self.head.call_seconds)
            obj = self._objects[int(k)]
            if obj.weights is not None:
                lg, _ = persam_f_predict(self.head, prior, obj.weights)
            else:
                lg, _ = persam_predict(
                    self.head, self.context, features.sam, obj.target, prior, self.persam
                )
            calls = self.head.call_seconds[before:]
            timer.add("decoder", calls[0] if calls else 0.0)
            timer.add("refinement", sum(calls[1:]))
            logits.append(lg)
        return combine_objects([int(k) for k in self._ids], logits, shape)


def _check_weights_present(config: DinoSamConfig, weights: object, sam_weights: object) -> None:
    """One error naming every missing checkpoint (DINOv2 and SAM) before anything is built."""
    from src_models.sam.build import sam_spec
    from src_models.weights import WeightsSpec, find_local, get_spec, missing_message

    specs: list[WeightsSpec | None] = []
    if config.correspondence == "dinov2" and weights is None:
        specs.append(get_spec(f"dinov2_{config.backbone}"))
    if sam_weights is None and sam_spec(config.sam_model) is not None:
        specs.append(sam_spec(config.sam_model))
    missing = [missing_message(s) for s in specs if s is not None and find_local(s) is None]
    if missing:
        raise RuntimeError(" Also: ".join(missing))


def build_dinov2_sam_backend(
    config: DinoSamConfig,
    *,
    device: str = "auto",
    weights: str | Path | None = None,
    sam_weights: str | Path | None = None,
) -> DinoSamBackend:
    """Build ``dinov2-sam``.

    Args:
        config: its options.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        weights: DINOv2 checkpoint path, ``"random"`` (tests; also makes SAM random unless
            ``sam_weights`` is given), or None to find the official file locally.
        sam_weights: SAM checkpoint path, ``"random"``, or None to find it locally.
    """
    torch_device = pick_device(device)
    dtype = pick_dtype(config.dtype, torch_device)
    if sam_weights is None and weights == "random":
        sam_weights = "random"
    _check_weights_present(config, weights, sam_weights)
    dino = None
    if config.correspondence == "dinov2":
        dino = PatchEncoder(
            build_dinov2(config.backbone, weights), config.input_size, torch_device, dtype
        )
    disk = None
    if config.disk_cache:
        disk = DiskCache("sam_embeddings", config.disk_cache_dir, int(config.disk_cache_gb * 2**30))
    sam = build_sam(config.sam_model, sam_weights)
    return DinoSamBackend(dino, SamEncoder(sam, torch_device, dtype, disk), config)
