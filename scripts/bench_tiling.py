"""Tiling benchmark (issue 14, point 4): peak memory and seconds of classic on big 2D images.

An image set of two images: a 1024² synthetic example (its ground truth as labels) and a
target of S² pixels (the synthetic texture repeated), proposed once; each S in a fresh
subprocess whose RSS the parent samples every 0.2 s (so a run stopped by ``--timeout`` still
gives its peak so far). Targets larger than classic's default tile (2048) are processed in
blended tiles (src_models.tiling). Prints one Markdown table: S, tiles, seconds (fit and the
target), RSS after building the input, peak RSS, and the engine's memory estimate.

``--lazy``: the target is first written band by band into a zarr store (chunks 1024²) and
labelled by ``big_image.propagate_image`` (tile windows read on demand) into a zarr output
(``big_image.write_image``, with the float16 confidence), so neither the input nor a
full-size output is held in memory; RSS before = after writing the input store.

Usage: python scripts/bench_tiling.py [--sizes 1024 4096 10000 20000] [--timeout 1800]
       [--options texture=false n_estimators=8] [--lazy]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's src_models, also in the child processes

LIGHT = ["texture=false", "sigma_max=8", "n_estimators=8"]


def _options(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def lazy_child(size: int, options: dict[str, str], folder: Path) -> dict:
    """The ``--lazy`` run in this process: zarr in, zarr out, one band in memory."""
    import psutil
    import zarr

    from src_models.big_image import propagate_image, write_image
    from src_models.registry import build_backend
    from src_models.sample_data import synthetic_stack
    from src_models.tiling import grid_for

    images, truth = synthetic_stack(n_slices=2, size=1024)
    source = zarr.create_array(
        str(folder / "in.zarr"), shape=(size, size), dtype=images.dtype, chunks=(1024, 1024)
    )
    reps = -(-size // 1024)
    for top in range(0, size, 1024):  # the target written band by band
        band = np.tile(images[1], (1, reps))[: min(1024, size - top), :size]
        source[top : top + len(band)] = band
    backend = build_backend("classic", **options)
    grid = grid_for(backend, (size, size))
    rss = psutil.Process().memory_info().rss
    print(json.dumps({"rss_before_mb": rss / 1e6, "tiles": len(grid) if grid else 1}), flush=True)
    start = time.perf_counter()
    bands = propagate_image(source, [(images[0], truth[0])], backend)
    for _ in write_image(bands, folder / "out.zarr", truth.dtype, (size, size), True):
        pass
    return {"seconds": time.perf_counter() - start}


def child(size: int, options: dict[str, str]) -> dict:
    """One run in this (fresh) process: prints its stages as JSON lines."""
    import psutil

    from src_models.engine import propagate
    from src_models.memory import check_memory
    from src_models.registry import build_backend
    from src_models.sample_data import synthetic_stack
    from src_models.tiling import grid_for

    images, truth = synthetic_stack(n_slices=2, size=1024)
    reps = -(-size // 1024)
    target = np.tile(images[1], (reps, reps))[:size, :size]
    backend = build_backend("classic", **options)
    estimate = check_memory([(1024, 1024), (size, size)], backend, 4 * 2**30, available=2**62)
    grid = grid_for(backend, (size, size))
    rss = psutil.Process().memory_info().rss
    first = {"rss_before_mb": rss / 1e6, "tiles": len(grid) if grid else 1}
    print(json.dumps(first | {"estimate_mb": estimate / 1e6}), flush=True)  # even if stopped
    start = time.perf_counter()
    for result in propagate([images[0], target], [truth[0], None], backend, warn_sparse=False):
        assert result.labels.shape == (size, size)
    return {"seconds": time.perf_counter() - start}


def measure(size: int, options: list[str], timeout: float, lazy: bool) -> dict:
    """Run one size in a subprocess, sampling its RSS; the row (``stopped`` on timeout)."""
    import psutil

    code = [sys.executable, __file__, "--lazy" * lazy, "--child", str(size), *options]
    code = [c for c in code if c]
    proc = subprocess.Popen(code, stdout=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    peak, start = 0, time.perf_counter()
    while proc.poll() is None and time.perf_counter() - start < timeout:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    stopped = proc.poll() is None
    if stopped:
        proc.kill()
    out = proc.communicate()[0]
    row: dict = {"size": size, "peak_mb": peak / 1e6, "stopped": stopped}
    for line in out.strip().splitlines():
        row |= json.loads(line)
    row.setdefault("seconds", time.perf_counter() - start)
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| image | tiles | seconds | RSS before (MB) | peak RSS (MB) | estimate (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        seconds = f"> {r['seconds']:.0f} (stopped)" if r["stopped"] else f"{r['seconds']:.1f}"
        lines.append(
            f"| {r['size']}² | {r.get('tiles', '?')} | {seconds} | "
            f"{r.get('rss_before_mb', 0):.0f} | {r['peak_mb']:.0f} | "
            f"{r.get('estimate_mb', 0):.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 10000, 20000])
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per size")
    parser.add_argument("--options", nargs="*", default=LIGHT, help="classic options k=v")
    parser.add_argument("--lazy", action="store_true", help="zarr in, zarr out (big_image)")
    parser.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, options = int(args.child[0]), _options(args.child[1:])
        if not args.lazy:
            print(json.dumps(child(size, options)), flush=True)
            return
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(lazy_child(size, options, Path(folder))), flush=True)
        return
    rows = []
    for size in args.sizes:
        rows.append(measure(size, args.options, args.timeout, args.lazy))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(
        f"{platform.processor() or platform.machine()}, {platform.python_version()}, classic "
        f"({' '.join(args.options) or 'default options'}), 1024² example + one S² target"
        f"{', zarr in and out (--lazy)' if args.lazy else ''}\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
