"""`napari-incontext segic-text`: precompute a CLIP text embedding for the dinov2-segic backend."""

from __future__ import annotations

import argparse
import sys

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


def run(args: argparse.Namespace) -> int:
    from src_models.heads.segic_text import CLIP_MODEL, compute_text_embedding, save_text_embedding
    from src_models.io import check_output

    out = check_output(args.out, args.overwrite)
    model = args.model or CLIP_MODEL
    embedding = compute_text_embedding(args.text, model, local_files_only=args.offline)
    save_text_embedding(out, embedding, args.text, model)
    print(f"wrote {out} (text {args.text!r}, {model})", file=sys.stderr)
    return 0
