"""Tiny random SEGIC pieces for the tests: an 8×8-token DINOv2-style ViT and a small decoder."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from src_models.backends.segic import SegicBackend, SegicConfig, SegicEncoder
from src_models.heads.segic import SegicDecoder, build_segic_decoder
from src_models.sample_data import synthetic_stack

SIZE = 112  # 14 · 8: an 8×8 token grid
FEAT = 32


def tiny_vit(seed: int = 0) -> nn.Module:
    """A 2-block, 32-wide timm DINOv2 ViT with random weights."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(
        "vit_small_patch14_dinov2",
        pretrained=False,
        num_classes=0,
        dynamic_img_size=True,
        embed_dim=FEAT,
        depth=2,
        num_heads=2,
        img_size=SIZE,
    )
    return model.eval()


def tiny_decoder(seed: int = 0) -> SegicDecoder:
    torch.manual_seed(seed)
    return build_segic_decoder(feat_dim=FEAT, embed_dim=32, input_size=SIZE, mlp_dim=64, heads=2)


def tiny_backend(decoder: SegicDecoder | None = None, **options: object) -> SegicBackend:
    config = SegicConfig(input_size=SIZE, dtype="float32", **options)  # type: ignore[arg-type]
    encoder = SegicEncoder(tiny_vit(), SIZE, torch.device("cpu"), torch.float32)
    return SegicBackend(encoder, decoder or tiny_decoder(), config)


def wide_stack(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic two-object stack cropped to a non-square 64 × 48 (so padding matters)."""
    image, labels = synthetic_stack(n, 64)
    return image[:, :, 8:56], labels[:, :, 8:56]
