"""DINOv2 ViT backbones from timm: build, load weights, extract patch tokens."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from src_models.backbones.encoder import TimedEncoder, imagenet_normalize
from src_models.timing import NULL_TIMER, Timer
from src_models.weights import load_state_dict, load_strict, resolve

if TYPE_CHECKING:
    from timm.models.eva import Eva
    from timm.models.vision_transformer import VisionTransformer

DINOV2_ARCHS: dict[str, str] = {
    "vits14": "vit_small_patch14_dinov2",
    "vitb14": "vit_base_patch14_dinov2",
    "vitl14": "vit_large_patch14_dinov2",
    "vitg14": "vit_giant_patch14_dinov2",
}


def official_pos_embed(self: Any, x: torch.Tensor) -> torch.Tensor:
    """timm ``VisionTransformer._pos_embed`` with the official DINOv2 resampling.

    The official ``interpolate_pos_encoding`` resizes the 37×37 table by bicubic
    interpolation with ``scale_factor = (n + offset) / 37`` (offset 0.1, no antialias for the
    plain models; size-based with antialias for the ``_reg`` models), where timm resizes to
    a size with antialias. Set on a timm DINOv2 ViT by :func:`create_dinov2` (as a partial).

    Args:
        x: (B, H, W, C) patch embeddings (``dynamic_img_size`` layout).

    Returns:
        (B, prefix + H·W, C) tokens with class/register tokens and position embeddings.
    """
    batch, rows, cols, dim = x.shape
    prefix = 0 if self.no_embed_class else self.num_prefix_tokens
    table = self.pos_embed
    native = tuple(self.patch_embed.grid_size)
    if (rows, cols) != native:
        offset = float(self.dinov2_interpolate_offset)
        side = native[0]
        patch = table[:, prefix:].float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
        resize = (
            {"scale_factor": ((rows + offset) / side, (cols + offset) / side)}
            if offset
            else {"size": (rows, cols)}
        )
        patch = F.interpolate(
            patch, mode="bicubic", antialias=bool(self.dinov2_interpolate_antialias), **resize
        )
        patch = patch.permute(0, 2, 3, 1).reshape(1, rows * cols, dim).to(table.dtype)
        table = torch.cat([table[:, :prefix], patch], dim=1)
    x = x.reshape(batch, rows * cols, dim)
    prefix_tokens = [
        t.expand(batch, -1, -1) for t in (self.cls_token, self.reg_token) if t is not None
    ]
    if self.no_embed_class:
        x = torch.cat([*prefix_tokens, x + table], dim=1)
    else:
        x = torch.cat([*prefix_tokens, x], dim=1) + table
    return self.pos_drop(x)


def create_dinov2(size: str, registers: bool = False, **overrides: Any) -> VisionTransformer:
    """A randomly initialised timm DINOv2 ViT resampling position embeddings as the official.

    Args:
        size: one of ``DINOV2_ARCHS``.
        registers: build the 4-register (``_reg4``) architecture.
        overrides: timm architecture overrides (``depth``, ``embed_dim``, ``num_heads``) for
            test-sized models.
    """
    import timm

    if size not in DINOV2_ARCHS:
        raise ValueError(f"unknown DINOv2 size {size!r}: choose one of {', '.join(DINOV2_ARCHS)}")
    arch = (
        DINOV2_ARCHS[size].replace("_dinov2", "_reg4_dinov2") if registers else DINOV2_ARCHS[size]
    )
    model: Any = timm.create_model(
        arch, pretrained=False, num_classes=0, dynamic_img_size=True, **overrides
    )
    # the official torch.hub settings: plain models 0.1 / no antialias, _reg models 0 / antialias
    model.dinov2_interpolate_offset = 0.0 if registers else 0.1
    model.dinov2_interpolate_antialias = registers
    # a partial, not a bound method: it pickles (distributed runs ship the model to workers)
    model._pos_embed = partial(official_pos_embed, model)
    return model


def has_registers(state: dict[str, torch.Tensor]) -> bool:
    """True for a DINOv2 state dict with register tokens (official ``_reg4`` or timm layout)."""
    return "register_tokens" in state or "reg_token" in state


def load_dinov2_weights(
    model: nn.Module, state: dict[str, torch.Tensor], source: Path | str
) -> None:
    """Load an official DINOv2 or timm-layout state dict into a timm ViT (strict).

    Raises:
        RuntimeError: one line saying the file is not this DINOv2 size.
    """
    from timm.models.vision_transformer import checkpoint_filter_fn

    vit: Any = model
    width = int(vit.embed_dim)
    if "storage_tokens" in state or "rope_embed.periods" in state:
        raise RuntimeError(
            f"{source} is a DINOv3 checkpoint, not DINOv2: use it with a dinov3_* backbone"
        )
    found = state.get("cls_token")
    if found is None or found.shape[-1] != width or "blocks.0.norm1.weight" not in state:
        what = "no DINOv2 ViT" if found is None else f"a ViT of width {found.shape[-1]}"
        raise RuntimeError(
            f"{source} holds {what}, not the DINOv2 of width {width} asked for; pick the "
            "checkpoint of this backbone size (dinov2_vit{s,b,l,g}14[_reg4]_pretrain.pth)"
        )
    try:
        converted = checkpoint_filter_fn(dict(state), vit)
    except (RuntimeError, ValueError, KeyError) as error:
        raise RuntimeError(
            f"{source} does not fit {type(model).__name__} ({str(error).splitlines()[0][:120]});"
            " pick the DINOv2 weights of this model size"
        ) from error
    load_strict(model, converted, source, "pick the DINOv2 weights of this model size")


def build_dinov2(size: str = "vits14", weights: str | Path | None = None) -> VisionTransformer:
    """A timm DINOv2 ViT in eval mode.

    Args:
        size: one of ``DINOV2_ARCHS``.
        weights: ``"random"`` for random init (tests), a checkpoint path (official ``.pth``,
            plain or ``_reg4``, or timm ``.safetensors``), or None to find the official
            weights locally (see :mod:`src_models.weights`).
    """
    if size not in DINOV2_ARCHS:
        raise ValueError(f"unknown DINOv2 size {size!r}: choose one of {', '.join(DINOV2_ARCHS)}")
    if weights == "random":
        return create_dinov2(size).eval().requires_grad_(False)
    path = resolve(f"dinov2_{size}", weights)
    state = load_state_dict(path)
    model = create_dinov2(size, registers=has_registers(state))
    load_dinov2_weights(model, state, path)
    return model.eval().requires_grad_(False)


def to_model_input(image: np.ndarray, longest: int, patch: int) -> torch.Tensor:
    """(H, W, C) float32 in [0, 1] → (1, 3, h·p, w·p) ImageNet-normalised, longest ≈ longest."""
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

    model: VisionTransformer | Eva  # a timm DINOv2 or DINOv3 ViT

    def __init__(
        self,
        model: VisionTransformer | Eva,
        input_size: int,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        super().__init__(model, device, dtype)
        self.input_size = input_size
        self.patch = int(model.patch_embed.patch_size[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    def __call__(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> np.ndarray:
        """(H, W, C) float32 → (h, w, D) float32 unit-norm tokens."""
        return self.encode_batch([image], timer)[0]

    @torch.inference_mode()
    def encode_batch(
        self, images: Sequence[np.ndarray], timer: Timer = NULL_TIMER
    ) -> list[np.ndarray]:
        """:meth:`__call__` of several images, those of one input size in one forward."""
        inputs = [to_model_input(image, self.input_size, self.patch) for image in images]
        out = self.timed_forward_batch(inputs, timer)
        return [self._tokens(o, x) for o, x in zip(out, inputs, strict=True)]

    def _tokens(self, out: torch.Tensor, x: torch.Tensor) -> np.ndarray:
        grid = (x.shape[2] // self.patch, x.shape[3] // self.patch)
        tokens = F.normalize(out[0, self.model.num_prefix_tokens :].float(), dim=-1)
        return tokens.reshape(*grid, -1).cpu().numpy()
