"""`napari-incontext backends`: the registry with weight status, or one backend's options."""

from __future__ import annotations

import argparse

HELP = "list the backends (weights available? GPU advised?) or one backend's options"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--options", metavar="NAME", default=None, help="print the options of backend NAME"
    )


def config_table(config: type) -> str:
    """Markdown table of a config dataclass: option, type, default, range, help (a row a field)."""
    from src_models.config import option_table

    rows = ["| option | type | default | range | what it does |", "|---|---|---|---|---|"]
    for info in option_table(config):
        default = "none" if info.default is None else info.default
        span = info.range.text() if info.range else ""
        rows.append(f"| `{info.name}` | {info.type} | `{default}` | {span} | {info.help} |")
    return "\n".join(rows)


def options_table(name: str) -> str:
    """Markdown table of a backend's options (the README's "Backend options" section too)."""
    from src_models.registry import get_info

    return config_table(get_info(name).config)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from src_models.config import option_table
    from src_models.registry import get_info, list_backends

    if args.options:
        if args.json:
            rows = [dataclasses.asdict(o) for o in option_table(get_info(args.options).config)]
            print(json.dumps(rows, indent=2, default=str))
        else:
            print(options_table(args.options))
        return 0
    rows = list_backends()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        weights = "weights: ready" if row["weights_available"] else "weights: missing"
        gpu = ", GPU recommended" if row["gpu_recommended"] else ""
        print(f"{row['name']:<14} {weights}{gpu}\n    {row['description']}")
    return 0
