"""DINOv2 ViT backbones from timm: build, load weights, extract patch tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from src_models.backbones.encoder import TimedEncoder, imagenet_normalize
from src_models.timing import NULL_TIMER, Timer
from src_models.weights import load_state_dict, resolve

DINOV2_ARCHS: dict[str, str] = {
    "vits14": "vit_small_patch14_dinov2",
    "vitb14": "vit_base_patch14_dinov2",
    "vitl14": "vit_large_patch14_dinov2",
    "vitg14": "vit_giant_patch14_dinov2",
}


def load_timm_weights(model: nn.Module, path: Path) -> None:
    """Load an official DINOv2 ``.pth`` or a timm ``.safetensors`` into a timm ViT (strict)."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = checkpoint_filter_fn(load_state_dict(path), model)
    expected = model.state_dict()
    wrong = [k for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if wrong or missing or unexpected:
        raise RuntimeError(
            f"{path} does not fit {type(model).__name__}: wrong shapes {wrong[:3]}, missing "
            f"{missing[:3]}, unexpected {unexpected[:3]}; pick the weights of this model size"
        )
    model.load_state_dict(state, strict=True)


def build_dinov2(size: str = "vits14", weights: str | Path | None = None) -> nn.Module:
    """A timm DINOv2 ViT in eval mode.

    Args:
        size: one of ``DINOV2_ARCHS``.
        weights: ``"random"`` for random init (tests), a checkpoint path, or None to find
            the official weights locally (see :mod:`src_models.weights`).
    """
    import timm

    if size not in DINOV2_ARCHS:
        raise ValueError(f"unknown DINOv2 size {size!r}: choose one of {', '.join(DINOV2_ARCHS)}")
    model = timm.create_model(
        DINOV2_ARCHS[size], pretrained=False, num_classes=0, dynamic_img_size=True
    )
    if weights != "random":
        load_timm_weights(model, resolve(f"dinov2_{size}", weights))
    return model.eval().requires_grad_(False)


def to_model_input(image: np.ndarray, longest: int, patch: int) -> torch.Tensor:
    """(H, W, C) float32 in [0, 1] → (1, 3, h·p, w·p) ImageNet-normalised, longest side ≈ longest."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    height, width = image.shape[:2]
    scale = longest / max(height, width)
    size = (
        max(1, round(height * scale / patch)) * patch,
        max(1, round(width * scale / patch)) * patch,
    )
    x = F.interpolate(
        x.clamp(0, 1), size=size, mode="bilinear", align_corners=False, antialias=True
    )
    return imagenet_normalize(x)


class PatchEncoder(TimedEncoder):
    """Runs a ViT on one image and returns its L2-normalised patch tokens.

    The model forward is timed as the ``backbone`` stage.
    """

    def __init__(
        self, model: nn.Module, input_size: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        super().__init__(model, device, dtype)
        self.input_size = input_size
        self.patch = int(model.patch_embed.patch_size[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> np.ndarray:
        """(H, W, C) float32 → (h, w, D) float32 unit-norm tokens."""
        x = to_model_input(image, self.input_size, self.patch)
        grid = (x.shape[2] // self.patch, x.shape[3] // self.patch)
        tokens = self.timed_forward(x, timer)
        tokens = tokens[0, self.model.num_prefix_tokens :].float()
        tokens = F.normalize(tokens, dim=-1)
        return tokens.reshape(*grid, -1).cpu().numpy()
