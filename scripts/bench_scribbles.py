"""Scribbles vs dense examples with classic, on ISBI 2012 and on DAVIS 2016: the "scribbles"
block of docs/benchmarks.md.

    PYTHONPATH=. .venv/bin/python scripts/bench_scribbles.py [--data ../shared/data]
        [--strokes 3 10] [--datasets isbi davis] [--sequences 3] [--frames 20] [--step 4]

ISBI: one example slice (the middle one) of the stack. DAVIS: frame 0 of the first
``--sequences`` sequences (sorted), every ``--step``-th pixel, its first ``--frames`` frames.
Each example is labelled two ways: the dense ground truth (ISBI: cell interior = 1,
membrane = 0; DAVIS: object = 1, background = 0), or scribbles made from it by
:func:`src_models.evaluation.strokes.strokes_from_truth` (strokes of class 1 = 1, strokes of
class 0 = the background id 2, the rest unpainted), run with ``unpainted="unlabelled"``. The
same scribbles run in dense mode show what happened before scribble mode existed. IoU of both
classes on every other slice/frame; the block is replaced in place, and the section of a
dataset left out by ``--datasets`` is kept as it was.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from collections.abc import Iterator
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
BACKGROUND = 2  # the class-0 strokes' label in scribble mode
CLASSES = {"isbi": ("interior", "membrane"), "davis": ("object", "background")}
Case = tuple[np.ndarray, np.ndarray, int]  # image (N, Y, X[, 3]), truth (N, Y, X) 0/1, example


def load_isbi(data: Path, slices: int | None) -> Iterator[Case]:
    """ISBI image stack (N, 512, 512) uint8 and truth (1 = cell interior, 0 = membrane)."""
    folder = data / "isbi2012_em_membrane"
    image = tifffile.imread(folder / "images_stack_zyx.tif")[:slices]
    truth = (tifffile.imread(folder / "labels_stack_zyx.tif")[:slices] > 0).astype(np.int32)
    yield image, truth, len(image) // 2


def load_davis(data: Path, sequences: int, frames: int, step: int) -> Iterator[Case]:
    """Per sequence: frames (F, Y, X, 3) uint8 and truth (1 = object), example frame 0."""
    from skimage.io import imread

    folder = data / "davis2016_val"
    for seq in sorted((folder / "JPEGImages").iterdir())[:sequences]:
        files = sorted(seq.glob("*.jpg"))[:frames]
        image = np.stack([imread(f)[::step, ::step] for f in files])
        masks = [folder / "Annotations" / seq.name / f"{f.stem}.png" for f in files]
        truth = np.stack([imread(m)[::step, ::step] > 127 for m in masks]).astype(np.int32)
        yield image, truth, 0


def run(image: np.ndarray, labels: np.ndarray, truth: np.ndarray, **mode: Any) -> list[float]:
    """Propagate with classic: [IoU of class 1, IoU of class 0, slices, seconds]."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SparseExamplesWarning)
        results = list(propagate(image, labels, build_backend("classic"), **mode))
    seconds = time.perf_counter() - start
    scored = [r for r in results if not labels[r.index].any()]
    ones = [iou(r.labels == 1, truth[r.index] == 1) for r in scored]
    zeros = [iou(r.labels == 0, truth[r.index] == 0) for r in scored]
    return [float(np.mean(ones)), float(np.mean(zeros)), len(scored), seconds]


def rows(cases: list[Case], strokes: list[int]) -> list[tuple[str, str, float, list[float]]]:
    """(example, unpainted, painted share, [IoU 1, IoU 0, slices, seconds]) summed/averaged
    over the cases (IoU and share: mean over cases; slices and seconds: sums)."""
    found: dict[tuple[str, str], list[tuple[float, list[float]]]] = {}
    for image, truth, example in cases:
        dense = np.zeros_like(truth)
        dense[example] = truth[example]
        found.setdefault(("dense mask", "background"), []).append((1.0, run(image, dense, truth)))
        for count in strokes:
            scribbles = np.zeros_like(truth)
            scribbles[example] = strokes_from_truth(truth[example], BACKGROUND, strokes=count)
            share = float((scribbles[example] > 0).mean())
            name = f"{count} strokes per class"
            sparse = run(image, scribbles, truth, unpainted="unlabelled", background_id=BACKGROUND)
            found.setdefault((name, "unlabelled"), []).append((share, sparse))
            before = run(image, scribbles, truth)
            found.setdefault((name, "background (before)"), []).append((share, before))
    out = []
    for (name, mode), runs in found.items():
        stats = np.array([r for _, r in runs])
        summary = [*stats[:, :2].mean(axis=0), *stats[:, 2:].sum(axis=0)]
        out.append((name, mode, float(np.mean([s for s, _ in runs])), summary))
    return out


