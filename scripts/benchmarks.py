"""Regenerate docs/benchmarks.md from ../shared/data: one table per protocol.

    .venv/bin/python scripts/benchmarks.py [--data ../shared/data] \
        [--backends classic,dinov2:random]

A backend spec is ``NAME`` (official weights; skipped when they are not available offline)
or ``NAME:random`` (random weights: the row tests the plumbing, not accuracy). Non-classic
backends run on small subsets so the whole run takes minutes on a 2-core CPU. Speed rows
run in a fresh process each, so their peak RSS is the run's own.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src_models.evaluation.annotator import AnnotatorConfig
from src_models.evaluation.datasets import load_datasets
from src_models.evaluation.protocols import RANDOM_NOTE, EvalResult, build_for_eval, drain
from src_models.evaluation.report import kept_blocks, results_table
from src_models.evaluation.runner import compatible, run_protocol


@dataclass(frozen=True)
class Job:
    """One table row per backend: ``light`` settings for classic, ``heavy`` for the others."""

    section: str
    folder: str
    protocol: str
    light: dict[str, Any]
    heavy: dict[str, Any]
    max_side: int | None = None
    target_iou: float = 0.8
    budget: int = 8


TIMES = ("s/slice", "fit s")  # per predicted slice, and per fit of the head (once per run)
SECTIONS: dict[str, list[str]] = {
    "One-shot (semantic and personalized)": ["mIoU", "FB-IoU", "Dice", "pairs", *TIMES],
    "Instance one-shot (a fully labelled crop → every nucleus)": [
        "IoU (fg)",
        "instance F1@0.5",
        "precision",
        "recall",
        "matched IoU",
        "true instances",
        *TIMES,
    ],
    "Slice propagation": ["mIoU", "FB-IoU", "mean slice IoU", "Dice", "slices", *TIMES],
    "Video propagation (DAVIS 2016, from frame 0)": ["J&F", "J", "F", "sequences", *TIMES],
    "Simulated annotator": [
        "slices",
        "target IoU",
        "corrections",
        "reached",
        "IoU round 0",
        "IoU final",
        "min IoU final",
        "s round 0",
        "s per re-run",
    ],
    "Speed and memory": [
        "slices",
        "features s/slice",
        "backbone s/slice",
        "head s/slice",
        "fit s",
        "total / backbone",
        "cold run s",
        "cached run s",
        "cached speed-up",
        "peak RSS MiB",
        "CUDA peak MiB",
    ],
}
ONE, INST, PROP, VID, ANN, SPEED = SECTIONS

JOBS: list[Job] = [
    Job(ONE, "fss1000_geti", "one-shot", {"limit": 3}, {"limit": 1}),
    Job(ONE, "perseg_examples", "one-shot", {}, {"limit": 1}, max_side=512),
    Job(ONE, "chest_xray_lungs", "one-shot", {}, {"limit": 1}),
    Job(INST, "stardist_nuclei", "one-shot", {}, {}),
    Job(PROP, "isbi2012_em_membrane", "propagate", {}, {"limit": 8}),
    Job(PROP, "plant_cells_3d_pytorch3dunet", "propagate", {"limit": 3}, {"limit": 1}),
    Job(PROP, "hippocampus_mri_3d_mmseg", "propagate", {}, {"limit": 12}),
    Job(PROP, "stardist_nuclei", "propagate", {"limit": 3}, {"limit": 1}),
    Job(
        VID,
        "davis2016_val",
        "video",
        {"limit": 3, "max_frames": 15},
        {"limit": 2, "max_frames": 10},
        max_side=480,
    ),
    Job(ANN, "isbi2012_em_membrane", "annotator", {"limit": 14}, {"limit": 9}, max_side=256),
    Job(ANN, "plant_cells_3d_pytorch3dunet", "annotator", {}, {}),
    Job(SPEED, "isbi2012_em_membrane", "speed", {"limit": 8}, {"limit": 6}),
    Job(SPEED, "davis2016_val", "speed", {"limit": 8}, {"limit": 6}, max_side=480),
]


@dataclass
class Spec:
    """A backend to run: registry name, ``weights`` ("random" or None) and the device."""

    name: str
    weights: str | None
    device: str = "cpu"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return (
            self.name
            + (" (random)" if self.weights == "random" else "")
            + (f" [{self.device}]" if self.device != "cpu" else "")
        )


def parse_specs(text: str) -> list[Spec]:
    from src_models.registry import BACKENDS

    specs = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, weights = item.partition(":")
        if name not in BACKENDS:
            raise SystemExit(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")
        if not weights and name != "classic" and not BACKENDS[name].weights_available():
            print(f"skipping {name}: official weights not available offline", file=sys.stderr)
            continue
        specs.append(Spec(name, weights or None))
    return specs


def settings_text(job: Job, kwargs: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in kwargs.items()]
    if job.max_side:
        parts.append(f"max_side={job.max_side}")
    if job.protocol == "annotator":
        parts.append(f"budget={job.budget}")
    return ", ".join(parts) or "all"


def run_job(job: Job, spec: Spec, data: Path) -> list[EvalResult]:
    """Every dataset of the job's folder that fits its protocol, with this backend."""
    kwargs = job.light if spec.name == "classic" else job.heavy
    backend, note = build_for_eval(
        spec.name, weights=spec.weights, device=spec.device, **spec.options
    )
    out = []
    for dataset in load_datasets(data / job.folder, job.max_side):
        if not compatible(job.protocol, dataset):
            continue
        config = AnnotatorConfig(target_iou=job.target_iou, budget=job.budget)
        result = drain(
            run_protocol(
                job.protocol,
                dataset,
                backend,
                device=spec.device,
                annotator=config,
                note=note,
                **kwargs,
            )
        )
        result.backend = spec.label
        result.note = "; ".join(filter(None, [settings_text(job, kwargs), note]))
        out.append(result)
    return out


