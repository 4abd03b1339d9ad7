"""`napari-incontext demo`: generate a sample stack, label one slice, propagate, score."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

HELP = "run the engine on a generated sample stack and print per-slice IoU and seconds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="classic", help="registry name")
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument(
        "--out", default=None, help="also save image, example and result TIFFs in this new folder"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier demo output folder"
    )


def run(args: argparse.Namespace) -> int:
    from src_models.atomic import write_folder
    from src_models.engine import propagate
    from src_models.evaluation.metrics import iou
    from src_models.outputs import check_output
    from src_models.registry import build_backend
    from src_models.sample_data import example_labels, synthetic_stack

    if args.out is not None:
        check_output(args.out, overwrite=args.overwrite, kind="folder")
    image, truth = synthetic_stack(args.slices, args.size)
    labels = example_labels(truth)
    result = labels.copy()
    print(f"sample stack {image.shape} {image.dtype}; example on slice {len(image) // 2}")
    print("slice  IoU(obj1)  IoU(obj2)  confidence  seconds")
    start = time.perf_counter()
    scores = []
    for res in propagate(image, labels, build_backend(args.backend)):
        result[res.index] = res.labels
        row = [iou(res.labels == k, truth[res.index] == k) for k in (1, 2)]
        scores.append(row)
        seconds = res.timings["features"] + res.timings["head"]
        print(f"{res.index:5d}  {row[0]:9.3f}  {row[1]:9.3f}  {res.score:10.3f}  {seconds:7.2f}")
    mean = np.mean(scores, axis=0)
    print(
        f"mean IoU: object 1 {mean[0]:.3f}, object 2 {mean[1]:.3f}; "
        f"{time.perf_counter() - start:.1f} s in all"
    )
    if args.out is not None:
        import tifffile

        def fill(folder: Path) -> None:
            for name, arr in (("image", image), ("examples", labels), ("proposals", result)):
                tifffile.imwrite(folder / f"{name}.tif", arr)

        write_folder(args.out, fill)
        print(f"saved image.tif, examples.tif, proposals.tif in {args.out}")
    return 0
