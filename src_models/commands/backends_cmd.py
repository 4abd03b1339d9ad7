"""`napari-incontext backends`: the registry with the weight status of each backend."""

from __future__ import annotations

import argparse

HELP = "list the backends, whether their weights are available, and whether a GPU is advised"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import json

    from src_models.registry import list_backends

    rows = list_backends()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        weights = "weights: ready" if row["weights_available"] else "weights: missing"
        gpu = ", GPU recommended" if row["gpu_recommended"] else ""
        print(f"{row['name']:<14} {weights}{gpu}\n    {row['description']}")
    return 0