def _job_in_child(args: tuple[Job, Spec, Path]) -> list[dict[str, Any]]:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1)))
    return [r.to_dict() for r in run_job(*args)]


def run_isolated(job: Job, spec: Spec, data: Path) -> list[EvalResult]:
    """Run a job in a fresh process (spawn, not a daemon: the forest may use its own workers)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        rows = pool.submit(_job_in_child, (job, spec, data)).result()
    return [EvalResult(**r) for r in rows]


def hardware() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores (load average {load} when the run ended), {gpu}; "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def render(results: dict[str, list[EvalResult]], failures: list[str], seconds: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        (
            "Regenerate with `python scripts/benchmarks.py` (reads `../shared/data`, see "
            "`docs/evaluation.md` for the protocols and metrics)."
        ),
        "",
        (
            f"- Generated {datetime.datetime.now():%Y-%m-%d %H:%M} in {seconds / 60:.1f} min "
            f"on: {hardware()}."
        ),
        (
            f"- Rows marked *{RANDOM_NOTE}* use untrained backbones: they show that every "
            "protocol runs end to end and how long it takes, not how good the backend is."
        ),
        (
            "- Rows with official weights appear when the weights are available offline "
            "(`napari-incontext backends`); none were in this run unless listed."
        ),
        (
            "- Non-classic backends run on smaller subsets (the `note` column gives each row's "
            "settings: `limit` = episodes per class, slices/objects, sequences or frames)."
        ),
        "- Timings vary 3-9x between runs on a shared CPU: compare ratios within one table.",
        (
            "- Columns differ between tables: `mIoU` sums intersections and unions over all "
            "slices per class, `mean slice IoU` averages per-slice IoUs; `s/slice` is features "
            "+ head per slice and excludes `fit s`, the head's fit once per run. See \"Which "
            'number is which" in `docs/evaluation.md` before comparing pages.'
        ),
        "",
    ]
    for section, columns in SECTIONS.items():
        rows = results.get(section, [])
        if rows:
            lines += [f"## {section}", "", results_table(rows, columns), ""]
    if failures:
        lines += ["## Rows that failed", ""] + [f"- {f}" for f in failures] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--json", default=None, help="also write every result as JSON here")
    parser.add_argument("--backends", default="classic,dinov2:random")
    parser.add_argument("--only", default=None, help="comma-separated folders to run")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        raise SystemExit(f"{data} is absent: point --data at the evaluation data folder")
    import torch

    specs = parse_specs(args.backends)
    if torch.cuda.is_available():
        specs += [Spec(s.name, s.weights, "cuda") for s in specs if s.name != "classic"]
    only = set(args.only.split(",")) if args.only else None
    start, results, failures = time.perf_counter(), {}, []
    for job in JOBS:
        if only and job.folder not in only:
            continue
        for spec in specs:
            t = time.perf_counter()
            try:
                isolated = job.protocol == "speed"
                rows = run_isolated(job, spec, data) if isolated else run_job(job, spec, data)
            except Exception as error:  # noqa: BLE001 - one failing row must not lose the others
                failures.append(f"{job.protocol} {job.folder} {spec.label}: {error}")
                continue
            results.setdefault(job.section, []).extend(rows)
            print(
                f"{time.perf_counter() - t:6.1f}s {job.protocol:9s} {job.folder} {spec.label}",
                file=sys.stderr,
            )
    page = render(results, failures, time.perf_counter() - start)
    Path(args.out).write_text(page + kept_blocks(Path(args.out)))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {k: [r.to_dict() for r in v] for k, v in results.items()}, indent=1, default=str
            )
        )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
