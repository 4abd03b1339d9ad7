"""Scribbles vs dense examples on ISBI 2012 with classic: the "scribbles" block of
docs/benchmarks.md.

    .venv/bin/python scripts/bench_scribbles.py [--data ../shared/data] [--strokes 3 10]

One example slice (the middle one) of the ISBI stack, labelled two ways: the dense ground
truth (cell interior = 1, membrane = 0), or scribbles made from it by
:func:`src_models.evaluation.strokes.strokes_from_truth` (interior strokes = 1, membrane
strokes = the background id 2, the rest unpainted), run with ``unpainted="unlabelled"``. The
same scribbles run in dense mode show what happened before scribble mode existed. IoU of the
cell interior and of the membrane on every other slice; the block is replaced in place.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from src_models.engine import propagate
from src_models.evaluation.metrics import iou
from src_models.evaluation.report import write_block
from src_models.evaluation.strokes import strokes_from_truth
from src_models.registry import build_backend
from src_models.scribbles import SparseExamplesWarning

ROOT = Path(__file__).resolve().parents[1]
BACKGROUND = 2  # the membrane strokes' label in scribble mode


def load(data: Path, slices: int | None) -> tuple[np.ndarray, np.ndarray]:
    """ISBI image stack (N, 512, 512) uint8 and truth (1 = cell interior, 0 = membrane)."""
    folder = data / "isbi2012_em_membrane"
    image = tifffile.imread(folder / "images_stack_zyx.tif")
    truth = (tifffile.imread(folder / "labels_stack_zyx.tif") > 0).astype(np.int32)
    return (image[:slices], truth[:slices]) if slices else (image, truth)


def run(image: np.ndarray, labels: np.ndarray, truth: np.ndarray, **mode: Any) -> dict[str, Any]:
    """Propagate with classic; mean IoU of interior and membrane over the other slices."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparseExamplesWarning)
        results = list(propagate(image, labels, build_backend("classic"), **mode))
    seconds = time.perf_counter() - start
    scored = [r for r in results if not labels[r.index].any()]
    cells = [iou(r.labels == 1, truth[r.index] == 1) for r in scored]
    membrane = [iou(r.labels == 0, truth[r.index] == 0) for r in scored]
    return {
        "slices": len(scored),
        "interior": float(np.mean(cells)),
        "membrane": float(np.mean(membrane)),
        "seconds": seconds,
    }


def table(image: np.ndarray, truth: np.ndarray, strokes: list[int]) -> str:
    example = len(image) // 2
    rows = []
    dense = np.zeros_like(truth)
    dense[example] = truth[example]
    rows.append(("dense mask", "background", 1.0, run(image, dense, truth)))
    for count in strokes:
        scribbles = np.zeros_like(truth)
        scribbles[example] = strokes_from_truth(truth[example], BACKGROUND, strokes=count)
        share = float((scribbles[example] > 0).mean())
        sparse = run(image, scribbles, truth, unpainted="unlabelled", background_id=BACKGROUND)
        rows.append((f"{count} strokes per class", "unlabelled", share, sparse))
        before = run(image, scribbles, truth)
        rows.append((f"{count} strokes per class", "background (before)", share, before))
    lines = [
        "| example | unpainted | painted share | slices | IoU interior | IoU membrane | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, mode, painted, r in rows:
        lines.append(
            f"| {name} | {mode} | {painted:.2%} | {r['slices']} | {r['interior']:.3f} | "
            f"{r['membrane']:.3f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def block(args: argparse.Namespace, body: str, seconds: float) -> str:
    strokes = " ".join(map(str, args.strokes))
    return (
        "## Scribbles vs dense examples (ISBI 2012, classic)\n\n"
        f"Regenerate with `python scripts/bench_scribbles.py --strokes {strokes}` (took "
        f"{seconds / 60:.1f} min on 2 busy cores). One example slice (the middle one), labelled "
        "with its dense ground truth (cell interior = 1, membrane = 0) or with scribbles made "
        "from it (`src_models/evaluation/strokes.py`: each class eroded by 2 px, skeletonised, "
        "its longest skeleton pieces kept, at most 200 px each; interior strokes = 1, "
        f"membrane strokes = {BACKGROUND}). *unlabelled* = scribble mode "
        f"(`--unpainted unlabelled --background-id {BACKGROUND}`); *background (before)* = the "
        "same scribbles in dense mode, what a scribbling user got before. IoU averaged over "
        "every other slice.\n\n" + body
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--strokes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--slices", type=int, default=None, help="first N slices only")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "isbi2012_em_membrane").is_dir():
        raise SystemExit(f"{data}/isbi2012_em_membrane is absent: point --data at the data folder")
    start = time.perf_counter()
    image, truth = load(data, args.slices)
    body = table(image, truth, args.strokes)
    print(body)
    write_block(
        Path(args.out), "scribbles", block(args, body, time.perf_counter() - start), "# Benchmarks"
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
