"""Feature-cache benchmark (issue 14, point 3): the cached re-run after a correction at N slices.

Builds a synthetic memory-mapped uint16 stack of N slices (the 16-slice synthetic stack
repeated, each repeat shifted by one more pixel so that every slice's content differs), with the
labels of the middle slice as the example, and runs classic on every other slice. The re-run
adds one corrected slice (the middle one's neighbour, from the ground truth) as an example,
so the head is refitted and every other slice is proposed again. The memory cap is a share
(default 20%) of the run's features, as the default 4 GiB cap is of a 2,000-slice 512² stack.

Cases: ``memory`` (one FeatureCache: first run, re-run), ``memory + disk`` (first run with a
disk tier; the re-run in the same session, and in a new session: empty memory, same disk).
Prints one Markdown table: seconds in all, in ``features`` and in ``head`` (summed over
slices), hits, and the speed-up over the first run.

Usage: python scripts/bench_cache.py [--n 2000] [--size 128] [--share 0.2]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    from src_models.cache import FeatureCache
    from src_models.disk_cache import DiskCache
    from src_models.memory import feature_bytes
    from src_models.registry import build_backend

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--share", type=float, default=0.2, help="memory cap / run's features")
    parser.add_argument("--keep", default=None, help="build the stack (and disk tier) here")
    args = parser.parse_args()
    backend = build_backend("classic")
    need = args.n * feature_bytes(backend, (args.size, args.size), 1)[0]
    cap = int(args.share * need)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.keep) as temp:
        images, first, second = build(Path(temp), args.n, args.size)
        memory = FeatureCache(cap)
        disk = DiskCache("features", temp, max_bytes=2 * need)
        both, fresh = FeatureCache(cap, disk), FeatureCache(cap, disk)
        for case, what, cache, labels in (
            ("memory", "first run", memory, first),
            ("memory", "re-run", memory, second),
            ("memory + disk", "first run", both, first),
            ("memory + disk", "re-run", both, second),
            ("memory + disk", "re-run, new session", fresh, second),
        ):
            rows.append((case, what, run(images, labels, backend, cache)))
            print(case, what, rows[-1][2], file=sys.stderr, flush=True)
    print(
        f"{platform.processor() or platform.machine()}, {platform.python_version()}, classic "
        f"(default options), N = {args.n} slices of {args.size}², features {need / 1e9:.2f} GB, "
        f"memory cap {cap / 1e9:.2f} GB ({args.share:.0%})\n"
    )
    print("| cache | run | s | features (s) | head (s) | hits | speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|")
    firsts = {case: r["seconds"] for case, what, r in rows if what == "first run"}
    for case, what, r in rows:
        speed = firsts[case] / r["seconds"]
        print(
            f"| {case} | {what} | {r['seconds']:.1f} | {r['features']:.1f} | {r['head']:.1f} | "
            f"{r['hits']} | {speed:.1f}× |"
        )
    print(f"\nwarning: {rows[0][2]['warning']}")


if __name__ == "__main__":
    main()
