"""SEGIC decoder: the trainable part of SEGIC, key-for-key compatible with the released checkpoints.

The released ``segic_dinov2_l_80kx12e.pth`` / ``segic_dinov2_l_160kx12e.pth`` hold a raw state
dict (no ``module.`` prefix) of exactly the parameters of :class:`SegicDecoder` plus the saved
random position-encoding matrix ``prompt_encoder.pe_layer.positional_encoding_gaussian_matrix``.
The frozen DINOv2 backbone and the CLIP text encoder are not in it.

Module tree (see ``docs/backends/dinov2-segic.md``)::

    neck            Conv1x1(feat→E, no bias), LN2d, Conv3x3(E→E, no bias), LN2d
    prompt_encoder  segment-anything PromptEncoder, mask downscaler strides 7 then 2
    mask_decoder    segment-anything MaskDecoder + TwoWayTransformer (depth 2, 8 heads)
    prompt_proj     Linear(text 768 → E)
    inst_proj       Linear(feat → E)
    inst_type_embed Embedding(2, E): 1 = the query's own object, 0 = another object
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.mask_decoder import MaskDecoder
from segment_anything.modeling.prompt_encoder import PromptEncoder
from segment_anything.modeling.transformer import TwoWayTransformer
from torch import nn

from src_models.backends.configs import SEGIC_CHECKPOINTS
from src_models.weights import load_state_dict, resolve_checked

__all__ = ["SEGIC_CHECKPOINTS", "SegicDecoder", "build_segic_decoder", "load_segic_decoder"]

PE_KEY = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"


@dataclass(frozen=True)
class SegicDecoderConfig:
    """Shape hyperparameters of the SEGIC decoder (defaults = the released DINOv2-L model).

    Attributes:
        feat_dim: channels of the backbone tokens (1024 for DINOv2-L).
        embed_dim: decoder width E.
        text_dim: width of the meta-instruction (CLIP text) embedding.
        input_size: side of the square padded input image (896 = 14·64).
        patch: backbone patch size; the feature grid is input_size // patch.
        mask_in_chans: hidden channels of the mask downscaler.
        depth: two-way transformer layers.
        heads: attention heads.
        mlp_dim: transformer MLP width.
    """

    feat_dim: int = 1024
    embed_dim: int = 256
    text_dim: int = 768
    input_size: int = 896
    patch: int = 14
    mask_in_chans: int = 16
    depth: int = 2
    heads: int = 8
    mlp_dim: int = 2048

    @property
    def grid(self) -> int:
        """Side of the feature grid (64 at 896 px with patch 14)."""
        return self.input_size // self.patch


class SegicPromptEncoder(PromptEncoder):
    """SAM's prompt encoder with SEGIC's mask downscaler (strides 7 and 2: input → feature grid)."""

    def __init__(self, embed_dim: int, grid: int, input_size: int, mask_in_chans: int) -> None:
        super().__init__(
            embed_dim=embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(input_size, input_size),
            mask_in_chans=mask_in_chans,
        )
        quarter = mask_in_chans // 4
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, quarter, kernel_size=7, stride=7),
            LayerNorm2d(quarter),
            nn.GELU(),
            nn.Conv2d(quarter, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )


def build_neck(feat_dim: int, embed_dim: int) -> nn.Sequential:
    """Backbone tokens (B, feat, g, g) → decoder image embedding (B, E, g, g)."""
    return nn.Sequential(
        nn.Conv2d(feat_dim, embed_dim, kernel_size=1, bias=False),
        LayerNorm2d(embed_dim),
        nn.Conv2d(embed_dim, embed_dim, kernel_size=3, padding=1, bias=False),
        LayerNorm2d(embed_dim),
    )


class SegicDecoder(nn.Module):
    """The trainable SEGIC head: instructions + target features → mask logits.

    Its ``state_dict()`` is the released checkpoint format (for the default config).
    """

    def __init__(self, config: SegicDecoderConfig) -> None:
        super().__init__()
        c = config
        self.config = config
        self.neck = build_neck(c.feat_dim, c.embed_dim)
        self.prompt_encoder = SegicPromptEncoder(c.embed_dim, c.grid, c.input_size, c.mask_in_chans)
        self.mask_decoder = MaskDecoder(
            transformer_dim=c.embed_dim,
            transformer=TwoWayTransformer(
                depth=c.depth, embedding_dim=c.embed_dim, num_heads=c.heads, mlp_dim=c.mlp_dim
            ),
            num_multimask_outputs=3,
            iou_head_depth=3,
            iou_head_hidden_dim=c.embed_dim,
        )
        self.prompt_proj = nn.Linear(c.text_dim, c.embed_dim)
        self.inst_proj = nn.Linear(c.feat_dim, c.embed_dim)
        self.inst_type_embed = nn.Embedding(2, c.embed_dim)

    def sparse_tokens(
        self,
        points: torch.Tensor,
        prototypes: torch.Tensor,
        types: torch.Tensor | None,
        text: torch.Tensor | None,
        boxes: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sparse instruction tokens of Q queries on one target image.

        Args:
            points: (Q, n, 2) float xy pixel coordinates in the padded input frame (label 1);
                a padding point (label -1) is appended unless ``boxes`` is given.
            prototypes: (T, feat) float instance prototypes (visual instructions).
            types: (Q, T) long, 1 where prototype t belongs to query q's object, else 0
                (cross-instance tokens, always used at inference); None gives each query
                only its own prototype, without a type embedding (then T = Q; half of the
                official training steps).
            text: (Q, text_dim) float meta-instruction embeddings, or None to leave the
                text token out.
            boxes: (Q, 4) float xyxy boxes (training only) or None.

        Returns:
            (Q, n(+1 pad | +2 box corners) + [1 text] + T, E) float.
        """
        labels = torch.ones(points.shape[:2], device=points.device)
        sparse, _ = self.prompt_encoder(points=(points, labels), boxes=boxes, masks=None)
        parts = [sparse]
        if text is not None:
            parts.append(self.prompt_proj(text)[:, None])
        if types is None:
            parts.append(self.inst_proj(prototypes)[:, None])
        else:
            parts.append(self.inst_proj(prototypes)[None] + self.inst_type_embed(types))
        return torch.cat(parts, dim=1)

    def forward(
        self,
        features: torch.Tensor,
        geo_maps: torch.Tensor,
        sparse: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode Q queries on one target image.

        Args:
            features: (1, feat, g, g) float backbone tokens of the target.
            geo_maps: (Q, 1, S, S) float geometric maps at the input size S (dense prompt).
            sparse: (Q, N, E) float tokens from :meth:`sparse_tokens`.

        Returns:
            logits (Q, 1, 4g, 4g) float from mask token 0, and iou (Q, 1) float.
        """
        image = self.neck(features)
        dense = self.prompt_encoder.mask_downscaling(geo_maps)
        masks, iou = self.mask_decoder.predict_masks(
            image_embeddings=image,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )
        return masks[:, :1], iou[:, :1]


def build_segic_decoder(
    feat_dim: int = 1024,
    embed_dim: int = 256,
    input_size: int = 896,
    mlp_dim: int = 2048,
    heads: int = 8,
) -> SegicDecoder:
    """The SEGIC decoder; with no arguments, the released DINOv2-L configuration.

    Smaller ``feat_dim``/``embed_dim``/``input_size`` build test-sized models (their state
    dicts have the same keys, other shapes).
    """
    if input_size % 14 or (input_size // 14) % 2:
        raise ValueError(f"input_size {input_size} must be a multiple of 28 (14 · an even grid)")
    if embed_dim % (2 * heads):
        raise ValueError(f"embed_dim {embed_dim} must be divisible by 2 · heads ({2 * heads})")
    config = SegicDecoderConfig(
        feat_dim=feat_dim, embed_dim=embed_dim, input_size=input_size, mlp_dim=mlp_dim, heads=heads
    )
    return SegicDecoder(config)


def check_keys(decoder: SegicDecoder, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict key and shape check of a SEGIC decoder state dict; RuntimeError says what differs."""
    own = decoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:3]]
        raise RuntimeError(
            f"{source} is not a SEGIC decoder checkpoint for this configuration: missing "
            f"{missing[:4]} ({len(missing)}), unexpected {unexpected[:4]} ({len(unexpected)}), "
            f"shape mismatches {shapes} ({len(wrong)}). Use segic_dinov2_l_80kx12e.pth or "
            "_160kx12e.pth with the DINOv2-L configuration, or a file saved by train-segic."
        )


