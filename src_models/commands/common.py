"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
from typing import Any

from src_models.device import DEVICES


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend, --device, the weights slots and --option, as every model command takes them."""
    parser.add_argument("--backend", default="classic", help="registry name (see `backends`)")
    parser.add_argument("--device", default="auto", choices=list(DEVICES))
    parser.add_argument(
        "--weights", default=None, help="backbone checkpoint file (or 'random' for tests)"
    )
    parser.add_argument(
        "--head-weights", default=None, help="trained head checkpoint (dinov2-segic's decoder)"
    )
    parser.add_argument(
        "--sam-weights", default=None, help="SAM checkpoint (dinov2-sam, sam_refine)"
    )
    parser.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="backend option, repeatable (see `napari-incontext backends --options NAME`)",
    )


def backend_from_args(args: argparse.Namespace) -> Any:
    """Build the backend the arguments ask for (options validated by its config)."""
    from src_models.config import parse_pairs
    from src_models.registry import build_backend

    return build_backend(
        args.backend,
        device=args.device,
        weights=args.weights,
        head_weights=args.head_weights,
        sam_weights=args.sam_weights,
        **parse_pairs(args.option),
    )
