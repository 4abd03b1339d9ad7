"""`dinov2-segic`: the SEGIC in-context decoder on frozen DINOv2 tokens.

Per slice, the expensive step is the DINOv2 forward (tokens are cached). ``fit`` turns every
example slice into one prototype per object; ``predict`` runs one decoder query per object,
with every prototype as a cross-instance token (type 1 = the query's own object).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from src_models.backbones.dinov2 import build_dinov2
from src_models.backbones.encoder import TimedEncoder
from src_models.backends.base import BackendBase, object_ids, trusted
from src_models.backends.configs import SegicConfig
from src_models.cache import model_tag
from src_models.channels import to_three
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
    instance_prototypes,
    mask_to_input,
    postprocess,
    preprocess,
    prototypes,
)
from src_models.heads.segic_text import (
    IMAGE_TEXT,
    INSTANCE_TEXT,
    NO_TEXT_HINT,
    TEXT_DIM,
    default_text_embedding,
    load_text_embedding,
)
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example
from src_models.weights import resolve

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer


@dataclass(frozen=True)
class SegicFeatures:
    """Cached per-slice features.

    Attributes:
        tokens: (D, g, g) DINOv2 ``x_norm_patchtokens``: float32 from a float32 backbone,
            float16 from a bf16/fp16 one (half the cache memory).
        valid: (h, w) unpadded size in the input frame.
        shape: (H, W) of the original image.
    """

    tokens: np.ndarray
    valid: tuple[int, int]
    shape: tuple[int, int]


class SegicEncoder(TimedEncoder):
    """Frozen DINOv2 → SEGIC features; the forward is timed as the ``backbone`` stage."""

    model: VisionTransformer

    def __init__(
        self,
        model: VisionTransformer,
        input_size: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        super().__init__(model, device, dtype)
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return encode_tokens(self.model, x)

    def __call__(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> SegicFeatures:
        """(H, W, C) float32 in [0, 1] → :class:`SegicFeatures`."""
        return self.encode_batch([image], timer)[0]

    @torch.inference_mode()
    def encode_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[SegicFeatures]:
        """:meth:`__call__` of several images in one forward (every input is padded square)."""
        prepared = [preprocess(image, self.input_size) for image in images]
        out = self.timed_forward_batch([x for x, _ in prepared], timer)
        # float32 tokens keep the official decoder's result exactly (fp16 storage moved a
        # pixel in the parity test); a reduced-precision backbone is stored as float16
        keep = torch.float32 if self.dtype == torch.float32 else torch.float16
        return [
            SegicFeatures(tokens[0].to(keep).cpu().numpy(), valid, tuple(image.shape[:2]))
            for tokens, (_, valid), image in zip(out, prepared, images, strict=True)
        ]


def _spread(items: list[int], count: int) -> list[int]:
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


class SegicBackend(BackendBase):
    """SEGIC decoding of every object of the examples on each target slice.

    On stacks (the engine calls :meth:`observe_neighbour`), the official video path: the
    prototype of the neighbouring slice's proposal joins the examples' as an instance token.
    """

    name = "dinov2-segic"
    _models = ("encoder", "decoder")
    _kept_masks = 8  # proposals remembered for the video path (neighbours are recent)

    def __init__(
        self,
        encoder: SegicEncoder,
        decoder: SegicDecoder,
        config: SegicConfig,
        texts: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """``texts``: the meta-instruction embedding (768,) per mode ``image`` / ``video``;
        a missing mode falls back to ``config.no_text``."""
        self.encoder = encoder
        self.decoder = decoder.to(encoder.device).eval()
        self.config = config
        if config.text_embedding:
            embedding = load_text_embedding(config.text_embedding)
            texts = {"image": embedding, "video": embedding}
        self.texts = dict(texts or {})
        self._ids = np.zeros(0, np.int64)
        self._inst: torch.Tensor | None = None
        self._owner = torch.zeros(0, dtype=torch.long)
        self._query: torch.Tensor | None = None
        self._next: int | None = None  # the slice the engine predicts next (video path)
        self._latest: torch.Tensor | None = None  # (K, D) neighbour's proposal prototypes
        self._proposals: dict[int, torch.Tensor] = {}  # slice → (K, S, S) bool, input frame

    @property
    def feature_key(self) -> str:
        c, enc = self.config, self.encoder
        model = model_tag(enc.model)
        return f"segic:{c.backbone}:{c.input_size}:{enc.dtype}:{model}:{c.channels}"

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> SegicFeatures:
        self.check_open()
        return self.encoder(to_three(image, self.config.chosen_channels), timer)

    def compute_features_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[SegicFeatures]:
        self.check_open()
        channels = self.config.chosen_channels
        return self.encoder.encode_batch([to_three(image, channels) for image in images], timer)

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
        self._next, self._latest, self._proposals = None, None, {}

    def _text(self, count: int, mode: str = "image") -> torch.Tensor | None:
        text = self.texts.get(mode)
        if text is not None:
            return text.to(self.encoder.device)[None].expand(count, -1)
        if self.config.no_text == "zero":
            return torch.zeros(count, TEXT_DIM, device=self.encoder.device)
        return None

    @torch.inference_mode()
    def observe_neighbour(
        self,
        index: int,
        neighbour: int,
        features: SegicFeatures | None,
        labels: np.ndarray | None,
        is_example: bool,
    ) -> None:
        """Video path (stacks): the next :meth:`predict` is slice ``index``; ``neighbour`` is
        the slice next to it toward the examples, with its features and labels (None when
        it was not proposed in this run).

        As ``forward_vos``: after an example slice only the examples' prototype is used; after
        a proposed slice, also the prototype under this backend's own proposal of it (the
        decoder's per-object masks in the input frame; else ``labels``).
        """
        if not self.config.video:
            return
        self._next, self._latest = index, None
        if is_example or features is None:
            return
        masks = self._proposals.get(neighbour)
        if masks is None:
            if labels is None:
                return
            objects = np.stack([labels == k for k in self._ids])
            masks = mask_to_input(objects, self.config.input_size)
        self._latest = instance_prototypes(
            self._tokens(features), masks.to(self.encoder.device).float()
        )

    def _video_logits(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Instance tokens of the video path: per object [examples' prototype(, latest)]."""
        assert self._query is not None
        protos = [self._query] if self._latest is None else [self._query, self._latest]
        per = len(protos)
        inst = torch.stack(protos, dim=1).flatten(0, 1)  # object-major, as forward_vos
        count = len(self._query)
        owner = torch.arange(count, device=inst.device).repeat_interleave(per)
        types = (owner[None, :] == torch.arange(count, device=inst.device)[:, None]).long()
        return inst, types, self._query

    @torch.inference_mode()
    def object_logits(self, features: SegicFeatures, shape: tuple[int, int]) -> torch.Tensor:
        """(K, H, W) float logits, one map per object id (in ``fit`` order)."""
        if self._inst is None or self._query is None:
            raise RuntimeError("call fit() with at least one example before predict()")
        video = self._next is not None
        if video:
            inst, types, query = self._video_logits()
        else:
            ids = torch.from_numpy(self._ids).to(self.encoder.device)
            inst, types, query = (
                self._inst,
                (self._owner[None, :] == ids[:, None]).long(),
                self._query,
            )
        logits, _ = decode(
            self.decoder,
            self._tokens(features),
            query,
            inst,
            types,
            self._text(len(query), "video" if video else "image"),
            cross_points=video,
        )
        if video:
            self._remember(logits)
        return postprocess(logits, self.config.input_size, features.valid, shape).float().cpu()

    def _remember(self, logits: torch.Tensor) -> None:
        """Keep this proposal's per-object masks in the input frame for the next slice."""
        assert self._next is not None
        size = self.config.input_size
        up = F.interpolate(logits.float(), size=(size, size), mode="bilinear", align_corners=False)
        self._proposals[self._next] = (up[:, 0] > 0).cpu()
        while len(self._proposals) > self._kept_masks:
            self._proposals.pop(next(iter(self._proposals)))
        self._next = None

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
    return SegicBackend(encoder, decoder, config, default_texts(config))


def default_texts(config: SegicConfig) -> dict[str, torch.Tensor]:
    """The official meta instructions (cached CLIP embeddings), warning when absent."""
    if config.text_embedding:
        return {}
    found = {
        mode: default_text_embedding(text)
        for mode, text in (("image", IMAGE_TEXT), ("video", INSTANCE_TEXT))
    }
    texts = {mode: t for mode, t in found.items() if t is not None}
    if len(texts) < len(found):
        warnings.warn(f"dinov2-segic runs without text: {NO_TEXT_HINT}", stacklevel=2)
    return texts
