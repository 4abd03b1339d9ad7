"""`napari-incontext segic-text`: precompute a CLIP text embedding for the dinov2-segic backend."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "compute a SEGIC meta-instruction (CLIP text embedding) once and save it to a small file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "text", help='e.g. "a photo of a cell", "" or "please segment the instances"'
    )
    parser.add_argument(
        "--out", required=True, help="output file (.pt), used with --option text_embedding=FILE"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="CLIP model id or local folder (default openai/clip-vit-large-patch14)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="only use weights already in the Hugging Face cache"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def _not_ours(path: Path) -> str | None:
    """None when ``path`` is a text-embedding file this command wrote (its three keys)."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # unreadable = not one of ours
        return "it is not a napari-incontext text embedding"
    if isinstance(data, dict) and set(data) == {"embedding", "text", "model"}:
        return None
    return "it is not a napari-incontext text embedding"


def run(args: argparse.Namespace) -> int:
    from src_models.atomic import write_file
    from src_models.heads.segic_text import CLIP_MODEL, compute_text_embedding, save_text_embedding
    from src_models.outputs import check_output

    inputs = [args.model] if args.model and Path(args.model).exists() else []
    out = check_output(
        args.out, overwrite=args.overwrite, kind="file", inputs=inputs, owner=_not_ours
    )
    model = args.model or CLIP_MODEL
    embedding = compute_text_embedding(args.text, model, local_files_only=args.offline)
    write_file(out, lambda temp: save_text_embedding(temp, embedding, args.text, model))
    print(f"wrote {out} (text {args.text!r}, {model})", file=sys.stderr)
    return 0
