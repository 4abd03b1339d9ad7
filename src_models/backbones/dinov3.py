"""DINOv3 ViT backbones from timm: build, convert official checkpoints, load weights.

timm implements DINOv3 in ``timm.models.eva`` (RoPE, 4 register/"storage" tokens, final
LayerNorm). Official Meta checkpoints (``dinov3_vits16_pretrain_lvd1689m-08c60483.pth``) use
the DINOv3 repository's key names; timm's ``eva.checkpoint_filter_fn`` converts them
(``storage_tokens`` → ``reg_token``, ``ls1.gamma`` → ``gamma_1``, ``qkv.bias`` → ``q_bias`` +
``v_bias``, drops ``mask_token``, ``rope_embed.periods`` and ``qkv.bias_mask``). timm's own
``model.safetensors`` files are already in timm's layout.

The official checkpoints carry a ``qkv.bias`` whose k third is masked out. When its q and v
thirds are all zero (the distilled models) the plain timm arch fits; otherwise the ``_qkvb``
arch is built so no bias is silently dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from src_models.weights import get_spec, load_state_dict, load_strict, resolve, resolve_checked

if TYPE_CHECKING:
    from timm.models.eva import Eva

DINOV3_ARCHS: dict[str, str] = {
    "vits16": "vit_small_patch16_dinov3",
    "vitb16": "vit_base_patch16_dinov3",
    "vitl16": "vit_large_patch16_dinov3",
}


def is_official_layout(state: dict[str, torch.Tensor]) -> bool:
    """True for a state dict with the DINOv3 repository's key names."""
    return "storage_tokens" in state


def has_qkv_bias(state: dict[str, torch.Tensor]) -> bool:
    """True when the checkpoint has nonzero q or v attention biases (needs the ``_qkvb`` arch)."""
    if not is_official_layout(state):
        return "blocks.0.attn.q_bias" in state
    for key, value in state.items():
        if key.endswith("attn.qkv.bias"):
            q, _, v = value.float().chunk(3, dim=-1)
            if bool(q.abs().max() > 0) or bool(v.abs().max() > 0):
                return True
    return False


def to_timm_layout(state: dict[str, torch.Tensor], model: Eva) -> dict[str, torch.Tensor]:
    """Convert an official DINOv3 state dict to ``model``'s timm keys (timm files pass as-is)."""
    if not is_official_layout(state):
        return state
    from timm.models.eva import checkpoint_filter_fn

    if getattr(model.blocks[0].attn, "q_bias", None) is None:  # zero biases: see has_qkv_bias
        state = {k: v for k, v in state.items() if not k.endswith("attn.qkv.bias")}
    return checkpoint_filter_fn(state, model)


def load_dinov3_weights(model: Eva, state: dict[str, torch.Tensor], source: Path | str) -> None:
    """Load an official or timm-layout DINOv3 state dict into ``model`` (strict).

    Raises:
        RuntimeError: one line saying the file is not this DINOv3 (another family or size).
    """
    if "pos_embed" in state and "rope_embed.periods" not in state:
        raise RuntimeError(
            f"{source} is a DINOv2 (or other absolute-position ViT) checkpoint, not DINOv3: "
            "use it with a dinov2_* backbone"
        )
    converted = to_timm_layout(state, model)
    load_strict(model, converted, source, "pick the DINOv3 weights that match the model size")


def create_dinov3(size: str, qkv_bias: bool = False, **overrides: Any) -> Eva:
    """A randomly initialised timm DINOv3 ViT (any input size that is a multiple of 16).

    ``overrides`` (``depth``, ``embed_dim``, ``num_heads``) build test-sized models.
    """
    import timm

    if size not in DINOV3_ARCHS:
        raise ValueError(f"unknown DINOv3 size {size!r}: choose one of {', '.join(DINOV3_ARCHS)}")
    arch = DINOV3_ARCHS[size] + ("_qkvb" if qkv_bias else "")
    model = timm.create_model(
        arch, pretrained=False, num_classes=0, dynamic_img_size=True, **overrides
    )
    return cast("Eva", model)


def build_dinov3(size: str = "vits16", weights: str | Path | None = None) -> Eva:
    """A timm DINOv3 ViT in eval mode.

    Args:
        size: one of ``DINOV3_ARCHS`` (``vits16``, ``vitb16``, ``vitl16``).
        weights: ``"random"`` for random init (tests), a checkpoint path (official ``.pth``
            or timm ``.safetensors``), or None to find the official weights locally (see
            :mod:`src_models.weights`); a missing checkpoint raises RuntimeError saying how to
            request access and where to put the file.
    """
    if size not in DINOV3_ARCHS:
        raise ValueError(f"unknown DINOv3 size {size!r}: choose one of {', '.join(DINOV3_ARCHS)}")
    if weights == "random":
        return create_dinov3(size).eval().requires_grad_(False)
    spec = get_spec(f"dinov3_{size}")
    path = resolve_checked(spec, weights)
    state = load_state_dict(path)
    model = create_dinov3(size, qkv_bias=has_qkv_bias(state))
    load_dinov3_weights(model, state, path)
    return model.eval().requires_grad_(False)


def weights_tag(weights: str | Path | None, spec_name: str) -> str:
    """A short identity of the weights a model was built with (for on-disk caches).

    ``random`` weights return ``"random"`` (never cached on disk); a file returns its name,
    size and modification time.
    """
    if weights == "random":
        return "random"
    try:
        path = resolve(spec_name, weights)
    except (RuntimeError, ValueError):
        return "unknown"
    stat = path.stat()
    return f"{path.name}-{stat.st_size}-{stat.st_mtime_ns}"