def table(dataset: str, found: list[tuple[str, str, float, list[float]]]) -> str:
    one, zero = CLASSES[dataset]
    lines = [
        f"| example | unpainted | painted share | slices | IoU {one} | IoU {zero} | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, mode, painted, (a, b, slices, seconds) in found:
        lines.append(
            f"| {name} | {mode} | {painted:.2%} | {int(slices)} | {a:.3f} | {b:.3f} | "
            f"{seconds:.1f} |"
        )
    return "\n".join(lines)


def section(dataset: str, args: argparse.Namespace, body: str, seconds: float) -> str:
    strokes = " ".join(map(str, args.strokes))
    command = f"PYTHONPATH=. python scripts/bench_scribbles.py --strokes {strokes}"
    ran = f"`{command} --datasets {' '.join(args.datasets)}"
    if "davis" in args.datasets:
        ran += f" --sequences {args.sequences} --frames {args.frames} --step {args.step}"
    ran += f"` (took {seconds / 60:.1f} min on 2 busy cores)"
    if dataset == "isbi":
        what = (
            "One example slice (the middle one), labelled with its dense ground truth (cell "
            "interior = 1, membrane = 0) or with scribbles made from it (interior strokes = 1, "
            f"membrane strokes = {BACKGROUND}). IoU averaged over every other slice."
        )
        title = "### ISBI 2012 (EM membranes, 512 × 512)"
    else:
        what = (
            f"Frame 0 of the first {args.sequences} sequences (sorted) as the example, every "
            f"{args.step}th pixel, frames 1–{args.frames - 1} predicted; labelled with its "
            f"dense mask (object = 1, background = 0) or with scribbles made from it (object "
            f"strokes = 1, background strokes = {BACKGROUND}). IoU averaged over the "
            "sequences (each: its mean over the predicted frames); slices and seconds summed."
        )
        title = "### DAVIS 2016 val (RGB video, frame 0 → the next frames)"
    return f"{title}\n\nProduced by {ran}. {what}\n\n{body}"


def kept_section(path: Path, dataset: str) -> str:
    """The section of ``dataset`` as docs/benchmarks.md has it (for a run that skips it)."""
    text = path.read_text() if path.is_file() else ""
    start = {"isbi": "### ISBI", "davis": "### DAVIS"}[dataset]
    match = re.search(rf"^{start}.*?(?=^### |^<!-- scribbles:end)", text, re.S | re.M)
    return match.group(0).strip() if match else ""


def block(sections: list[str]) -> str:
    return (
        "## Scribbles vs dense examples (classic)\n\n"
        "Scribbles come from the ground truth (`src_models/evaluation/strokes.py`: each class "
        "eroded by 2 px and skeletonised; a stroke is a walk of at most 200 px along the "
        "skeleton's longest route, in the longest piece without a stroke, else from the end "
        "farthest from the strokes so far). "
        f"*unlabelled* = scribble mode (`--unpainted unlabelled --background-id {BACKGROUND}`); "
        "*background (before)* = the same scribbles in dense mode, what a scribbling user got "
        "before scribble mode.\n\n" + "\n\n".join(s for s in sections if s)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--strokes", type=int, nargs="+", default=[3, 10])
    parser.add_argument(
        "--datasets", nargs="+", choices=["isbi", "davis"], default=["isbi", "davis"]
    )
    parser.add_argument("--slices", type=int, default=None, help="ISBI: first N slices only")
    parser.add_argument("--sequences", type=int, default=3, help="DAVIS sequences (sorted)")
    parser.add_argument("--frames", type=int, default=20, help="DAVIS: first N frames")
    parser.add_argument("--step", type=int, default=4, help="DAVIS: every Nth pixel")
    args = parser.parse_args(argv)
    data, out = Path(args.data), Path(args.out)
    folders = {"isbi": "isbi2012_em_membrane", "davis": "davis2016_val"}
    for name in args.datasets:
        if not (data / folders[name]).is_dir():
            raise SystemExit(f"{data}/{folders[name]} is absent: point --data at the data folder")
    start = time.perf_counter()
    bodies = {}
    for name in args.datasets:
        cases = (
            load_isbi(data, args.slices)
            if name == "isbi"
            else load_davis(data, args.sequences, args.frames, args.step)
        )
        bodies[name] = table(name, rows(list(cases), args.strokes))
        print(f"{name}\n{bodies[name]}", flush=True)
    seconds = time.perf_counter() - start
    sections = [
        section(n, args, bodies[n], seconds) if n in bodies else kept_section(out, n)
        for n in ("isbi", "davis")
    ]
    write_block(out, "scribbles", block(sections), "# Benchmarks")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
