"""`napari-incontext train-segic`: fine-tune the SEGIC decoder on your own labelled images."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from src_models.heads.segic import SegicDecoder
    from src_models.heads.segic_data import EpisodeSource

from src_models.device import DEVICES

HELP = (
    "fine-tune (or train) the dinov2-segic decoder on a label stack or a folder of image+mask pairs"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", help="TIFF/NPY stack, or a folder of 2D images")
    parser.add_argument(
        "--labels",
        required=True,
        help="label stack of the same shape, or a folder of masks named like the images",
    )
    parser.add_argument(
        "--out", required=True, help="checkpoint to write (released SEGIC format) + <out>.train.pt"
    )
    parser.add_argument(
        "--init",
        default="segic_dinov2_l_80kx12e",
        help="segic_dinov2_l_80kx12e, segic_dinov2_l_160kx12e, a checkpoint path, or 'scratch'",
    )
    parser.add_argument(
        "--backbone", default="vitl14", help="DINOv2 size (the released checkpoints need vitl14)"
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="DINOv2 checkpoint path, or 'random' (testing only)",
    )
    parser.add_argument(
        "--input-size", type=int, default=896, help="padded input side, a multiple of 28"
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--augment", default="instance", choices=["instance", "semantic", "none"])
    parser.add_argument(
        "--max-gap", type=int, default=None, help="pair stack slices at most this far apart"
    )
    parser.add_argument("--num-points", type=int, default=12544, help="loss points per mask")
    parser.add_argument("--min-area", type=int, default=100, help="smallest object kept, in pixels")
    parser.add_argument(
        "--box-prob", type=float, default=0.5, help="chance of a GT box prompt per episode"
    )
    parser.add_argument(
        "--no-reversion", action="store_true", help="skip the context-reversion pass"
    )
    parser.add_argument(
        "--text-embedding", default=None, help="file from `segic-text` (else a zero text vector)"
    )
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--resume", action="store_true", help="continue from --out and its .train.pt sidecar"
    )
    parser.add_argument("--device", default="auto", choices=list(DEVICES))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _decoder(args: argparse.Namespace, feat_dim: int) -> SegicDecoder:
    from src_models.heads.segic import SEGIC_CHECKPOINTS, build_segic_decoder, load_segic_decoder

    if args.init == "scratch":
        return build_segic_decoder(feat_dim=feat_dim, input_size=args.input_size)
    if args.init in SEGIC_CHECKPOINTS:
        return load_segic_decoder(None, args.init, feat_dim, args.input_size)
    return load_segic_decoder(args.init, SEGIC_CHECKPOINTS[0], feat_dim, args.input_size)


def _source(args: argparse.Namespace) -> EpisodeSource:
    from src_models.heads.segic_data import EpisodeSource
    from src_models.inputs import prepare
    from src_models.io import read_images, read_labels

    images = read_images(args.images)
    data = prepare(images.images, read_labels(args.labels, images))
    return EpisodeSource(data.images, data.labels, args.max_gap, longest=args.input_size)


def _line(progress: dict[str, Any]) -> str:
    eta = datetime.timedelta(seconds=round(progress["eta"]))
    return (
        f"step {progress['step']}/{progress['steps']} loss {progress['loss']:.4f} "
        f"lr {progress['lr']:.1e} eta {eta}"
    )


def _run_problem(path: Path) -> str | None:
    """None when ``path`` (a checkpoint or its sidecar) belongs to a train-segic run."""
    import torch

    from src_models.heads.segic_train import sidecar_path

    side = path if path.name.endswith(".train.pt") else sidecar_path(path)
    try:
        state = torch.load(side, map_location="cpu", weights_only=True)
    except Exception:  # missing or unreadable sidecar: not a run of ours
        return f"it is not a train-segic output (no readable {side.name} beside it)"
    if isinstance(state, dict) and {"step", "optimizer"} <= set(state):
        return None
    return f"it is not a train-segic output ({side.name} holds no training state)"


def _check_out(args: argparse.Namespace) -> Path:
    """Refuse a dangerous or foreign --out (and sidecar) before training starts."""
    from src_models.heads.segic_train import sidecar_path
    from src_models.outputs import check_output

    given = [args.images, args.labels, args.init, args.weights, args.text_embedding]
    inputs = [p for p in given if p and Path(p).exists()]
    replace = args.overwrite or args.resume  # resuming continues writing the same run
    out = check_output(args.out, overwrite=replace, kind="file", inputs=inputs, owner=_run_problem)
    check_output(
        sidecar_path(out),
        overwrite=replace,
        kind="file",
        inputs=inputs,
        flag="--out's sidecar",
        owner=_run_problem,
    )
    return out


def run(args: argparse.Namespace) -> int:
    from src_models.backbones.dinov2 import build_dinov2
    from src_models.device import pick_device
    from src_models.heads.segic_text import load_text_embedding
    from src_models.heads.segic_train import SegicTrainConfig, Trainer, train_segic

    out = _check_out(args)
    source = _source(args)
    backbone = build_dinov2(args.backbone, args.weights)
    decoder = _decoder(args, int(backbone.embed_dim))
    config = SegicTrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        num_points=args.num_points,
        reversion=not args.no_reversion,
        box_prob=args.box_prob,
        augment=args.augment,
        min_area=args.min_area,
        save_every=args.save_every,
        seed=args.seed,
    )
    text = load_text_embedding(args.text_embedding) if args.text_embedding else None
    trainer = Trainer(decoder, backbone, config, text, pick_device(args.device))
    every = max(1, args.steps // 100)
    print(f"train-segic: {len(source)} pairs, {args.steps} steps, writing {out}", file=sys.stderr)
    for progress in train_segic(trainer, source, out, resume=args.resume):
        if not args.quiet and (
            progress["step"] % every == 0 or progress["step"] == progress["steps"]
        ):
            print(_line(progress), file=sys.stderr, flush=True)
    print(f"wrote {out} and {out.name}.train.pt", file=sys.stderr)
    return 0
