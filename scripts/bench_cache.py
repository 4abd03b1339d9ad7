"""Feature-cache benchmark (issue 14, point 3): the cached re-run after a correction at N slices.

Builds a synthetic memory-mapped uint16 stack of N slices (the 16-slice synthetic stack
repeated, each repeat shifted by one more pixel so that every slice's content differs), with the
labels of the middle slice as the example, and runs a backend on every other slice. The re-run
adds one corrected slice (the middle one's neighbour, from the ground truth) as an example,
so the head is refitted and every other slice is proposed again. The memory cap is a share
(default 20%) of the run's features, as the default 4 GiB cap is of a 2,000-slice 512² stack.

Backends: classic (default options but ``per_slice=false``, see :func:`make_backend`) and
dinov2 (ViT-S/14 with random weights at a small ``--input-size``, on the CPU with
``--threads`` torch threads; ``--dinov2-n`` gives it a shorter stack where N = 2,000 would
take too long).

Cases: ``memory`` (one FeatureCache: first run, re-run), ``memory + disk`` (first run with a
disk tier; the re-run in the same session, and in a new session: empty memory, same disk).
Prints one Markdown table: seconds in all, in ``features`` and in ``head`` (summed over
slices), hits, and the speed-up over the same case's first run.

Usage: python scripts/bench_cache.py [--backends classic dinov2] [--n 2000] [--dinov2-n N]
       [--size 64] [--input-size 112] [--threads 1] [--share 0.2] [--cases memory disk]
       [--per-slice false] [--json PATH]

``--json PATH`` also writes ``{"header", "rows", "markdown"}`` there (scripts/bench_scale_all.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASE = 16


def build(folder: Path, n: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images memmap, labels of the first run, labels of the re-run: one more example)."""
    from src_models.sample_data import example_labels, synthetic_stack

    base, truth = synthetic_stack(n_slices=BASE, size=size)
    images = np.lib.format.open_memmap(folder / "image.npy", "w+", base.dtype, (n, size, size))
    for i in range(n):
        images[i] = np.roll(base[i % BASE], divmod(i // BASE, size), axis=(0, 1))
    images.flush()
    middle = n // 2
    first = np.zeros((n, size, size), np.uint8)
    first[middle] = example_labels(truth, middle % BASE)[middle % BASE]
    second = first.copy()
    shift = divmod((middle + 1) // BASE, size)
    second[middle + 1] = np.roll(truth[(middle + 1) % BASE], shift, axis=(0, 1))
    return np.load(folder / "image.npy", mmap_mode="r"), first, second


def run(images: np.ndarray, labels: np.ndarray, backend: object, cache: object) -> dict:
    from src_models.engine import propagate

    hits = cache.hits  # type: ignore[attr-defined]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = list(propagate(images, labels, backend, cache=cache))  # type: ignore[arg-type]
    return {
        "seconds": time.perf_counter() - start,
        "features": sum(r.timings["features"] for r in results),
        "head": sum(r.timings["head"] for r in results),
        "hits": cache.hits - hits,  # type: ignore[attr-defined]
        "slices": len(results),
        "warning": next((str(w.message) for w in caught if "feature cache" in str(w.message)), ""),
    }


def warm_up(images: np.ndarray, labels: np.ndarray, backend: object) -> None:
    """One slice through a throw-away cache: imports and first calls not in the timings."""
    from src_models.cache import FeatureCache
    from src_models.engine import propagate

    target = [len(images) // 2 - 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        list(propagate(images, labels, backend, cache=FeatureCache(0), targets=target))  # type: ignore[arg-type]


def make_backend(name: str, input_size: int, per_slice: str) -> object:
    """classic (default options but ``per_slice``), or dinov2 ViT-S/14 with random weights at
    ``input_size``. classic's automatic ``per_slice`` is part of its feature key and is
    decided from the examples: here the corrected slice's brightness flips it on, so every
    feature of the re-run is new (0 hits); ``--per-slice auto`` measures that."""
    from src_models.registry import build_backend

    if name == "dinov2":
        return build_backend("dinov2", weights="random", input_size=input_size, device="cpu")
    return build_backend(name, per_slice=per_slice)


def measure(name: str, n: int, args: argparse.Namespace) -> list[tuple[str, str, dict]]:
    """Every case of one backend on its own N-slice stack: (case, run, numbers)."""
    from src_models.cache import FeatureCache
    from src_models.disk_cache import DiskCache
    from src_models.memory import feature_bytes

    backend = make_backend(name, args.input_size, args.per_slice)
    need = n * feature_bytes(backend, (args.size, args.size), 1)[0]  # type: ignore[arg-type]
    cap = int(args.share * need)
    print(f"{name}: N = {n}, features {need / 1e9:.3f} GB, memory cap {cap / 1e9:.3f} GB")
    rows = []
    with tempfile.TemporaryDirectory(dir=args.keep) as temp:
        images, first, second = build(Path(temp), n, args.size)
        warm_up(images, first, backend)
        memory = FeatureCache(cap)
        disk = DiskCache("features", temp, max_bytes=2 * need)
        both, fresh = FeatureCache(cap, disk), FeatureCache(cap, disk)
        cases = []
        if "memory" in args.cases:
            cases += [("memory", "first run", memory, first), ("memory", "re-run", memory, second)]
        if "disk" in args.cases:
            cases += [
                ("memory + disk", "first run", both, first),
                ("memory + disk", "re-run", both, second),
                ("memory + disk", "re-run, new session", fresh, second),
            ]
        for case, what, cache, labels in cases:
            rows.append((case, what, run(images, labels, backend, cache)))
            print(name, case, what, rows[-1][2], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["classic", "dinov2"])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--dinov2-n", type=int, default=None, help="dinov2's N (default --n)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=112, help="dinov2's ViT input")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (dinov2)")
    parser.add_argument("--share", type=float, default=0.2, help="memory cap / run's features")
    parser.add_argument(
        "--cases", nargs="+", choices=["memory", "disk"], default=["memory", "disk"]
    )
    parser.add_argument("--per-slice", default="false", help="classic's per_slice option")
    parser.add_argument("--keep", default=None, help="build the stack (and disk tier) here")
    parser.add_argument("--json", default=None, help="also write the rows and table here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header = (
        f"{platform.processor() or platform.machine()}, {platform.python_version()}, "
        f"torch threads {args.threads}, slices of {args.size}², memory cap {args.share:.0%} "
        f"of a run's features, disk cap 200%; classic: default options but per_slice="
        f"{args.per_slice}; dinov2: ViT-S/14, "
        f"random weights, input {args.input_size}"
    )
    lines = [
        "| backend | N | cache | run | s | features (s) | head (s) | hits | speed-up |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    print(header, "", *lines, sep="\n")
    table: list[dict] = []
    for name in args.backends:
        n = args.dinov2_n if name == "dinov2" and args.dinov2_n else args.n
        rows = measure(name, n, args)
        firsts = {case: r["seconds"] for case, what, r in rows if what == "first run"}
        for case, what, r in rows:
            speed = firsts[case] / r["seconds"]
            table.append(dict(backend=name, n=n, cache=case, run=what, speed_up=speed, **r))
            lines.append(
                f"| {name} | {n} | {case} | {what} | {r['seconds']:.1f} | {r['features']:.1f} "
                f"| {r['head']:.1f} | {r['hits']} | {speed:.1f}× |"
            )
            print(lines[-1], flush=True)
    if args.json:
        markdown = "\n".join(lines)
        Path(args.json).write_text(json.dumps(dict(header=header, rows=table, markdown=markdown)))


if __name__ == "__main__":
    main()
