"""Golden features of the official DINOv2 and DINOv3 ViTs (tiny, seeded weights).

Usage::

    python scripts/parity/dino_parity.py --official /path/to/dinov2   # commit b8931f7
    python scripts/parity/dino_parity.py --official /path/to/dinov3 --family dinov3  # 6876159

Builds the official ``DinoVisionTransformer`` with 2 blocks of width 32 (DINOv2; plain and
with 4 registers, each with the interpolation settings of its torch.hub entry) or 64
(DINOv3 S/16 settings), fills its parameters with :func:`tests.parity.seeded_state`, and
saves the final-norm patch tokens (``x_norm_patchtokens`` / ``get_intermediate_layers``)
for a real image at the native grid and at two other grids. No stubbed imports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, real_or_synthetic  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.parity import fill_seeded, save_golden  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)

# family → (grids (rows, cols) in patches; native first), patch
GRIDS = {"dinov2": ([(37, 37), (16, 22), (40, 40)], 14), "dinov3": ([(14, 14), (16, 22)], 16)}


def model_input(image: np.ndarray, grid: tuple[int, int], patch: int) -> torch.Tensor:
    """(h, w, 3) uint8 at one pixel per patch → (1, 3, rows·patch, cols·patch) normalised:
    every pixel repeated patch × patch times (exact in any numpy)."""
    x = image[: grid[0], : grid[1]].astype(np.float32) / 255.0
    x = np.repeat(np.repeat(x, patch, 0), patch, 1)
    x = (x - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def official_dinov2(registers: bool) -> torch.nn.Module:
    from dinov2.models.vision_transformer import DinoVisionTransformer

    return DinoVisionTransformer(
        img_size=518,
        patch_size=14,
        embed_dim=32,
        depth=2,
        num_heads=2,
        init_values=1.0,
        block_chunks=0,
        num_register_tokens=4 if registers else 0,
        # torch.hub settings: plain models offset 0.1 without antialias, _reg models the reverse
        interpolate_antialias=registers,
        interpolate_offset=0.0 if registers else 0.1,
    )


def official_dinov3() -> torch.nn.Module:
    from dinov3.models.vision_transformer import DinoVisionTransformer

    return DinoVisionTransformer(
        img_size=224,
        patch_size=16,
        pos_embed_rope_base=100,
        pos_embed_rope_normalize_coords="separate",
        pos_embed_rope_rescale_coords=2,
        pos_embed_rope_dtype="fp32",
        embed_dim=64,
        depth=2,
        num_heads=2,
        ffn_ratio=4,
        qkv_bias=True,
        layerscale_init=1.0e-05,
        norm_layer="layernormbf16",
        ffn_layer="mlp",
        ffn_bias=True,
        proj_bias=True,
        n_storage_tokens=4,
        mask_k_bias=True,
    )


@torch.no_grad()
def tokens(model: torch.nn.Module, family: str, x: torch.Tensor) -> np.ndarray:
    if family == "dinov2":
        return model.forward_features(x)["x_norm_patchtokens"][0].numpy()
    return model.get_intermediate_layers(x, n=1, reshape=False, norm=True)[0][0].numpy()


def run(family: str, variant: str, model: torch.nn.Module, image: np.ndarray, src: str) -> None:
    if hasattr(model, "init_weights"):
        model.init_weights()  # DINOv3: fills the RoPE periods buffer (as torch.hub does)
    shapes = fill_seeded(model.eval())
    buffers = {f"buffer/{k}": v.numpy() for k, v in model.named_buffers()}
    grids, patch = GRIDS[family]
    arrays: dict[str, np.ndarray] = {"image": image, **buffers}
    for rows, cols in grids:
        arrays[f"tokens_{rows}x{cols}"] = tokens(
            model, family, model_input(image, (rows, cols), patch)
        )
    meta = {
        "family": family,
        "variant": variant,
        "param_shapes": {k: list(v) for k, v in shapes.items()},
        "grids": grids,
        "patch": patch,
        "input": src,
        "torch": torch.__version__,
    }
    path = save_golden(f"{family}_{variant}", arrays, meta)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--official", type=Path, required=True)
    parser.add_argument("--family", choices=["dinov2", "dinov3"], default="dinov2")
    args = parser.parse_args()
    sys.path.insert(0, str(args.official.resolve()))
    torch.manual_seed(0)
    rows = max(g[0] for g in GRIDS[args.family][0])
    cols = max(g[1] for g in GRIDS[args.family][0])
    image, _, src = real_or_synthetic(
        "perseg_examples/images/cat_00.jpg", "perseg_examples/masks/cat_00.png", (rows, cols), 0
    )
    if args.family == "dinov2":
        run("dinov2", "plain", official_dinov2(False), image, src)
        run("dinov2", "reg4", official_dinov2(True), image, src)
    else:
        run("dinov3", "vits16", official_dinov3(), image, src)


if __name__ == "__main__":
    main()
