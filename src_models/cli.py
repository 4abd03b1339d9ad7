"""`napari-incontext` command line: one subcommand per module in :data:`COMMANDS`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Bad input ends with a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from src_models.commands import (
    backends_cmd,
    demo_cmd,
    eval_cmd,
    propagate_cmd,
    segic_text_cmd,
    train_segic_cmd,
    weights_cmd,
)

COMMANDS: dict[str, ModuleType] = {
    "propagate": propagate_cmd,
    "backends": backends_cmd,
    "demo": demo_cmd,
    "eval": eval_cmd,
    "weights": weights_cmd,
    "train-segic": train_segic_cmd,
    "segic-text": segic_text_cmd,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-incontext",
        description="Label one example, get proposals on every other slice or image.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command].run(args))
    except (ValueError, RuntimeError, OSError) as error:
        print(f"napari-incontext {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-incontext: interrupted, nothing written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
