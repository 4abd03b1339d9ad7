"""`dinov2-sam`: DINOv2 correspondence as the location prior, SAM prompted PerSAM-style.

Per object id: DINOv2 patch matching against the examples (the engine's
:mod:`src_models.matching`) gives an (H, W) prior → positive point at its best match,
negative at its worst, target-guided attention from it; the SAM target embedding of the
object adds target-semantic prompting; two cascaded refinements finish the mask.
``correspondence="sam"`` uses SAM's own features for the prior (pure PerSAM);
``persam_f=True`` fits PerSAM-F's two mask weights on the examples instead.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src_models.backbones.dinov2 import PatchEncoder, build_dinov2, pick_device, pick_dtype
from src_models.backends.base import object_ids
from src_models.cache import model_tag
from src_models.matching import ExampleBank, build_bank, class_scores
from src_models.refine import upsample
from src_models.sam.build import build_sam
from src_models.sam.disk_cache import DiskEmbeddingCache
from src_models.sam.persam import PersamConfig, persam_predict, similarity_map, target_embedding
from src_models.sam.persam_decoder import install_persam
from src_models.sam.persam_f import PersamFConfig, persam_f_predict, train_weights
from src_models.sam.predictor import SamEmbedding, SamEncoder, SamHead, combine_objects
from src_models.types import Example


@dataclass(frozen=True)
class DinoSamConfig:
    """Hyperparameters of ``dinov2-sam``.

    Attributes:
        correspondence: ``dinov2`` (DINOv2 prior) or ``sam`` (SAM-feature prior = PerSAM).
        model: DINOv2 size (``vits14`` …); input_size: its longest input side.
        sam_model: ``vit_b``, ``vit_l``, ``vit_h`` (or ``test_tiny`` for tests).
        dtype: encoders' dtype: ``auto`` (bf16 on CUDA and on CPUs with native bf16),
            ``float32`` or ``bfloat16``; the SAM decoder always runs in float32.
        proto_weight, topk: DINOv2 matching (see :func:`~src_models.matching.class_scores`).
        presence_check: with DINOv2, skip an object no patch prefers over the other classes.
        guided_attention, semantic_prompt, negative_point, refine_steps: PerSAM switches.
        persam_f: fit PerSAM-F's two mask weights on the examples (per object).
        persam_f_iterations, persam_f_max_side: PerSAM-F training length, and the longest side
            of the logits/masks it trains on (256 keeps 1000 CPU steps to seconds; None = full
            resolution as the official code).
        disk_cache: also keep SAM embeddings on disk (``disk_cache_dir``, ``disk_cache_gb``).
    """

    correspondence: str = "dinov2"
    model: str = "vits14"
    input_size: int = 518
    sam_model: str = "vit_b"
    dtype: str = "auto"
    proto_weight: float = 0.2
    topk: int = 1
    presence_check: bool = True
    guided_attention: bool = True
    semantic_prompt: bool = True
    negative_point: bool = True
    refine_steps: int = 2
    persam_f: bool = False
    persam_f_iterations: int = 1000
    persam_f_max_side: int | None = 256
    disk_cache: bool = False
    disk_cache_dir: str | None = None
    disk_cache_gb: float = 2.0

    def __post_init__(self) -> None:
        if self.correspondence not in ("dinov2", "sam"):
            raise ValueError(f"correspondence={self.correspondence!r}: choose dinov2 or sam")


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


class DinoSamBackend:
    """DINOv2 (or SAM) correspondence → PerSAM-prompted SAM, one object id at a time."""

    name = "dinov2-sam"

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
        )
        self._ids = np.zeros(0, np.int64)
        self._objects: dict[int, _Object] = {}
        self._bank: ExampleBank | None = None
        self.last_timings: dict[str, float] = {}
        self.last_predict_timings: dict[str, float] = {}
        self.fit_timings: dict[str, float] = {}

    @property
    def feature_key(self) -> str:
        c = self.config
        dino = (
            "none"
            if self.dino is None
            else f"{c.model}:{c.input_size}:{self.dino.dtype}:{model_tag(self.dino.model)}"
        )
        return f"dinov2-sam:{dino}:{self.encoder.key}:{model_tag(self.encoder.sam)}"

    def compute_features(self, image: np.ndarray) -> DinoSamFeatures:
        tokens, timings = None, {}
        if self.dino is not None:
            tokens = self.dino(image)
            timings.update(self.dino.last_timings)
        sam = self.encoder(image)
        timings.update(self.encoder.last_timings)
        self.last_timings = timings
        return DinoSamFeatures(tokens, sam)

    def fit(self, examples: Sequence[Example]) -> None:
        c = self.config
        self._ids = object_ids(examples)
        embs = [e.features.sam for e in examples]
        if self.dino is not None:
            tokens = [e.features.tokens for e in examples]
            self._bank = build_bank(tokens, [e.labels for e in examples], self._ids)
        self._objects, self.fit_timings = {}, {}
        for k in self._ids:
            masks = [e.labels == k for e in examples]
            mode = "max_mean" if c.persam_f else "mean"
            target = target_embedding(self.head, embs, masks, mode)
            if target is None:
                continue
            obj = _Object(target)
            if c.persam_f:
                fconf = PersamFConfig(
                    iterations=c.persam_f_iterations, max_side=c.persam_f_max_side
                )
                obj.weights, timings = train_weights(self.head, embs, masks, target, fconf)
                for key, value in timings.items():
                    self.fit_timings[key] = self.fit_timings.get(key, 0.0) + value
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
        self, features: DinoSamFeatures, shape: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        if not self._objects:
            raise RuntimeError("call fit() with at least one example that has an object first")
        start = time.perf_counter()
        self.head.set_embedding(features.sam)
        priors = self._priors(features, shape)
        timings = {"prior": time.perf_counter() - start, "decoder": 0.0, "refinement": 0.0}
        logits = []
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
            timings["decoder"] += calls[0] if calls else 0.0
            timings["refinement"] += sum(calls[1:])
            logits.append(lg)
        self.last_predict_timings = timings
        return combine_objects([int(k) for k in self._ids], logits, shape)


def _check_weights_present(config: DinoSamConfig, weights: object, sam_weights: object) -> None:
    """One error naming every missing checkpoint (DINOv2 and SAM) before anything is built."""
    from src_models.sam.build import sam_spec
    from src_models.weights import find_local, get_spec, missing_message

    specs = []
    if config.correspondence == "dinov2" and weights is None:
        specs.append(get_spec(f"dinov2_{config.model}"))
    if sam_weights is None and sam_spec(config.sam_model) is not None:
        specs.append(sam_spec(config.sam_model))
    missing = [missing_message(s) for s in specs if s is not None and find_local(s) is None]
    if missing:
        raise RuntimeError(" Also: ".join(missing))


def build_dinov2_sam_backend(
    device: str = "auto",
    weights: str | Path | None = None,
    sam_weights: str | Path | None = None,
    **options: object,
) -> DinoSamBackend:
    """Build ``dinov2-sam``.

    Args:
        weights: DINOv2 checkpoint path, ``"random"`` (tests; also makes SAM random unless
            ``sam_weights`` is given), or None to find the official file locally.
        sam_weights: SAM checkpoint path, ``"random"``, or None to find it locally.
    """
    config = DinoSamConfig(**options)  # type: ignore[arg-type]
    torch_device = pick_device(device)
    dtype = pick_dtype(config.dtype, torch_device)
    if sam_weights is None and weights == "random":
        sam_weights = "random"
    _check_weights_present(config, weights, sam_weights)
    dino = None
    if config.correspondence == "dinov2":
        dino = PatchEncoder(
            build_dinov2(config.model, weights), config.input_size, torch_device, dtype
        )
    disk = None
    if config.disk_cache:
        disk = DiskEmbeddingCache(config.disk_cache_dir, int(config.disk_cache_gb * 2**30))
    sam = build_sam(config.sam_model, sam_weights)
    return DinoSamBackend(dino, SamEncoder(sam, torch_device, dtype, disk), config)
