"""Main-thread stalls of the docked widget on a big stack (a benchmark, not a test).

    xvfb-run -a .venv/bin/python scripts/bench_gui_stall.py [--slices 300 --size 1024]
        [--results 6] [--out docs/responsiveness.md]

Opens napari with an N × size² uint16 stack and an int32 labels layer holding one example,
docks the widget through the Plugins-menu path, and drives it as a person does: Run, wait
for a few proposals, Cancel, Accept all, Ctrl+Z, Run and Cancel again, Save. A 10 ms QTimer
stamps the event loop all along; a gap between two ticks is a stall of the main thread. The
report gives, per phase, the longest stall and the percentiles of the tick gaps (ideal:
10 ms), plus the process memory before the run, during it and after each Cancel. The block
between the markers of ``--out`` is replaced; the rest of the page is kept.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from src_models.evaluation.report import write_block

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("run click → first proposal", "streaming", "cancel", "accept all", "undo", "save")


class Ticks:
    """Timestamps of a 10 ms QTimer, split by phase."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.stamps: list[tuple[str, float]] = []
        self.phase = "idle"
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.stamps.append((self.phase, time.perf_counter())))
        self.timer.start()

    def gaps(self, phase: str) -> np.ndarray:
        """Milliseconds between consecutive stamps, counted in the phase of the earlier one
        (a stall belongs to the phase it started in; the script's own work between phases,
        e.g. measuring memory, starts after an "idle" stamp)."""
        out = [
            (b - a) * 1000
            for (one, a), (_, b) in zip(self.stamps, self.stamps[1:], strict=False)
            if one == phase
        ]
        return np.array(out)


def spin(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)


def wait(app, condition, ticks: Ticks, timeout: float = 3600, tail: float = 0.5) -> None:
    """Run the event loop until ``condition()`` and ``tail`` seconds more (work the phase
    left queued still counts in it); the phase ends with an "idle" stamp."""
    start = time.perf_counter()
    while not condition():
        app.processEvents()
        time.sleep(0.001)
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{ticks.phase}: still waiting after {timeout} s")
    spin(app, tail)
    ticks.phase = "idle"
    ticks.stamps.append(("idle", time.perf_counter()))


def act(ticks: Ticks, phase: str, action) -> None:
    """Start a phase with the person's action (its own cost counts in the phase)."""
    ticks.phase = phase
    ticks.stamps.append((phase, time.perf_counter()))
    action()


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def drive(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    import napari
    import skimage.feature  # noqa: F401
    import sklearn.ensemble  # noqa: F401 - loaded before measuring: libraries are no run data
    from qtpy.QtWidgets import QApplication

    from src_models.sample_data import synthetic_stack

    viewer = napari.Viewer()
    app = QApplication.instance()
    small, truth = synthetic_stack(args.slices, 96, seed=0)
    reps = args.size // 96 + 1
    image = np.tile(small, (1, reps, reps))[:, : args.size, : args.size]  # uint16
    viewer.add_image(image, name="stack")
    labels = np.zeros(image.shape, np.int32)
    middle = args.slices // 2
    labels[middle] = np.tile(truth[middle], (reps, reps))[: args.size, : args.size]
    viewer.add_labels(labels, name="examples")
    _, widget = viewer.window.add_plugin_dock_widget("napari-incontext", "In-context annotation")
    from src_models.config import parse_pairs

    widget.controls.options_form.set_values(parse_pairs(args.options.split()))
    ticks = Ticks()
    spin(app, 1.0)
    gc.collect()
    memory = {"before run": rss_mib()}

    proposed = lambda: sum(s.score is not None for s in widget.session.slices.values())  # noqa: E731
    act(ticks, PHASES[0], widget.controls.run_button.click)
    wait(app, lambda: proposed() >= 1, ticks)
    act(ticks, PHASES[1], lambda: None)
    wait(app, lambda: proposed() >= args.results, ticks)
    memory["during run"] = rss_mib()
    act(ticks, PHASES[2], widget.controls.cancel_button.click)
    wait(app, lambda: not widget.busy, ticks)
    spin(app, 3.0)  # the heap is trimmed in a worker after the run is released
    gc.collect()
    memory["after cancel"] = rss_mib()
    memory["of which feature cache (kept for re-runs)"] = widget.session.cache.size_bytes / 2**20
    widget.review.threshold_spin.setValue(0.0)
    act(ticks, PHASES[3], widget.review.accept_all_button.click)
    wait(app, lambda: widget.idle, ticks)
    act(ticks, PHASES[4], viewer.layers["examples"].undo)
    wait(app, lambda: widget.idle, ticks)
    # a second run (it resumes) and cancel: memory must not grow run after run
    widget.controls.run_button.click()
    wait(app, lambda: proposed() >= args.results + 2, ticks)
    widget.controls.cancel_button.click()
    wait(app, lambda: not widget.busy, ticks)
    spin(app, 3.0)
    gc.collect()
    memory["after a second run and cancel"] = rss_mib()
    with tempfile.TemporaryDirectory() as folder:
        if not args.skip_save:
            act(ticks, PHASES[5], lambda: widget.save(str(Path(folder) / "out")))
            wait(app, lambda: widget.idle, ticks)
    ticks.timer.stop()
    viewer.close()
    return {p: ticks.gaps(p) for p in PHASES}, memory


def table(gaps: dict[str, np.ndarray]) -> str:
    lines = [
        "| phase | ticks | longest stall ms | p50 ms | p90 ms | p99 ms | gaps > 100 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase, g in gaps.items():
        if len(g) == 0:
            continue
        p50, p90, p99 = np.percentile(g, [50, 90, 99])
        lines.append(
            f"| {phase} | {len(g)} | {g.max():.0f} | {p50:.0f} | {p90:.0f} | {p99:.0f} | "
            f"{int((g > 100).sum())} |"
        )
    return "\n".join(lines)


def block(args: argparse.Namespace, gaps: dict[str, np.ndarray], memory: dict[str, float]) -> str:
    import os

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    mem = ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items())
    return "\n".join(
        [
            f"Regenerate with `xvfb-run -a python scripts/bench_gui_stall.py --slices "
            f"{args.slices} --size {args.size} --results {args.results}` (backend options "
            f"`{args.options}`). Measured {time.strftime('%Y-%m-%d %H:%M')} on "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
            f"average {load} (a shared machine: compare phases within one run).",
            "",
            table(gaps),
            "",
            f"Process memory (RSS): {mem}.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--results", type=int, default=6, help="proposals before Cancel")
    parser.add_argument("--options", default="n_estimators=8 max_depth=8 texture=false sigma_max=4")
    parser.add_argument("--skip-save", action="store_true")
    parser.add_argument("--out", default=None, help="e.g. docs/responsiveness.md")
    args = parser.parse_args(argv)
    gaps, memory = drive(args)
    print(table(gaps))
    print(", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items()))
    if args.out:
        write_block(Path(args.out), "stall", block(args, gaps, memory), "# Responsiveness")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
