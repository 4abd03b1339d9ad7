"""Engine benchmark (issue 2): classic accuracy on real stacks, dinov2 timing split.

Prints, from one run:
- classic mean IoU per slice on the ISBI-2012 EM stack (example: slice 0) and the hippocampus
  MRI (example: slice 12, the first slice 0 is empty), against copying the example mask;
- dinov2 ViT-S/14 (random weights) per-slice seconds split into backbone and head, the ratio
  total / backbone, and the speed-up of a cached re-run (classic too).

Usage: python scripts/bench_engine.py [--data ../shared/data] [--out docs/bench_engine.md]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import tifffile

from src_models.engine import propagate
from src_models.evaluation.benchmark import speed_benchmark
from src_models.evaluation.metrics import object_ious
from src_models.evaluation.protocols import drain
from src_models.registry import build_backend


def mean_iou(pred: np.ndarray, truth: np.ndarray, ids: list[int]) -> float:
    return float(np.mean(list(object_ious(pred, truth, ids).values())))


def accuracy(
    name: str,
    image: np.ndarray,
    truth: np.ndarray,
    example: int,
    targets: list[int],
    options: dict,
    link: bool = False,
) -> dict:
    ids = [int(k) for k in np.unique(truth) if k]
    labels = np.zeros_like(truth)
    labels[example] = truth[example]
    start = time.perf_counter()
    results = list(
        propagate(image, labels, build_backend("classic", **options), targets=targets, link=link)
    )
    scores = [mean_iou(r.labels, truth[r.index], ids) for r in results]
    fit = results[0].timings.get("fit", 0.0)
    seconds = (time.perf_counter() - start - fit) / len(targets)
    copy = float(np.mean([mean_iou(truth[example], truth[i], ids) for i in targets]))
    shown = {**options, "link": True} if link else options
    return {
        "stack": name,
        "options": shown,
        "miou": float(np.mean(scores)),
        "copy": copy,
        "n": len(targets),
        "s_per_slice": seconds,
        "fit_s": fit,
    }


def timing(name: str, options: dict, image: np.ndarray, truth: np.ndarray) -> dict:
    """The evaluation harness's cold-then-cached speed benchmark, example on slice 0."""
    labels = np.zeros_like(truth)
    labels[0] = truth[0]
    report = drain(speed_benchmark(image, labels, build_backend(name, **options)))
    return {"backend": name, **report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--out", default=None, help="also write the tables as markdown here")
    args = parser.parse_args()
    data = Path(args.data)
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} cores, torch CPU. One run of scripts/bench_engine.py.",
        "",
    ]

    isbi = data / "isbi2012_em_membrane"
    hippo = data / "hippocampus_mri_3d_mmseg"
    rows = []
    if isbi.exists():
        img = tifffile.imread(isbi / "images_stack_zyx.tif")
        lab = (tifffile.imread(isbi / "labels_stack_zyx.tif") > 0).astype(np.int32)
        for options, link in (({}, False), ({}, True), ({"per_slice": True}, False)):
            rows.append(
                accuracy("ISBI-2012 EM (0 → 1..29)", img, lab, 0, list(range(1, 30)), options, link)
            )
    if hippo.exists():
        img = tifffile.imread(hippo / "image_zyx.tif")
        lab = tifffile.imread(hippo / "labels_zyx.tif").astype(np.int32)
        targets = [i for i in range(len(lab)) if lab[i].any() and i != 12]
        everything = [i for i in range(len(lab)) if i != 12]
        for options in ({}, {"position": True}):
            for link in (False, True):
                rows.append(
                    accuracy(
                        "Hippocampus MRI (12 → labelled)", img, lab, 12, targets, options, link
                    )
                )
        # linking needs the chain of neighbours: run on every slice, score the labelled ones
        for link in (False, True):
            row = accuracy("Hippocampus MRI (12 → all)", img, lab, 12, everything, {}, link)
            rows.append(row)
    lines += [
        "## classic: mean IoU per slice",
        "",
        "| stack | options | mean IoU | copy example | slices | s/slice | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['stack']} | {r['options'] or 'defaults'} | {r['miou']:.3f} | {r['copy']:.3f} | "
        f"{r['n']} | {r['s_per_slice']:.2f} | {r['fit_s']:.2f} |"
        for r in rows
    ]

    from src_models.sample_data import synthetic_stack

    image, truth = synthetic_stack(n_slices=8, size=512, seed=1)
    timings = [
        timing("dinov2", {"weights": "random", "device": "cpu"}, image, truth),
        timing("classic", {}, image, truth),
    ]
    lines += [
        "",
        "## Per-slice seconds (8 × 512² synthetic stack; dinov2 = ViT-S/14, random weights, "
        "bf16 auto)",
        "",
        "| backend | features s | backbone s | head s | total/backbone | cold run s "
        "| cached re-run s | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in timings:
        lines.append(
            f"| {t['backend']} | {t['features s/slice']:.3f} | "
            f"{t.get('backbone s/slice', float('nan')):.3f} | {t['head s/slice']:.3f} | "
            f"{t.get('total / backbone', float('nan')):.2f} | {t['cold run s']:.1f} | "
            f"{t['cached run s']:.1f} | {t['cached speed-up']:.1f}× |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# Engine benchmark\n\n" + text + "\n")


if __name__ == "__main__":
    main()
