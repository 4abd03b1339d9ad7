"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import json
from typing import Any


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` → dict; values are read as JSON when they parse, else strings."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {pair!r}: write it as key=value")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """--backend, --device, --weights and --option, as every model-running command takes them."""
    parser.add_argument("--backend", default="classic", help="registry name (see `backends`)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--weights", default=None, help="local checkpoint file for the backbone")
    parser.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="backend option, repeatable (e.g. --option input_size=448)",
    )


def backend_from_args(args: argparse.Namespace) -> Any:
    from src_models.registry import build_backend

    return build_backend(
        args.backend, device=args.device, weights=args.weights, **parse_options(args.option)
    )
