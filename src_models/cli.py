"""`napari-incontext` command line: one subcommand per module in :data:`COMMANDS`.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Every error (bad arguments, bad input, out of memory, any exception)
ends with one line on stderr and exit code 2, never a traceback; set
``NAPARI_INCONTEXT_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from types import ModuleType
from typing import NoReturn

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


DEBUG_ENV = "NAPARI_INCONTEXT_DEBUG"
OUT_OF_MEMORY = (
    "out of memory: crop or downscale the images, run fewer slices at a time, or pick a "
    "backend with smaller features"
)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (exit 2) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line; the exception type when it says nothing useful."""
    text = " ".join(str(error).split())
    if isinstance(error, MemoryError):
        return text or OUT_OF_MEMORY
    if isinstance(error, (ValueError, RuntimeError, OSError)) and text:
        return text
    hint = f" (set {DEBUG_ENV}=1 for the traceback)"
    return f"{type(error).__name__}: {text}{hint}" if text else f"{type(error).__name__}{hint}"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="napari-incontext",
        description="Label one example, get proposals on every other slice or image.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def _show_warning(message: Warning | str, *_: object, **__: object) -> None:
    """Warnings in one line, without the source excerpt."""
    print(f"napari-incontext: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # restored by catch_warnings
            return int(COMMANDS[args.command].run(args))
    except KeyboardInterrupt:
        print("napari-incontext: interrupted, nothing written", file=sys.stderr)
        return 130
    except Exception as error:  # every error is one line: MemoryError, bugs, library errors
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"napari-incontext {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
