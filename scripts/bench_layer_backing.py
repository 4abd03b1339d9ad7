"""The plugin's proposals layer of a stack: np.zeros in memory vs the zarr array on disk
(napari_incontext/_backing.py), written one slice at a time as the widget does.

    PYTHONPATH=. python scripts/bench_layer_backing.py     # --n 100 --size 1024

Prints, for each backing: milliseconds per slice written (the main thread's share of a
result) and read back (what napari does to display a slice), the process's RSS growth
after writing every slice, and the bytes on disk. The cache folder is a temporary one.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_incontext import _backing
from src_models import weights


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def proposal(size: int, seed: int) -> np.ndarray:
    """A (size, size) uint32 labels image of a few hundred blobs."""
    noise = np.random.default_rng(seed).random((size, size))
    return ndimage.label(ndimage.gaussian_filter(noise, 8) > 0.5)[0].astype(np.uint32)


def measure(n: int, size: int, lazy: bool) -> tuple[float, float, float, float]:
    """(ms per write, ms per read, RSS growth MB, MB on disk)."""
    _backing.LAZY_BYTES = 0 if lazy else 2**62
    slices = [proposal(size, seed) for seed in range(4)]
    gc.collect()
    before = rss_mb()
    data = _backing.new_layer_data((n, size, size), np.uint32)
    start = time.perf_counter()
    for i in range(n):
        data[i] = slices[i % 4]
    write = (time.perf_counter() - start) / n * 1000
    grown = rss_mb() - before
    start = time.perf_counter()
    for i in range(0, n, max(1, n // 10)):
        np.asarray(data[i])
    read = (time.perf_counter() - start) / len(range(0, n, max(1, n // 10))) * 1000
    folder = _backing.backing_folder(data)
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder else 0
    _backing.release_all()
    return write, read, grown, disk / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        weights.cache_dir = lambda: Path(cache) / "weights"  # type: ignore[assignment]
        print(f"{args.n} x {args.size}² uint32 ({args.n * args.size**2 * 4 / 2**20:.0f} MiB)")
        print("| backing | write ms/slice | read ms/slice | RSS growth MB | on disk MB |")
        print("|---|---|---|---|---|")
        for lazy in (False, True):
            write, read, grown, disk = measure(args.n, args.size, lazy)
            name = "zarr (on disk)" if lazy else "np.zeros"
            print(f"| {name} | {write:.1f} | {read:.1f} | {grown:.0f} | {disk:.1f} |")


if __name__ == "__main__":
    main()
