"""Build Segment Anything models and load their official checkpoints through the weights manager."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from torch import nn

from src_models.cache import model_tag
from src_models.weights import (
    WeightsSpec,
    get_spec,
    load_state_dict,
    load_strict,
    resolve_checked,
)

if TYPE_CHECKING:
    from segment_anything.modeling import Sam


@dataclass(frozen=True)
class SamArch:
    """Shape of a SAM model (the official ones use ``segment_anything``'s own builders).

    Attributes:
        name: ``vit_b``, ``vit_l``, ``vit_h`` or a test architecture.
        embed_dim, depth, num_heads, global_attn: image-encoder ViT.
        img_size: encoder input side (1024 for the official models).
        prompt_dim: prompt/decoder channel width (256 officially).
        decoder_mlp: MLP width in the two-way transformer (2048 officially).
        decoder_heads: attention heads in the two-way transformer (8 officially).
        window: local-attention window of the encoder (14 officially).
    """

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    global_attn: tuple[int, ...]
    img_size: int = 1024
    prompt_dim: int = 256
    decoder_mlp: int = 2048
    decoder_heads: int = 8
    window: int = 14


SAM_ARCHS: dict[str, SamArch] = {
    "vit_b": SamArch("vit_b", 768, 12, 12, (2, 5, 8, 11)),
    "vit_l": SamArch("vit_l", 1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": SamArch("vit_h", 1280, 32, 16, (7, 15, 23, 31)),
}


def _official_builder(name: str):  # type: ignore[no-untyped-def]
    from segment_anything import build_sam_vit_b, build_sam_vit_h, build_sam_vit_l

    return {"vit_b": build_sam_vit_b, "vit_l": build_sam_vit_l, "vit_h": build_sam_vit_h}[name]


def _build_modules(arch: SamArch) -> Sam:
    """A randomly initialised ``segment_anything.modeling.Sam`` of any :class:`SamArch`."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    grid = arch.img_size // 16
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.depth,
            embed_dim=arch.embed_dim,
            img_size=arch.img_size,
            mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            num_heads=arch.num_heads,
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=arch.global_attn,
            window_size=arch.window,
            out_chans=arch.prompt_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(arch.img_size, arch.img_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2,
                embedding_dim=arch.prompt_dim,
                mlp_dim=arch.decoder_mlp,
                num_heads=arch.decoder_heads,
            ),
            transformer_dim=arch.prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def build_sam_random(arch: str | SamArch) -> Sam:
    """A SAM with random weights; official sizes come from ``segment_anything``'s builders."""
    arch = get_arch(arch)
    if arch.name in ("vit_b", "vit_l", "vit_h") and arch == SAM_ARCHS[arch.name]:
        return _official_builder(arch.name)(checkpoint=None)
    return _build_modules(arch)


def get_arch(arch: str | SamArch) -> SamArch:
    if isinstance(arch, SamArch):
        return arch
    if arch not in SAM_ARCHS:
        raise ValueError(f"unknown SAM model {arch!r}: choose one of {', '.join(SAM_ARCHS)}")
    return SAM_ARCHS[arch]


def sam_spec(arch: str | SamArch) -> WeightsSpec | None:
    """The weights-manager spec of an official architecture (None for test architectures)."""
    name = get_arch(arch).name
    return get_spec(f"sam_{name}") if name in ("vit_b", "vit_l", "vit_h") else None


def load_sam_weights(model: nn.Module, path: Path) -> None:
    """Load an official SAM checkpoint (a raw state dict) strictly, without running pickled code."""
    hint = "pick the SAM checkpoint of the same size (vit_b / vit_l / vit_h)"
    load_strict(model, load_state_dict(path), path, hint)


def _checkpoint_path(arch: SamArch, weights: str | Path | None, spec: WeightsSpec | None) -> Path:
    """Resolve (and verify once) the checkpoint file of ``arch``."""
    spec = spec or sam_spec(arch)
    if spec is None:
        if weights is None:
            raise ValueError(f"SAM {arch.name!r} has no official weights: pass a path or 'random'")
        path = Path(str(weights)).expanduser()
        if not path.is_file():
            raise RuntimeError(f"weights file {path} does not exist")
        return path
    return resolve_checked(spec, weights)  # a fine-tuned file is checked by the strict load


def build_sam(
    arch: str | SamArch = "vit_b",
    weights: str | Path | None = None,
    spec: WeightsSpec | None = None,
) -> Sam:
    """A ``segment_anything`` SAM in eval mode with frozen parameters, on the CPU.

    Args:
        arch: a key of :data:`SAM_ARCHS` or a :class:`SamArch`.
        weights: ``"random"`` (tests), a checkpoint path, or None to look in the weights
            directories (``$NAPARI_INCONTEXT_WEIGHTS``, the user cache dir).
        spec: the spec the file must match (default: the official one of ``arch``); its
            sha256 is checked once per process.

    The model carries ``weights_tag``: a string naming the weights (used by on-disk caches).
    """
    arch = get_arch(arch)
    if weights == "random":
        model = build_sam_random(arch)
        model.weights_tag = f"random:{model_tag(model)}"
        return model.eval().requires_grad_(False)
    path = _checkpoint_path(arch, weights, spec)  # fail fast, before building a large model
    model = build_sam_random(arch)
    load_sam_weights(model, path)
    stat = path.stat()
    model.weights_tag = f"{arch.name}:{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    return model.eval().requires_grad_(False)
