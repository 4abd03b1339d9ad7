"""Golden INSID3 steps from the official code (visinf/INSID3 at f1c9622) on a tiny DINOv3.

Usage::

    python scripts/parity/insid3_parity.py --official /path/to/INSID3 --dinov3 /path/to/dinov3

Runs ``models.insid3.INSID3`` with the seeded 2-block DINOv3 of ``dino_parity.py`` at
``image_size`` 256 (a 16×16 grid), ``svd_components`` 20 (the official 500 would remove
every channel of a 64-wide model) and ``tau`` 0.95 (random-weight tokens are alike: at 0.6
they form one cluster), on two real reference images with masks and one target (PerSeg
cat, 128 px, each pixel repeated 2×2). Saves the positional basis, the features and debiased
features, the prototype, candidates, clusters, the upsampled mask, and the official
``downsample_mask`` (reference patch rule with its fallbacks) on eight masks.

Stubbed import: ``pycocotools`` (``utils.data`` imports it for COCO polygons, not run here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, real_or_synthetic, stub_modules  # noqa: E402
from dino_parity import MEAN, STD, official_dinov3  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.parity import fill_seeded, save_golden  # noqa: E402

IMAGE_SIZE = 256
SVD = 20
TAU = 0.95  # random tiny-model tokens are alike: at the official 0.6 they form one cluster
SHOTS = [("perseg_examples/images/cat_00.jpg", "perseg_examples/masks/cat_00.png")] + [
    ("perseg_examples/images/cat_01.jpg", "perseg_examples/masks/cat_01.png")
]
TARGET = ("perseg_examples/images/cat_02.jpg", "perseg_examples/masks/cat_02.png")


def to_input(image: np.ndarray) -> torch.Tensor:
    """(128, 128, 3) uint8 → (1, 3, 256, 256) normalised, each pixel repeated 2×2."""
    x = np.repeat(np.repeat(image.astype(np.float32) / 255.0, 2, 0), 2, 1)
    return torch.from_numpy(np.ascontiguousarray(((x - MEAN) / STD).transpose(2, 0, 1)))[None]


def rule_masks(real: list[np.ndarray]) -> np.ndarray:
    """(8, 256, 256) bool masks exercising the official patch rule and its fallbacks."""
    masks = np.zeros((8, IMAGE_SIZE, IMAGE_SIZE), bool)
    masks[0, 40:120, 30:200] = True  # large: bilinear > 0.5
    masks[1, 100:110, 100:110] = True  # under one patch: nearest fallback or centroid
    masks[2, 17:21, 50:54] = True  # tiny, off the nearest sample points: centroid
    masks[3, :, 128:134] = True  # thin vertical bar
    yy, xx = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]
    masks[4] = (yy - 180) ** 2 + (xx - 60) ** 2 < 30**2
    masks[5] = np.abs(yy - xx - 20) < 9  # diagonal band: area and centre samples disagree
    masks[6] = ((yy // 5) + (xx // 5)) % 2 == 0  # 5-px checkerboard
    masks[7] = np.repeat(np.repeat(real[0], 2, 0), 2, 1)  # a real object mask
    return masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--official", type=Path, required=True, help="INSID3 checkout")
    parser.add_argument("--dinov3", type=Path, required=True, help="dinov3 checkout")
    args = parser.parse_args()
    sys.path.insert(0, str(args.dinov3.resolve()))
    sys.path.insert(0, str(args.official.resolve()))
    stub_modules("pycocotools.mask")
    from models.insid3 import INSID3
    from utils.clustering import agglomerative_clustering
    from utils.data import downsample_mask

    torch.manual_seed(0)
    encoder = official_dinov3()
    encoder.init_weights()
    shapes = fill_seeded(encoder.eval())
    model = INSID3(
        encoder,
        image_size=IMAGE_SIZE,
        svd_components=SVD,
        tau=TAU,
        resize_to_orig_size=False,  # as build_insid3_from_args (the evaluation)
        device="cpu",
    ).eval()

    images, masks, sources = [], [], []
    for image_path, mask_path in [*SHOTS, TARGET]:
        img, msk, src = real_or_synthetic(image_path, mask_path, (128, 128), len(images))
        images.append(img)
        masks.append(msk)
        sources.append(src)
    refs = torch.cat([to_input(i) for i in images[:-1]])
    ref_masks = torch.from_numpy(
        np.stack([np.repeat(np.repeat(m, 2, 0), 2, 1) for m in masks[:-1]])
    )
    target = to_input(images[-1])

    with torch.no_grad():
        fmaps = F.normalize(model._extract_features(torch.cat([refs, target])[None]), dim=2)
        debiased = model._debias_features(fmaps)
        pred = model.predict_mask(refs, ref_masks, target)
        h = w = IMAGE_SIZE // 16
        tgt = fmaps[0, -1].reshape(fmaps.shape[2], -1).T
        clusters = agglomerative_clustering(tgt, model.tau).reshape(h, w)
        # the patch-level mask: the final upsampling undone is not possible, so rerun the steps
        cand_maps = [
            torch.einsum("bchw,bcxy->bhwxy", debiased[:, m], debiased[:, -1])
            for m in range(len(refs))
        ]
        protos = []
        for s in range(len(refs)):
            ms = downsample_mask(ref_masks[s : s + 1][:, None], h, w)
            protos.append(debiased[0, s][:, ms].mean(1))
        proto = F.normalize(torch.stack(protos).mean(0), dim=0)[:, None]
        cand = model._locate_candidates(cand_maps, ref_masks[:, None], debiased[:, -1], proto, h, w)
        rules = rule_masks(masks)
        rule_out = np.stack(
            [downsample_mask(torch.from_numpy(m)[None, None], h, w).numpy() for m in rules]
        )

    arrays = {
        "images": np.stack(images),
        "masks": np.stack(masks),
        "basis": model.positional_basis.numpy(),
        "features": fmaps[0].numpy(),
        "debiased": debiased[0].numpy(),
        "prototype": proto[:, 0].numpy(),
        "candidates": cand.numpy(),
        "clusters": clusters.numpy(),
        "pred": pred.numpy(),
        "rule_masks": rules,
        "rule_patch": rule_out,
    }
    meta = {
        "param_shapes": {k: list(v) for k, v in shapes.items()},
        "image_size": IMAGE_SIZE,
        "svd_components": SVD,
        "tau": model.tau,
        "merge_threshold": model.merge_threshold,
        "inputs": sources,
        "torch": torch.__version__,
    }
    path = save_golden("insid3", arrays, meta)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB); pred area {int(pred.sum())}")


if __name__ == "__main__":
    main()