def strip_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a DistributedDataParallel ``module.`` prefix if every key carries it."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_segic_weights(decoder: SegicDecoder, path: str | Path) -> None:
    """Load a released-format checkpoint into ``decoder`` (strict: keys and shapes must match).

    The position-encoding matrix is taken from the file, never re-drawn.
    """
    state = strip_prefix(load_state_dict(path))
    check_keys(decoder, state, str(path))
    decoder.load_state_dict(state, strict=True)


def load_segic_decoder(
    weights: str | Path | None = None,
    checkpoint: str = SEGIC_CHECKPOINTS[0],
    feat_dim: int = 1024,
    input_size: int = 896,
) -> SegicDecoder:
    """The SEGIC decoder with released (or fine-tuned) weights.

    Args:
        weights: a checkpoint path, or None to find ``checkpoint`` through the weights
            manager (``$NAPARI_INCONTEXT_WEIGHTS``, the user cache dir, the HF cache).
        checkpoint: weights-manager name, one of :data:`SEGIC_CHECKPOINTS`.
        feat_dim: backbone width (1024 = DINOv2-L, the released checkpoints).
        input_size: padded input side; no weight depends on it, so the released weights
            also run at e.g. 448 px (a 32×32 grid), faster and off the training setting.
    """
    if checkpoint not in SEGIC_CHECKPOINTS:
        raise ValueError(
            f"unknown SEGIC checkpoint {checkpoint!r}: choose one of {', '.join(SEGIC_CHECKPOINTS)}"
        )
    path = resolve_checked(checkpoint, weights)  # fine-tuned files: the strict load checks
    decoder = build_segic_decoder(feat_dim=feat_dim, input_size=input_size)
    load_segic_weights(decoder, path)
    return decoder.eval()


def save_segic_weights(decoder: SegicDecoder, path: str | Path) -> Path:
    """Write the decoder in the released format (a raw state dict), atomically."""
    from src_models.atomic import write_file

    state = {k: v.detach().cpu().clone() for k, v in decoder.state_dict().items()}
    return write_file(path, lambda temp: torch.save(state, temp))
