"""Tiny random-weight instances of every registered backend (test-only registry).

Like timm's ``test_vit``: the same backend classes as production, built on few-layer,
narrow models so a whole registry check runs in seconds on a CPU. A backend added to
``src_models.registry.BACKENDS`` must get an entry here (the contract test checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import torch
from torch import nn

from src_models.backbones.dinov2 import PatchEncoder
from src_models.backends.base import Backend
from src_models.config import build_config
from src_models.registry import get_info
from src_models.sam.build import SamArch, build_sam_random

CPU = torch.device("cpu")
# A few-MB SAM with the official module classes at 256 px (SAM tests register it by name with
# the ``test_tiny_sam`` fixture; production knows only vit_b/l/h).
TEST_TINY_SAM = SamArch(
    "test_tiny",
    32,
    2,
    2,
    (1,),
    img_size=256,
    prompt_dim=32,
    decoder_mlp=64,
    decoder_heads=2,
    window=4,
)
TINY_SAM = SamArch(
    "tiny", 32, 1, 2, (0,), img_size=64, prompt_dim=32, decoder_mlp=64, decoder_heads=2, window=2
)


@cache
def tiny_vit(family: str = "dinov2") -> nn.Module:
    """A one-block, 32-wide DINOv2 (patch 14) or DINOv3 (patch 16) timm ViT, seeded; one
    shared instance per family, so two tiny backends differ only by their options."""
    from src_models.backbones.dinov2 import create_dinov2
    from src_models.backbones.dinov3 import create_dinov3

    torch.manual_seed(0)
    create = create_dinov2 if family == "dinov2" else create_dinov3
    model = create("vits14" if family == "dinov2" else "vits16", depth=1, embed_dim=32, num_heads=2)
    return model.eval().requires_grad_(False)


@cache
def tiny_sam() -> nn.Module:
    """A 64-px, one-block SAM with the official module classes (shared instance)."""
    torch.manual_seed(0)
    return build_sam_random(TINY_SAM).eval()


def _encoder(family: str, size: int) -> PatchEncoder:
    return PatchEncoder(tiny_vit(family), size, CPU, torch.float32)


def _config(name: str, options: dict[str, Any], **defaults: Any) -> Any:
    return build_config(get_info(name).config, {**defaults, **options}, owner=name)


def classic(options: dict[str, Any]) -> Backend:
    from src_models.backends.classic import ClassicBackend

    # 16 trees: with 4, the 32-feature ilastik bank's random splits are too noisy
    fast = {"sigma_max": 4.0, "texture": False, "n_estimators": 16, "samples_per_class": 500}
    return ClassicBackend(_config("classic", options, **fast))


def dinov2(options: dict[str, Any]) -> Backend:
    from src_models.backends.dinov2 import Dinov2Backend

    config = _config("dinov2", options, input_size=56)
    return Dinov2Backend(_encoder("dinov2", config.input_size), config)


def dinov2_sam(options: dict[str, Any]) -> Backend:
    from src_models.backends.dinov2_sam import DinoSamBackend
    from src_models.sam.predictor import SamEncoder

    config = _config("dinov2-sam", options, input_size=56, refine_steps=1)
    sam = SamEncoder(tiny_sam(), CPU)
    dino = _encoder("dinov2", config.input_size) if config.correspondence == "dinov2" else None
    return DinoSamBackend(dino, sam, config)


def dinov2_segic(options: dict[str, Any]) -> Backend:
    from src_models.backends.segic import SegicBackend, SegicEncoder
    from src_models.heads.segic import build_segic_decoder

    config = _config("dinov2-segic", options, input_size=56)
    torch.manual_seed(0)
    decoder = build_segic_decoder(feat_dim=32, input_size=config.input_size)
    encoder = SegicEncoder(tiny_vit("dinov2"), config.input_size, CPU, torch.float32)
    return SegicBackend(encoder, decoder, config)


def _insid3(name: str, family: str, options: dict[str, Any]) -> Backend:
    from src_models.backends.insid3 import Insid3Backend, PositionalDebias

    config = _config(name, options, input_size=64 if family == "dinov3" else 56)
    encoder = _encoder(family, config.input_size)
    debias = PositionalDebias(encoder, f"tiny-{family}:{config.input_size}", on_disk=False)
    return Insid3Backend(encoder, config, debias)


# name → builder of a tiny instance from (already user-level) options.
TINY: dict[str, Callable[[dict[str, Any]], Backend]] = {
    "classic": classic,
    "dinov2": dinov2,
    "dinov2-sam": dinov2_sam,
    "dinov2-segic": dinov2_segic,
    "dinov3-insid3": lambda options: _insid3("dinov3-insid3", "dinov3", options),
    "dinov2-insid3": lambda options: _insid3("dinov2-insid3", "dinov2", options),
}

# Per backend: options that change what compute_features returns (so feature_key must change)
# and options that only change the head (so feature_key must not change).
FEATURE_OPTIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "classic": ({"sigma_min": 2.0}, {"n_estimators": 5}),
    "dinov2": ({"input_size": 42}, {"topk": 2}),
    "dinov2-sam": ({"input_size": 42}, {"refine_steps": 0}),
    "dinov2-segic": ({"input_size": 28}, {"max_examples": 1}),
    "dinov3-insid3": ({"input_size": 48}, {"tau": 0.5}),
    "dinov2-insid3": ({"input_size": 42}, {"tau": 0.5}),
}
