"""classic benchmark (issue 16): old defaults vs new defaults, one run, same machine.

Rows, each with mean IoU and seconds per predicted slice (features + forest + link, the fit
excluded and given apart):
- ISBI-2012 EM: example slice 0, predict 1..29;
- hippocampus MRI: example slice 12, score the other labelled slices (run on every slice so
  that linking has its chain of neighbours);
- DAVIS-2016: frame 0 → every other frame, frames downscaled by ``--davis-step`` (stride);
- StarDist nuclei (2D): top half painted, bottom half predicted (a small class: nuclei).

*mean IoU* = the mean over scored slices of the per-slice IoU averaged over the foreground
ids, the metric of docs/bench_engine.md (hippocampus 0.297 there).

Usage: python scripts/bench_classic.py [--data ../shared/data] [--davis-step 2]
           [--sequences 10] [--variant context=1] [--out docs/bench_classic.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import tifffile

from src_models.engine import propagate
from src_models.evaluation.metrics import object_ious
from src_models.registry import build_backend

OLD = {
    "features": "basic",
    "sigma_min": 1.0,
    "sigma_max": 16.0,
    "balance": False,
    "per_slice": False,
    "position": False,
    "samples_per_class": 20_000,
}
CONFIGS = {"old defaults": (OLD, False), "new defaults (auto)": ({}, "auto")}


def run(image, truth: np.ndarray, example: int, targets: list[int], scored: list[int], cfg):
    """Mean IoU over ``scored``, s/slice over ``targets`` (fit excluded), fit s, choices."""
    options, link = cfg
    ids = [int(k) for k in np.unique(truth) if k]
    labels = np.zeros_like(truth)
    labels[example] = truth[example]
    if isinstance(image, list):
        labels = [labels[i] for i in range(len(image))]
    start = time.perf_counter()
    backend = build_backend("classic", **options)
    results = list(propagate(image, labels, backend, targets=targets, link=link))
    first = results[0].timings
    seconds = (time.perf_counter() - start - first.get("fit", 0.0)) / len(targets)
    ious = [
        np.mean(list(object_ious(r.labels, truth[r.index], ids).values()))
        for r in results
        if r.index in scored
    ]
    chosen = {k[5:]: v for k, v in first.items() if k.startswith("auto_")}
    return float(np.mean(ious)), seconds, first.get("fit", 0.0), chosen


def variant_options(text: str) -> dict[str, str]:
    """``"a=1,b=2"`` → ``{"a": "1", "b": "2"}`` (converted by the backend's config)."""
    return dict(item.split("=", 1) for item in text.split(","))


def stacks(data: Path, step: int, sequences: int):
    """(name, image, truth, example, targets, scored) of every dataset found."""
    isbi = data / "isbi2012_em_membrane"
    if isbi.exists():
        img = tifffile.imread(isbi / "images_stack_zyx.tif")
        lab = (tifffile.imread(isbi / "labels_stack_zyx.tif") > 0).astype(np.int32)
        yield "ISBI-2012 EM (0 → 1..29)", img, lab, 0, list(range(1, 30)), list(range(1, 30))
    hippo = data / "hippocampus_mri_3d_mmseg"
    if hippo.exists():
        img = tifffile.imread(hippo / "image_zyx.tif")
        lab = tifffile.imread(hippo / "labels_zyx.tif").astype(np.int32)
        every = [i for i in range(len(lab)) if i != 12]
        scored = [i for i in every if lab[i].any()]
        yield "Hippocampus MRI (12 → labelled)", img, lab, 12, every, scored
    davis = data / "davis2016_val"
    for seq in sorted((davis / "JPEGImages").glob("*"))[:sequences] if davis.exists() else ():
        from skimage.io import imread

        frames = sorted(seq.glob("*.jpg"))
        img = np.stack([imread(f)[::step, ::step] for f in frames])
        masks = [davis / "Annotations" / seq.name / f"{f.stem}.png" for f in frames]
        lab = np.stack([(imread(m)[::step, ::step] > 127) for m in masks]).astype(np.int32)
        rest = list(range(1, len(frames)))
        yield f"DAVIS {seq.name} (0 → rest)", img, lab, 0, rest, rest
    nuclei = data / "stardist_nuclei" / "img2d.tif"
    if nuclei.exists():
        img = tifffile.imread(nuclei)
        lab = (tifffile.imread(nuclei.with_name("mask2d.tif")) > 0).astype(np.int32)
        half = img.shape[0] // 2
        yield (
            "StarDist 2D (top half → bottom)",
            [img[:half], img[half:]],
            np.stack([lab[:half], lab[half : 2 * half]]),
            0,
            [1],
            [1],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--davis-step", type=int, default=2, help="DAVIS frame stride")
    parser.add_argument("--sequences", type=int, default=10, help="DAVIS sequences (sorted)")
    parser.add_argument("--only", default="", help="only the datasets whose name has this")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="instead of old vs new defaults: the defaults and the defaults with these options,"
        " e.g. context=1,n_estimators=16 (repeatable)",
    )
    parser.add_argument("--out", default=None, help="also write the table as markdown here")
    args = parser.parse_args()
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores. "
        f"`python scripts/bench_classic.py --davis-step {args.davis_step} "
        f"--sequences {args.sequences}`",
        "",
        "| dataset | defaults | mean IoU | s/slice | fit s | automatic choices |",
        "|---|---|---|---|---|---|",
    ]
    totals: dict[str, list[tuple[float, float]]] = {}
    configs = CONFIGS
    if args.variant:
        configs = {"defaults": ({}, "auto")}
        for v in args.variant:
            configs[v] = (variant_options(v), "auto")
            lines[0] += f" `--variant {v}`"
    for name, image, truth, example, targets, scored in stacks(
        Path(args.data), args.davis_step, args.sequences
    ):
        if args.only not in name:
            continue
        for label, cfg in configs.items():
            miou, sec, fit, chosen = run(image, truth, example, targets, scored, cfg)
            if name.startswith("DAVIS"):
                totals.setdefault(label, []).append((miou, sec))
            shown = ", ".join(f"{k}={v:.2f}" for k, v in chosen.items()) if cfg[0] != OLD else ""
            lines.append(f"| {name} | {label} | {miou:.3f} | {sec:.2f} | {fit:.1f} | {shown} |")
            print(lines[-1], flush=True)
    for label, rows in totals.items():
        miou, sec = np.mean(rows, axis=0)
        lines.append(f"| DAVIS mean of {len(rows)} | {label} | {miou:.3f} | {sec:.2f} | | |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# classic benchmark\n\n" + text + "\n")


if __name__ == "__main__":
    main()
