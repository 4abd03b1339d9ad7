"""Big-image benchmark (issue 14, point 4): the CLI's big-image path on S² images, peak RSS.

For each S: ``make_big_image.py`` writes an S² uint8 NPY image and labels painted on its
top-left 512² corner, then ``napari-incontext propagate img.npy --labels lab.npy --out
out.zarr --quiet --option tile_size=T --feature-cache-gb 0`` runs in a child process (this
checkout's CLI, ``python -m src_models.cli``); its peak RSS is the child's own ``ru_maxrss``
(``os.wait4`` on that child alone; a child stopped by ``--timeout`` still gives its peak so
far). The images are made in a child process of their own: Linux counts the parent's
high-water RSS at the moment a child is started in the child's ``ru_maxrss``, so a parent
that had just built a 20480² image in memory added its 4.7 GB to the CLI's figure. An S
not larger than T would not take the big-image path, so it runs with tiles of S // 2 (the
``tile`` column says which). Prints one Markdown table: S, tile, tiles, seconds, peak RSS,
whether it finished.

Usage: python scripts/bench_big_image.py [--sizes 1024 4096 10000 20480] [--tile 1024]
       [--timeout 7200] [--keep DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's src_models, also in the child processes


def run_cli(folder: Path, side: int, tile: int, timeout: float) -> dict:
    """One CLI run in a child process: seconds, its peak RSS, tiles (from --timings)."""
    timings = folder / f"timings{side}.json"
    code = [sys.executable, "-m", "src_models.cli", "propagate", str(folder / f"img{side}.npy")]
    code += ["--labels", str(folder / f"lab{side}.npy"), "--out", str(folder / f"out{side}.zarr")]
    code += ["--quiet", "--option", f"tile_size={tile}", "--feature-cache-gb", "0"]
    code += ["--timings", str(timings)]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(code, cwd=ROOT, env=env)
    stopped = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            stopped = True
            proc.send_signal(signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.5)
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen quiet
    scale = 1 if sys.platform == "darwin" else 1024
    row = {"size": side, "tile": tile, "seconds": time.perf_counter() - start}
    row |= {"peak_mb": usage.ru_maxrss * scale / 1e6, "rc": proc.returncode, "stopped": stopped}
    if timings.exists():
        recorded = json.loads(timings.read_text())
        row |= {"tiles": recorded.get("tiles"), "big_image": recorded.get("big_image", False)}
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| image | tile | tiles | seconds | peak RSS (MB) | finished |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        done = "stopped (timeout)" if r["stopped"] else ("yes" if r["rc"] == 0 else f"rc {r['rc']}")
        seconds = f"> {r['seconds']:.0f}" if r["stopped"] else f"{r['seconds']:.1f}"
        lines.append(
            f"| {r['size']}² | {r['tile']} | {r.get('tiles', '?')} | {seconds} | "
            f"{r['peak_mb']:.0f} | {done} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 10000, 20480])
    parser.add_argument("--tile", type=int, default=1024, help="classic's tile_size option")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per size")
    parser.add_argument("--keep", default=None, help="write the images and outputs here")
    parser.add_argument("--json", default=None, help="also write the rows and table here")
    args = parser.parse_args()
    header = (
        f"{platform.processor() or platform.machine()}, {platform.python_version()}, classic "
        "(default options) through the CLI's big-image path, --feature-cache-gb 0, uint8 NPY "
        "input, labels painted on a 512² corner, zarr output"
    )
    rows: list[dict] = []
    for side in args.sizes:
        with tempfile.TemporaryDirectory(dir=args.keep) as temp:
            make = [sys.executable, str(Path(__file__).with_name("make_big_image.py"))]
            env = os.environ | {"PYTHONPATH": str(ROOT)}
            subprocess.run([*make, str(side), temp], check=True, env=env)  # we stay small
            tile = args.tile if side > args.tile else side // 2
            rows.append(run_cli(Path(temp), side, tile, args.timeout))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if args.json:  # after every size: a stopped run keeps the sizes that finished
            report = dict(header=header, rows=rows, markdown=table(rows))
            Path(args.json).write_text(json.dumps(report))
    print(f"{header}\n\n{table(rows)}")


if __name__ == "__main__":
    main()
