"""`dinov2-segic`: the SEGIC in-context decoder on frozen DINOv2 tokens.

Per slice, the expensive step is the DINOv2 forward (tokens are cached). ``fit`` turns every
example slice into one prototype per object; ``predict`` runs one decoder query per object,
with every prototype as a cross-instance token (type 1 = the query's own object).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from src_models.backbones.dinov2 import build_dinov2
from src_models.backbones.encoder import TimedEncoder
from src_models.backends.base import BackendBase, object_ids, trusted
from src_models.backends.configs import SegicConfig
from src_models.cache import model_tag
from src_models.device import pick_device, pick_dtype
from src_models.heads.segic import (
    SEGIC_CHECKPOINTS,
    SegicDecoder,
    build_segic_decoder,
    load_segic_decoder,
)
from src_models.heads.segic_infer import (
    decode,
    encode_tokens,
    mask_to_input,
    postprocess,
    preprocess,
    prototypes,
)
from src_models.heads.segic_text import TEXT_DIM, load_text_embedding
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example
from src_models.weights import resolve


@dataclass(frozen=True)
class SegicFeatures:
    """Cached per-slice features.

    Attributes:
        tokens: (D, g, g) float16 DINOv2 ``x_norm_patchtokens``.
        valid: (h, w) unpadded size in the input frame.
        shape: (H, W) of the original image.
    """

    tokens: np.ndarray
    valid: tuple[int, int]
    shape: tuple[int, int]


class SegicEncoder(TimedEncoder):
    """Frozen DINOv2 → SEGIC features; the forward is timed as the ``backbone`` stage."""

    def __init__(
        self, model: nn.Module, input_size: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        super().__init__(model, device, dtype)
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return encode_tokens(self.model, x)

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> SegicFeatures:
        """(H, W, C) float32 in [0, 1] → :class:`SegicFeatures`."""
        x, valid = preprocess(image, self.input_size)
        tokens = self.timed_forward(x, timer)
        return SegicFeatures(tokens[0].half().cpu().numpy(), valid, tuple(image.shape[:2]))


def _spread(items: list[int], count: int) -> list[int]:
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


class SegicBackend(BackendBase):
    """SEGIC decoding of every object of the examples on each target slice."""

    name = "dinov2-segic"
    _models = ("encoder", "decoder")

    def __init__(self, encoder: SegicEncoder, decoder: SegicDecoder, config: SegicConfig) -> None:
        self.encoder = encoder
        self.decoder = decoder.to(encoder.device).eval()
        self.config = config
        self.text = load_text_embedding(config.text_embedding) if config.text_embedding else None
        self._ids = np.zeros(0, np.int64)
        self._inst: torch.Tensor | None = None
        self._owner = torch.zeros(0, dtype=torch.long)
        self._query: torch.Tensor | None = None

    @property
    def feature_key(self) -> str:
        c = self.config
        return f"segic:{c.backbone}:{c.input_size}:{self.encoder.dtype}:{model_tag(self.encoder.model)}"

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> SegicFeatures:
        self.check_open()
        return self.encoder(image, timer)

    def _tokens(self, features: SegicFeatures) -> torch.Tensor:
        return torch.from_numpy(features.tokens).float()[None].to(self.encoder.device)

    @torch.inference_mode()
    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        """One prototype per (object, example slice); the object's query prototype is their mean
        weighted by the examples' weights (the most trusted examples are kept first when an
        object has more than ``max_examples``)."""
        examples = trusted(examples)
        ids = object_ids(examples)
        if len(ids) == 0:
            raise ValueError("dinov2-segic needs at least one example with a nonzero label")
        inst, owner, query = [], [], []
        for k in ids:
            holding = [i for i, e in enumerate(examples) if (e.labels == k).any()]
            top = sorted(holding, key=lambda i: -examples[i].weight)[: self.config.max_examples]
            best = [i for i in holding if examples[i].weight >= examples[top[-1]].weight]
            holders = _spread(best, self.config.max_examples)
            protos = torch.cat(
                [
                    prototypes(
                        self._tokens(examples[i].features),
                        mask_to_input(examples[i].labels == k, self.config.input_size).to(
                            self.encoder.device
                        ),
                    )
                    for i in holders
                ]
            )
            inst.append(protos)
            owner += [int(k)] * len(protos)
            trust = torch.tensor([examples[i].weight for i in holders], device=protos.device)
            query.append((protos * trust[:, None]).sum(0) / trust.sum())
        self._ids = ids
        self._inst = torch.cat(inst)
        self._owner = torch.tensor(owner, dtype=torch.long, device=self.encoder.device)
        self._query = torch.stack(query)

    def _text(self, count: int) -> torch.Tensor | None:
        if self.text is not None:
            return self.text.to(self.encoder.device)[None].expand(count, -1)
        if self.config.no_text == "zero":
            return torch.zeros(count, TEXT_DIM, device=self.encoder.device)
        return None

    @torch.inference_mode()
    def object_logits(self, features: SegicFeatures, shape: tuple[int, int]) -> torch.Tensor:
        """(K, H, W) float logits, one map per object id (in ``fit`` order)."""
        if self._inst is None or self._query is None:
            raise RuntimeError("call fit() with at least one example before predict()")
        ids = torch.from_numpy(self._ids).to(self.encoder.device)
        types = (self._owner[None, :] == ids[:, None]).long()
        logits, _ = decode(
            self.decoder,
            self._tokens(features),
            self._query,
            self._inst,
            types,
            self._text(len(ids)),
        )
        return postprocess(logits, self.config.input_size, features.valid, shape).float().cpu()

    def predict(
        self, features: SegicFeatures, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        """Labels = the object with the highest logit where it is > 0; confidence = its sigmoid
        (on background: 1 − the highest object probability)."""
        self.check_open()
        with timer("decoder", self.encoder.device):
            logits = self.object_logits(features, shape)
        best, index = logits.max(0)
        prob = torch.sigmoid(best)
        foreground = best > 0
        labels = np.where(foreground.numpy(), self._ids[index.numpy()], 0).astype(np.int32)
        confidence = torch.where(foreground, prob, 1 - prob).numpy().astype(np.float32)
        return labels, confidence


def local_checkpoint() -> str:
    """Name of the first released SEGIC checkpoint on this machine (80kx12e if none is)."""
    from src_models.weights import find_local, get_spec

    found = [name for name in SEGIC_CHECKPOINTS if find_local(get_spec(name)) is not None]
    return (found or list(SEGIC_CHECKPOINTS))[0]


def build_segic_backend(
    config: SegicConfig,
    *,
    device: str = "auto",
    weights: str | Path | None = None,
    head_weights: str | Path | None = None,
) -> SegicBackend:
    """Build dinov2-segic.

    Args:
        config: its options.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        weights: the DINOv2 backbone checkpoint, None to find it locally, ``"random"`` for an
            untrained backbone (and decoder, unless ``head_weights`` is given).
        head_weights: the SEGIC decoder checkpoint (released or from ``train-segic``), None to
            find ``config.checkpoint`` locally, or ``"random"``.
    """
    torch_device = pick_device(device)
    if head_weights is None and weights == "random":
        head_weights = "random"
    name = config.checkpoint or local_checkpoint()
    if head_weights != "random":
        resolve(name, head_weights)  # a missing decoder fails before the 1.2 GB backbone loads
    backbone = build_dinov2(config.backbone, weights)
    feat_dim = int(backbone.embed_dim)
    if head_weights == "random":
        decoder = build_segic_decoder(feat_dim=feat_dim, input_size=config.input_size)
    else:
        decoder = load_segic_decoder(head_weights, name, feat_dim, config.input_size)
    encoder = SegicEncoder(
        backbone, config.input_size, torch_device, pick_dtype(config.dtype, torch_device)
    )
    return SegicBackend(encoder, decoder, config)
