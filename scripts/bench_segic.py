"""Benchmark hook for dinov2-segic.

1. Seconds per slice, backbone vs decoder, with RANDOM weights (timing does not depend on the
   values): DINOv2-L at 896 px by default (slow on a CPU: one run), ``--model vits14`` for a
   quicker, clearly labelled ViT-S run.
2. With the official weights on this machine (a SEGIC checkpoint and DINOv2-L, found through
   ``$NAPARI_INCONTEXT_WEIGHTS`` or the cache dir), FSS-1000 one-shot mIoU and DAVIS J&F on
   ../shared/data next to the paper's numbers; otherwise it says "skipped".

Usage: python scripts/bench_segic.py [--model vitl14] [--input-size 896] [--device cpu]
       [--threads N] [--skip-timing] [--limit N] [--max-frames N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from src_models.backbones.dinov2 import build_dinov2
from src_models.device import pick_device, pick_dtype
from src_models.heads.segic import build_segic_decoder
from src_models.heads.segic_infer import decode, encode_tokens, postprocess, preprocess
from src_models.heads.segic_text import TEXT_DIM

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PAPER = {"FSS-1000 mIoU": 86.8, "DAVIS-17 J&F": 71.4}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timing(
    model_name: str, input_size: int, device: torch.device, dtype: str, queries: int
) -> dict[str, float]:
    """One backbone forward and one decoder call (``queries`` objects) with random weights."""
    torch.manual_seed(0)
    backbone = build_dinov2(model_name, "random").to(device=device, dtype=pick_dtype(dtype, device))
    decoder = (
        build_segic_decoder(feat_dim=int(backbone.embed_dim), input_size=input_size)
        .to(device)
        .eval()
    )
    image = np.random.default_rng(0).random((480, 854, 3)).astype(np.float32)
    with torch.inference_mode():
        x, valid = preprocess(image, input_size)
        x = x.to(device, next(backbone.parameters()).dtype)
        if device.type == "cuda":  # warm-up only where it is cheap
            encode_tokens(backbone, x)
        _sync(device)
        start = time.perf_counter()
        feats = encode_tokens(backbone, x).float()
        _sync(device)
        backbone_s = time.perf_counter() - start
        protos = torch.randn(queries, feats.shape[1], device=device)
        types = torch.eye(queries, dtype=torch.long, device=device)
        text = torch.zeros(queries, TEXT_DIM, device=device)
        decode(decoder, feats, protos, protos, types, text)  # warm-up (small)
        _sync(device)
        start = time.perf_counter()
        logits, _ = decode(decoder, feats, protos, protos, types, text)
        postprocess(logits, input_size, valid, image.shape[:2])
        _sync(device)
        decoder_s = time.perf_counter() - start
    return {
        "backbone_s": backbone_s,
        "decoder_s": decoder_s,
        "dtype": str(next(backbone.parameters()).dtype),
    }


def accuracy(device: str, limit: int | None, max_frames: int | None) -> None:
    from src_models.evaluation.datasets import load_datasets
    from src_models.evaluation.protocols import drain, one_shot, video
    from src_models.registry import BACKENDS, build_backend

    if not BACKENDS["dinov2-segic"].weights_available():
        print(
            "accuracy: skipped (segic_dinov2_l_80kx12e.pth / _160kx12e.pth and dinov2_vitl14 "
            "not found; see docs/backends/dinov2-segic.md)"
        )
        return
    if not DATA.exists():
        print(f"accuracy: skipped ({DATA} is absent)")
        return
    backend = build_backend("dinov2-segic", device=device)
    fss = [d for d in load_datasets(DATA / "fss1000_geti") if d.kind == "images"]
    davis = [d for d in load_datasets(DATA / "davis2016_val") if d.kind == "video"]
    if fss:
        result = drain(one_shot(fss[0], backend, episodes=limit))
        print(
            f"FSS-1000 (3 classes here) mIoU {100 * result.summary['mIoU']:.1f}   "
            "paper (1000 classes) "
            f"{PAPER['FSS-1000 mIoU']}"
        )
    if davis:
        result = drain(video(davis[0], backend, limit=limit, max_frames=max_frames))
        print(
            f"DAVIS-2016 val ({int(result.summary['sequences'])} seq.) "
            f"J&F {100 * result.summary['J&F']:.1f}   "
            f"paper DAVIS-17 {PAPER['DAVIS-17 J&F']} (multi-object, not the same set)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="vitl14", help="DINOv2 size for the timing run")
    parser.add_argument("--input-size", type=int, default=896)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--dtype", default="float32", help="backbone dtype: float32, bfloat16 or auto"
    )
    parser.add_argument("--queries", type=int, default=1, help="objects decoded per slice")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--limit", type=int, default=None, help="episodes / sequences per dataset")
    parser.add_argument(
        "--max-frames", type=int, default=None, help="first frames of each DAVIS sequence"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if not args.skip_timing:
        t = timing(args.model, args.input_size, device, args.dtype, args.queries)
        label = (
            f"DINOv2-{args.model[3:].upper()} (random weights) at {args.input_size} px, "
            f"{t['dtype']}, {device}"
        )
        print(
            f"{label}, {torch.get_num_threads()} threads: backbone {t['backbone_s']:.2f} s/slice, "
            f"decoder ({args.queries} object) {t['decoder_s']:.3f} s/slice, "
            f"backbone/decoder {t['backbone_s'] / t['decoder_s']:.1f}x"
        )
    accuracy(args.device, args.limit, args.max_frames)


if __name__ == "__main__":
    main()
