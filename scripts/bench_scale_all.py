"""Every issue-14 scale benchmark in one command, written into one Markdown page.

Runs each part as a child process of its own script (each writes its rows with ``--json``),
times it, and after every part rewrites ``OUT`` (Markdown: machine, command, per-part wall
time and load, each part's table) and ``OUT.json`` (everything, for ``--resume``), so a run
that is stopped keeps the parts that finished.

Parts (the full sizes by default; ``--quick``: tiny sizes, a few minutes, for checking):

- ``scale-classic``, ``scale-dinov2``: scripts/bench_scale.py, N vs s/slice vs peak RSS
  (N = 30, 300, 2000 slices of 512²; dinov2 with random weights, input 112)
- ``big-image``: scripts/bench_big_image.py, the CLI's big-image path, 1024² to 20480²
- ``batch``: scripts/bench_batch.py, dinov2 batch 1, 4, 8
- ``distributed``: scripts/bench_distributed.py, local run and 1 and 2 workers, 200 slices
- ``cache-classic``, ``cache-dinov2``: scripts/bench_cache.py, the cached re-run at N = 2000

Usage: python scripts/bench_scale_all.py [--quick] [--parts P ...] [--out docs/scale_run.md]
       [--resume] [--scale-sizes ...] [--big-sizes ...] [--batch-sizes ...] [--workers ...]
       [--dist-n N] [--cache-n N] [--extra "PART=ARGS"] ...
``--extra "PART=ARGS"`` appends ARGS to that part's command (a later option wins, so it also
overrides a size), e.g. ``--extra "cache-dinov2=--cases disk"``. ``--resume`` skips the
parts of ``OUT.json`` that finished with the same command; the others run again.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src_models.atomic import write_file, write_json

PARTS = {
    "scale-classic": "N vs seconds per slice vs peak RSS: classic",
    "scale-dinov2": "N vs seconds per slice vs peak RSS: dinov2 (random weights)",
    "big-image": "Big 2D images: the CLI's big-image path",
    "batch": "Batched vs unbatched backbone forwards (dinov2, CPU)",
    "distributed": "1 → 2 workers (--scheduler local)",
    "cache-classic": "The cached re-run: classic",
    "cache-dinov2": "The cached re-run: dinov2 (random weights)",
}
FULL = {"scale": [30, 300, 2000], "big": [1024, 4096, 10000, 20480], "batch": [1, 4, 8]}
QUICK = {"scale": [20, 40], "big": [1024, 1536], "batch": [1, 2]}


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Each selected part's command (without ``--json``), run from the checkout's root."""
    quick = args.quick
    sizes = {k: getattr(args, f"{k}_sizes") or (QUICK if quick else FULL)[k] for k in FULL}
    scale = ["scripts/bench_scale.py", "--sizes", *map(str, sizes["scale"])]
    scale += ["--targets", "2", "--in-memory-up-to", "20"] if quick else []
    big = ["scripts/bench_big_image.py", "--sizes", *map(str, sizes["big"])]
    big += ["--tile", "512"] if quick else []
    batch = ["scripts/bench_batch.py", "--batch", *map(str, sizes["batch"])]
    batch += ["--n", "6", "--size", "112"] if quick else []
    dist_n = args.dist_n or (32 if quick else 200)
    distributed = ["scripts/bench_distributed.py", "--n", str(dist_n)]
    distributed += ["--workers", *map(str, args.workers)] + (["--size", "64"] if quick else [])
    cache_n = args.cache_n or (40 if quick else 2000)
    cache = ["scripts/bench_cache.py", "--n", str(cache_n)] + (["--size", "32"] if quick else [])
    every = {
        "scale-classic": scale + ["--backend", "classic"],
        "scale-dinov2": scale + ["--backend", "dinov2"],
        "big-image": big,
        "batch": batch,
        "distributed": distributed,
        "cache-classic": cache + ["--backends", "classic"],
        "cache-dinov2": cache + ["--backends", "dinov2"],
    }
    for part, extra in args.extra:
        every[part] += shlex.split(extra)
    return {part: [sys.executable, *every[part]] for part in args.parts}


def machine() -> dict:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "numpy": version("numpy"),
        "commit": commit.stdout.strip() + (" (uncommitted changes)" if dirty.stdout else ""),
        "date": now(),
    }


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def run_part(part: str, command: list[str], logs: Path) -> dict:
    """Run one part, its output to ``logs/part.log``; its record (rows from its --json, also
    the rows written before it failed or was interrupted: rc -2)."""
    result = logs / f"{part}.json"
    result.unlink(missing_ok=True)
    load, start = os.getloadavg()[0], time.perf_counter()
    with open(logs / f"{part}.log", "w") as log:
        child = subprocess.Popen(
            [*command, "--json", str(result)],
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its children
        )
        try:
            rc = child.wait()
        except KeyboardInterrupt:
            stop(child)
            rc = -2
    record = {"command": command, "rc": rc, "wall_s": time.perf_counter() - start, "done": now()}
    record |= {"load": [load, os.getloadavg()[0]], "log": str(logs / f"{part}.log")}
    if result.exists():
        record |= json.loads(result.read_text())
    return record


