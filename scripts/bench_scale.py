"""Scale benchmark (issue 14): seconds per slice and peak memory against the stack's length.

Builds synthetic 512² uint16 stacks of N slices (a 16-slice synthetic stack repeated) as a
zarr store and as a memory-mapped .npy, with the labels of the middle slice as the example,
and runs a backend (``--backend classic``, or ``dinov2``: ViT-S/14 with random weights at
``--input-size``) on the 10 slices around it, each N and format in a fresh subprocess. Prints
one Markdown table: N, input, seconds to the first proposal (label scan, intensity sample,
example features and fit), seconds per further slice, RSS before the run and peak RSS. The
`in-memory` rows load the whole stack first (numpy: the eager path), for comparison.

Usage: python scripts/bench_scale.py [--sizes 30 300 2000] [--targets 10] [--keep DIR]
       [--backend classic|dinov2] [--input-size 112] [--in-memory-up-to 300] [--json PATH]

``--json PATH`` also writes ``{"header", "rows", "markdown"}`` there (scripts/bench_scale_all.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from src_models.backends.base import Backend

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's src_models, also in the child processes

SIZE = 512
BASE = 16


def build(folder: Path, n: int) -> None:
    """image and labels of N slices, as image.zarr/labels.zarr and image.npy/labels.npy."""
    import zarr

    from src_models.sample_data import example_labels, synthetic_stack

    base, truth = synthetic_stack(n_slices=BASE, size=SIZE)
    middle = n // 2
    example = example_labels(truth, middle % BASE)[middle % BASE]
    shape = (n, SIZE, SIZE)
    image_z = zarr.create_array(
        folder / "image.zarr", shape=shape, dtype=base.dtype, chunks=(1, SIZE, SIZE)
    )
    label_z = zarr.create_array(
        folder / "labels.zarr", shape=shape, dtype=np.uint8, chunks=(1, SIZE, SIZE), fill_value=0
    )
    image_m = np.lib.format.open_memmap(folder / "image.npy", "w+", base.dtype, shape)
    label_m = np.lib.format.open_memmap(folder / "labels.npy", "w+", np.uint8, shape)
    for start in range(0, n, BASE):
        block = base[: min(BASE, n - start)]
        image_z[start : start + len(block)] = block
        image_m[start : start + len(block)] = block
    label_z[middle] = example
    label_m[middle] = example
    image_m.flush()
    label_m.flush()


def peak_rss() -> int:
    """Peak RSS of this process in bytes: VmHWM (Linux; ru_maxrss would include the parent's
    peak, since it survives fork and exec), else ru_maxrss."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def make_backend(name: str, input_size: int) -> Backend:
    """classic (default options), or dinov2 ViT-S/14 with random weights at ``input_size``
    on the CPU with one torch thread (two on 2 shared cores ran 5× slower)."""
    from src_models.registry import build_backend

    if name != "dinov2":
        return build_backend(name)
    import torch

    torch.set_num_threads(1)
    return build_backend("dinov2", weights="random", input_size=input_size, device="cpu")


def child(folder: Path, kind: str, targets: list[int], backend_name: str, size: int) -> dict:
    """One run in this (fresh) process: timings and memory."""
    import psutil

    from src_models.engine import propagate
    from src_models.lazy import open_zarr

    backend = make_backend(backend_name, size)
    if kind == "zarr":
        images, labels = open_zarr(folder / "image.zarr"), open_zarr(folder / "labels.zarr")
    else:
        mode = "r" if kind == "memmap" else None
        images = np.load(folder / "image.npy", mmap_mode=mode)
        labels = np.load(folder / "labels.npy", mmap_mode=mode)
    before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    stamps = [time.perf_counter() for _ in propagate(images, labels, backend, targets=targets)]
    peak = peak_rss()
    return {
        "first": stamps[0] - start,
        "per_slice": (stamps[-1] - stamps[0]) / max(len(stamps) - 1, 1),
        "rss_before_mb": before / 1e6,
        "peak_mb": peak / 1e6,
        "proposed": len(stamps),
    }


def measure(folder: Path, n: int, kind: str, count: int, args: argparse.Namespace) -> dict:
    middle = n // 2
    targets = [i for i in range(middle - count // 2, middle + count // 2 + 1) if i != middle]
    code = [sys.executable, __file__, "--child", str(folder), kind, json.dumps(targets)]
    code += ["--backend", args.backend, "--input-size", str(args.input_size)]
    done = subprocess.run(code, capture_output=True, text=True, check=True)
    return {"n": n, "input": kind, **json.loads(done.stdout.strip().splitlines()[-1])}


def table(rows: list[dict]) -> str:
    lines = [
        "| N | input | first proposal (s) | s / slice | RSS before (MB) | peak RSS (MB) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['input']} | {r['first']:.2f} | {r['per_slice']:.2f} | "
            f"{r['rss_before_mb']:.0f} | {r['peak_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 300, 2000])
    parser.add_argument("--targets", type=int, default=10)
    parser.add_argument("--in-memory-up-to", type=int, default=300)
    parser.add_argument("--keep", default=None, help="build the stacks here and keep them")
    parser.add_argument("--backend", choices=["classic", "dinov2"], default="classic")
    parser.add_argument("--input-size", type=int, default=112, help="dinov2's ViT input")
    parser.add_argument("--json", default=None, help="also write the rows and table here")
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, kind, targets = args.child
        result = child(Path(folder), kind, json.loads(targets), args.backend, args.input_size)
        print(json.dumps(result))
        return
    what = (
        f"dinov2 (ViT-S/14, random weights, input {args.input_size}, 1 torch thread)"
        if args.backend == "dinov2"
        else "classic (default options)"
    )
    header = (
        f"{platform.processor() or platform.machine()}, {platform.python_version()}, "
        f"{what}, {args.targets} target slices around the middle example"
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(dir=args.keep) as temp:
        for n in args.sizes:
            folder = Path(temp) / f"n{n}"
            folder.mkdir()
            build(folder, n)
            kinds = ["zarr", "memmap"] + (["in-memory"] if n <= args.in_memory_up_to else [])
            for kind in kinds:
                rows.append(measure(folder, n, kind, args.targets, args))
                print(json.dumps(rows[-1]), file=sys.stderr)
                if args.json:  # after every row: a stopped run keeps the rows that finished
                    report = dict(header=header, rows=rows, markdown=table(rows))
                    Path(args.json).write_text(json.dumps(report))
    print(f"{header}\n\n{table(rows)}")


if __name__ == "__main__":
    main()
