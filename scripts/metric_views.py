"""One classic propagation on the hippocampus MRI, scored every way the docs' tables score it.

Explains why docs/benchmarks.md and docs/bench_engine.md print different numbers for the same
stack (see docs/evaluation.md, "Which number is which"): the start slice, the slices scored and
the aggregation (Σ∩/Σ∪ per class vs the mean of per-slice IoUs) all differ.

Usage: python scripts/metric_views.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src_models.engine import propagate
from src_models.evaluation.datasets import Stack, load_datasets
from src_models.evaluation.metrics import IoUAccumulator
from src_models.evaluation.protocols import default_start, slice_iou, timing_summary
from src_models.registry import build_backend


def views(stack: Stack, start: int, targets: list[int], label: str) -> str:
    """One table row: the same predictions scored as mIoU and as mean slice IoU."""
    labels = np.zeros_like(stack.labels)
    labels[start] = stack.labels[start]
    classes = [int(c) for c in np.unique(stack.labels) if c]
    results = list(propagate(stack.image, labels, build_backend("classic"), targets=targets))
    acc = IoUAccumulator()
    for r in results:
        acc.add(r.labels, stack.labels[r.index], classes)
    per_slice = [slice_iou(r.labels, stack.labels[r.index], classes) for r in results]
    timing = timing_summary([r.timings for r in results])
    return (
        f"| {label} | {start} | {len(results)} | {acc.miou():.3f} | {np.mean(per_slice):.3f} "
        f"| {timing['s/slice']:.3f} | {timing['fit s']:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    (stack,) = load_datasets(Path(args.data) / "hippocampus_mri_3d_mmseg")
    assert isinstance(stack, Stack)
    n = len(stack.labels)
    labelled = [i for i in range(n) if stack.labels[i].any()]
    middle = default_start(stack.labels)
    print("| slices scored | start | slices | mIoU (Σ∩/Σ∪) | mean slice IoU | s/slice | fit s |")
    print("|---|---|---|---|---|---|---|")
    for label, start, targets in (
        ("all but the start (benchmarks.md)", middle, [i for i in range(n) if i != middle]),
        ("labelled only", middle, [i for i in labelled if i != middle]),
        ("labelled only (bench_engine.md)", 12, [i for i in labelled if i != 12]),
        ("all but the start", 12, [i for i in range(n) if i != 12]),
    ):
        print(views(stack, start, targets, label))


if __name__ == "__main__":
    main()