def stop(child: subprocess.Popen) -> None:
    """Interrupt ``child`` and the processes it started (they clean up their temporary
    folders on KeyboardInterrupt); after it exits or 30 s, kill what is left of them."""
    os.killpg(child.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def shown(command: list[str]) -> str:
    """A command as one would type it from the checkout's root."""
    return shlex.join(["python", *command[1:]])


def markdown(state: dict) -> str:
    info = state["machine"]
    lines = [
        "# Scale benchmarks: one run",
        "",
        "Generated by `scripts/bench_scale_all.py` (do not edit by hand; docs/scale.md explains "
        "the setups and what the numbers mean).",
        "",
        *(f"- command: `{command}`" for command in state["commands"]),
        f"- this command started {info['date']}, last part done {state['updated']}; commit "
        f"{info['commit']}",
        f"- machine: {info['platform']}, {info['processor']}, {info['cpus']} CPUs; Python "
        f"{info['python']}, torch {info['torch']}, numpy {info['numpy']}",
        "",
        "| part | status | done (UTC) | wall (s) | load average (start → end) |",
        "|---|---|---|---:|---|",
    ]
    for part, rec in state["parts"].items():
        status = "ok" if rec["rc"] == 0 else f"stopped (rc {rec['rc']}, see {rec['log']})"
        load, done = f"{rec['load'][0]:.1f} → {rec['load'][1]:.1f}", rec.get("done", "?")
        lines.append(f"| {part} | {status} | {done} | {rec['wall_s']:.0f} | {load} |")
    total = sum(rec["wall_s"] for rec in state["parts"].values())
    lines.append(f"| all | | | {total:.0f} | |")
    for part, rec in state["parts"].items():
        lines += ["", f"## {PARTS[part]}", "", f"`{shown(rec['command'])}`", ""]
        if rec["rc"] != 0 and "markdown" in rec:
            lines.append(f"Stopped (rc {rec['rc']}): the rows that finished.\n")
        if "markdown" in rec:
            lines += [rec["header"], "", rec["markdown"]]
        else:
            lines.append(f"No table: the script failed (rc {rec['rc']}); see `{rec['log']}`.")
    return "\n".join(lines) + "\n"


def save(state: dict, out: Path) -> None:
    state["updated"] = now()
    write_json(out.with_suffix(".json"), state)
    write_file(out, lambda temp: temp.write_text(markdown(state)))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for checking")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--out", type=Path, default=None, help="Markdown (and OUT.json) path")
    parser.add_argument("--resume", action="store_true", help="skip parts OUT.json has done")
    parser.add_argument("--scale-sizes", type=int, nargs="+", default=None, help="N of scale-*")
    parser.add_argument("--big-sizes", type=int, nargs="+", default=None, help="S of big-image")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dist-n", type=int, default=None, help="slices of distributed")
    parser.add_argument("--cache-n", type=int, default=None, help="N of cache-*")
    parser.add_argument("--extra", action="append", default=[], metavar="PART=ARGS")
    args = parser.parse_args()
    args.extra = [tuple(extra.partition("=")[::2]) for extra in args.extra]
    if args.out is None:
        args.out = ROOT / ("bench_out/scale_run_quick.md" if args.quick else "docs/scale_run.md")
    for part, _ in args.extra:
        if part not in PARTS:
            parser.error(f"--extra {part}=...: not a part; choose from {', '.join(PARTS)}")
    return args


def main() -> None:
    args = parse()
    out: Path = args.out.resolve()
    logs = out.parent / f"{out.stem}_logs"
    logs.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "scripts/bench_scale_all.py", *sys.argv[1:]])
    state = {"machine": machine(), "commands": [command], "parts": {}}
    previous = {}
    if args.resume and out.with_suffix(".json").exists():
        earlier = json.loads(out.with_suffix(".json").read_text())
        previous = earlier["parts"]
        state["commands"] = earlier.get("commands", []) + state["commands"]
    for part, cmd in commands(args).items():
        old = previous.get(part)
        if old and old["rc"] == 0 and old["command"][1:] == cmd[1:]:
            print(f"{part}: done in {out.with_suffix('.json')}, skipped", flush=True)
            state["parts"][part] = old
        else:
            print(f"{part}: {shown(cmd)}", flush=True)
            rec = state["parts"][part] = run_part(part, cmd, logs)
            print(f"{part}: rc {rec['rc']}, {rec['wall_s']:.0f} s", flush=True)
        save(state, out)
        if state["parts"][part]["rc"] == -2:
            sys.exit(f"interrupted: {out} keeps what finished; --resume goes on")
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
