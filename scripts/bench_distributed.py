"""Throughput of `propagate --scheduler local` for 1 and 2 workers (1 thread each) against
the local run, classic, on a synthetic stack written as a zarr output.

    python scripts/bench_distributed.py            # --n 200 --size 128 --workers 1 2

Prints one table row per run: total seconds (cluster start, fit and all slices) and slices
per second from the first proposal to the last (the steady rate). ``--json PATH`` also
writes ``{"header", "rows", "markdown"}`` there (scripts/bench_scale_all.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from src_models.backends.classic import ClassicBackend
from src_models.distributed import connect, propagate_distributed
from src_models.engine import propagate
from src_models.sample_data import example_labels, synthetic_stack
from src_models.types import SliceResult
from src_models.zarr_out import ZarrProposals, open_proposals, write_proposals


def _rate(results: Iterator[SliceResult], start: float) -> tuple[float, float, int]:
    first = last = start
    count = 0
    for count, _ in enumerate(results, start=1):
        last = time.perf_counter()
        first = last if count == 1 else first
    steady = (count - 1) / (last - first) if count > 1 else float("nan")
    return last - start, steady, count


def _row(rows: list[dict], name: str, total: float, steady: float, count: int) -> str:
    """Record one run in ``rows``; its table line, printed."""
    rows.append(dict(run=name, seconds=total, steady=steady, proposed=count))
    line = f"| {name} | {total:.1f} | {steady:.2f} | {count} |"
    print(line, flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", default=None, help="also write the rows and table here")
    args = parser.parse_args()
    image, truth = synthetic_stack(n_slices=16, size=args.size)
    image = np.concatenate([image] * (args.n // 16 + 1))[: args.n]
    labels = example_labels(np.concatenate([truth] * (args.n // 16 + 1))[: args.n], args.n // 2)
    header = f"{args.n} slices of {args.size}², classic, one example (slice {args.n // 2})"
    lines = ["| run | seconds (total) | slices/s (steady) | proposed |", "|---|---:|---:|---:|"]
    print(header, *lines, sep="\n")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:

        def store(name: str) -> ZarrProposals:
            return open_proposals(Path(tmp) / name, labels, labels.dtype, "bench", False)

        start = time.perf_counter()
        local = write_proposals(propagate(image, labels, ClassicBackend()), lambda: store("l"))
        lines.append(_row(rows, "local (no scheduler)", *_rate(local, start)))
        for workers in args.workers:
            start = time.perf_counter()
            with contextlib.ExitStack() as scope:
                client = scope.enter_context(connect("local", workers))
                run = propagate_distributed(
                    image, labels, ClassicBackend(), client, lambda w=workers: store(f"d{w}")
                )
                row = _rate(run, start)
            lines.append(_row(rows, f"--scheduler local --workers {workers}", *row))
    if args.json:
        markdown = "\n".join(lines)
        Path(args.json).write_text(json.dumps(dict(header=header, rows=rows, markdown=markdown)))


if __name__ == "__main__":
    main()
