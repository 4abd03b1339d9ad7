"""SAM head benchmark: per-slice seconds (encoder / decoder / refinement, PerSAM-F training)
with random weights, and, when official weights are on this machine, PerSeg mIoU and DAVIS
J&F of ``dinov2-sam`` / PerSAM / PerSAM-F next to the paper's figures.

    python scripts/bench_sam.py --timing            # random vit_b at 1024 px (slow on a CPU)
    NAPARI_INCONTEXT_WEIGHTS=/path/to/ckpts python scripts/bench_sam.py --eval

Timings vary several-fold between runs on a shared machine: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# PerSAM paper (ViT-H): PerSeg mIoU and DAVIS-2017 val J&F (methods.md §7).
PAPER = {
    "persam": {"PerSeg mIoU": 89.32, "DAVIS-17 J&F": 60.3},
    "persam_f": {"PerSeg mIoU": 95.33, "DAVIS-17 J&F": 71.9},
}


def _stack(n: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    stack, labels = [], []
    for i in range(n):
        disk = (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2 - 5 * i) ** 2 < (shape[0] / 5) ** 2
        stack.append(0.3 + 0.4 * disk + 0.05 * rng.standard_normal(shape))
        labels.append(disk.astype(np.int32) if i == 0 else np.zeros(shape, np.int32))
    return np.stack(stack).astype(np.float32), np.stack(labels)


def timing(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per-slice seconds of the dinov2-sam stages with random weights."""
    from src_models.engine import propagate
    from src_models.registry import build_backend

    stack, labels = _stack(args.slices, (480, 854))
    rows = {}
    for dtype in args.dtypes:
        for variant, extra in (("persam", {}), ("persam_f", {"persam_f": True})):
            if variant == "persam_f" and dtype != args.dtypes[0]:
                continue
            backend = build_backend(
                "dinov2-sam",
                device=args.device,
                weights="random",
                sam_model=args.sam_model,
                dtype=dtype,
                **extra,
            )
            per_slice: dict[str, list[float]] = {}
            fit: dict[str, float] = {}
            for res in propagate(stack, labels, backend):
                fit |= {k: v for k, v in res.timings.items() if k.startswith("fit")}
                stages = ("backbone", "sam_encoder", "prior", "decoder", "refinement")
                for key in stages:
                    per_slice.setdefault(key, []).append(res.timings.get(key, float("nan")))
            row = {k: float(np.mean(v)) for k, v in per_slice.items()} | fit
            rows[f"{variant} {dtype}"] = row
            print(
                f"{variant:9s} {dtype:9s}",
                json.dumps({k: round(v, 3) for k, v in row.items()}),
                flush=True,
            )
    return rows


def evaluate(args: argparse.Namespace) -> None:
    """PerSeg 1-shot mIoU and DAVIS J&F with official weights, or say why it skipped."""
    from src_models.evaluation.datasets import load_datasets
    from src_models.evaluation.protocols import drain, one_shot, video
    from src_models.registry import build_backend
    from src_models.weights import available

    if not available(f"sam_{args.sam_model}", "dinov2_vits14"):
        print(
            f"eval skipped: official sam_{args.sam_model} and dinov2_vits14 weights not found "
            "(set NAPARI_INCONTEXT_WEIGHTS or run `napari-incontext weights download ...`)"
        )
        return
    if not DATA.is_dir():
        print(f"eval skipped: {DATA} is absent")
        return
    variants = {
        "dinov2-sam": {},
        "persam": {"correspondence": "sam"},
        "persam_f": {"correspondence": "sam", "persam_f": True},
    }
    perseg = load_datasets(DATA / "perseg_examples")[0]
    davis = load_datasets(DATA / "davis2016_val", max_side=args.davis_side)[0]
    for name, opts in variants.items():
        backend = build_backend("dinov2-sam", device=args.device, sam_model=args.sam_model, **opts)
        start = time.perf_counter()
        seg = drain(one_shot(perseg, backend, episodes=1))
        vid = drain(video(davis, backend, limit=args.davis_sequences, max_frames=args.davis_frames))
        paper = PAPER.get(name, {})
        print(
            f"{name:10s} PerSeg mIoU {100 * seg.summary['mIoU']:.1f} "
            f"(paper {paper.get('PerSeg mIoU', '-')}, "
            f"ViT-H, all of PerSeg)  DAVIS-16 J&F {100 * vid.summary['J&F']:.1f} (paper DAVIS-17 "
            f"{paper.get('DAVIS-17 J&F', '-')})  [{time.perf_counter() - start:.0f} s]",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", action="store_true", help="random-weight per-slice timings")
    parser.add_argument("--eval", action="store_true", help="PerSeg / DAVIS with official weights")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sam-model", default="vit_b")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--slices", type=int, default=3, help="1 example + N-1 targets")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--davis-sequences", type=int, default=None)
    parser.add_argument("--davis-frames", type=int, default=None)
    parser.add_argument("--davis-side", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not (args.timing or args.eval):
        args.timing = args.eval = True
    if args.timing:
        timing(args)
    if args.eval:
        evaluate(args)


if __name__ == "__main__":
    main()
