"""Effect of bfloat16 on each backend: mask IoU against float32 on the same random weights.

Usage::

    python scripts/parity/bf16_effect.py [--out docs/bf16_effect.md]

Every backend is built twice with ``weights="random"`` after the same ``torch.manual_seed``
(identical weights), once with ``dtype=float32`` and once with ``dtype=bfloat16``, on the CPU.
The example is PerSeg's cat_00 with its mask (synthetic disks when ../shared/data is
absent), the targets cat_01 and cat_02, all at 256 px on the longest side. Random weights
give meaningless masks, so the numbers measure only how far reduced precision moves the
output: the IoU of the foreground (label > 0) of the two runs, per target, and the
relative error (max |bf16 − fp32| / max |fp32|) of the backbone output on the first target.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, real_or_synthetic  # noqa: E402

sys.path.insert(0, str(REPO))
from src_models.engine import propagate  # noqa: E402
from src_models.registry import build_backend  # noqa: E402

# backend → options (small inputs keep a CPU run to minutes)
CASES: dict[str, dict[str, object]] = {
    "dinov2": {"input_size": 448},
    "dinov2-sam": {"input_size": 448, "sam_model": "vit_b", "refine_steps": 2},
    "dinov2-sam (PerSAM prior)": {"correspondence": "sam", "sam_model": "vit_b"},
    "dinov2-segic": {"backbone": "vits14", "input_size": 448},
    "dinov3-insid3": {"input_size": 512},
    "dinov2-insid3": {"input_size": 518},
}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def inputs() -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    images, labels = [], []
    for i, name in enumerate(["cat_00", "cat_01", "cat_02"]):
        image, mask, _ = real_or_synthetic(
            f"perseg_examples/images/{name}.jpg", f"perseg_examples/masks/{name}.png", (256, 256), i
        )
        images.append(image)
        labels.append(mask.astype(np.int32) if i == 0 else None)
    return images, labels


def feature_array(features: object) -> np.ndarray:
    """The backbone output inside a backend's per-slice features (tokens or SAM embedding)."""
    for owner in (features, getattr(features, "dino", None), getattr(features, "sam", None)):
        for field in ("tokens", "embedding"):
            if owner is not None and getattr(owner, field, None) is not None:
                return np.asarray(getattr(owner, field), np.float32)
    raise TypeError(f"no tokens in {type(features).__name__}")


def run(
    name: str, options: dict[str, object], dtype: str
) -> tuple[list[np.ndarray], float, np.ndarray]:
    """Foreground masks of the targets, seconds, and the first target's backbone output."""
    torch.manual_seed(0)
    backend = build_backend(
        name.split(" ")[0], device="cpu", weights="random", dtype=dtype, **options
    )
    images, labels = inputs()
    start = time.perf_counter()
    results = sorted(propagate(images, labels, backend), key=lambda r: r.index)
    seconds = time.perf_counter() - start
    tokens = feature_array(backend.compute_features(images[1].astype(np.float32) / 255))
    backend.close()
    return [r.labels > 0 for r in results], seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=None, help="backend names to run")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = [
        "| backend | options | mask IoU bf16 vs fp32 (per target) | backbone output rel. "
        "error | fp32 s | bf16 s |"
    ]
    rows.append("|---|---|---|---|---|---|")
    for name, options in CASES.items():
        if args.only and name not in args.only:
            continue
        full, t32, f32 = run(name, options, "float32")
        half, t16, f16 = run(name, options, "bfloat16")
        ious = ", ".join(f"{iou(a, b):.3f}" for a, b in zip(full, half, strict=True))
        opts = " ".join(f"{k}={v}" for k, v in options.items())
        err = float(np.abs(f16 - f32).max() / np.abs(f32).max())
        rows.append(
            f"| {name.split(' ')[0]} | {opts} | {ious} | {err:.3f} | {t32:.1f} | {t16:.1f} |"
        )
        print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
