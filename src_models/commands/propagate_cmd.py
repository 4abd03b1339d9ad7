"""`napari-incontext propagate`: examples on some slices → proposals on all of them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from src_models.commands.common import add_backend_arguments, backend_from_args

HELP = "propagate example labels to every slice of a stack or every image of a folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="TIFF/NPY stack, or a folder of 2D images")
    parser.add_argument("--labels", required=True, help="label stack, or folder of example masks")
    parser.add_argument("--out", required=True, help="output TIFF stack or folder")
    add_backend_arguments(parser)
    parser.add_argument("--timings", default=None, help="write per-slice seconds as JSON here")
    parser.add_argument(
        "--link",
        action="store_const",
        const=True,
        default="auto",
        help="stacks only: keep the parts of a proposal that touch the same id on the "
        "neighbouring slice (drops look-alikes away from the object); default: the "
        "backend decides (classic: on for continuous stacks)",
    )
    parser.add_argument("--no-link", dest="link", action="store_const", const=False)
    add_unpainted_arguments(parser)
    parser.add_argument(
        "--channel-axis",
        type=int,
        default=None,
        help="axis of the channels (e.g. 1 for a (N, C, Y, X) stack, 0 for one (C, Y, X) "
        "image; default: the last axis of a 4D stack, up to 16 channels). classic uses every "
        "channel; the model backends see 3 (1: repeated, 2: c0, c1, mean, 3+: the first "
        "three, or --option channels=I,J,K)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_unpainted_arguments(parser: argparse.ArgumentParser) -> None:
    """--unpainted and --background-id (scribble mode, :mod:`src_models.scribbles`)."""
    from src_models.scribbles import DEFAULT_BACKGROUND_ID, UNPAINTED

    parser.add_argument(
        "--unpainted",
        default="background",
        choices=list(UNPAINTED),
        help="what unpainted pixels of the example slices mean: background (dense masks) or "
        "unlabelled (scribbles: --background-id is the background class; the scribbled "
        "slices are segmented too)",
    )
    parser.add_argument(
        "--background-id",
        type=int,
        default=DEFAULT_BACKGROUND_ID,
        help="with --unpainted unlabelled: the label painted on background (written as 0)",
    )


def channels_last(images: Any, channel_axis: int | None) -> tuple[Any, int | None]:
    """The images with ``--channel-axis`` moved last (one (C, Y, X) file is one image),
    and the axis to tell the engine (-1 once moved, None when not given)."""
    from src_models.channels import move_channel_axis

    if channel_axis is None:
        return images, None
    if isinstance(images, np.ndarray) and images.ndim == 3:  # one multichannel image
        images = images[None]
        channel_axis += 1 if channel_axis >= 0 else 0
    return move_channel_axis(images, channel_axis), -1


def timing_report(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-slice timings plus means and the ratio of total time to the backbone forward."""
    fresh = [r for r in results if not r["cached"]]
    mean = {
        k: float(np.mean([r.get(k, 0.0) for r in fresh])) if fresh else 0.0
        for k in ("features", "head", "backbone")
    }
    report: dict[str, Any] = {"slices": results, "mean_seconds": mean}
    if mean["backbone"] > 0:
        report["total_over_backbone"] = (mean["features"] + mean["head"]) / mean["backbone"]
    return report


def _choices(timings: dict[str, float]) -> str:
    """The backend's automatic choices (``auto_*`` timings), e.g. "link=on, per_slice=off"."""
    auto = {k[5:]: v for k, v in timings.items() if k.startswith("auto_")}
    flags = ("link", "per_slice", "position")
    return ", ".join(f"{k}={'on' if v else 'off'}" for k, v in auto.items() if k in flags)


def check_paths(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """Refuse dangerous or occupied outputs and an image given as its own labels, before
    anything is read or computed; returns (out, timings)."""
    from src_models.outputs import check_output

    for flag, value in (("image", args.image), ("--labels", args.labels)):
        if not str(value).strip():
            raise ValueError(f"{flag} is empty: give a file or folder")
    image, labels = Path(args.image).expanduser(), Path(args.labels).expanduser()
    if image.exists() and labels.exists() and image.resolve() == labels.resolve():
        raise ValueError(f"--labels {args.labels} is the image itself: give the label file")
    stack = not image.is_dir()
    if stack and Path(args.out).suffix.lower() not in (".tif", ".tiff") and str(args.out).strip():
        raise ValueError(f"--out {args.out}: a stack's labels are a TIFF, name it *.tif")
    inputs = [args.image, args.labels]
    out = check_output(
        args.out,
        overwrite=args.overwrite,
        kind="file" if stack else "folder",
        inputs=inputs,
        others=[args.timings] if args.timings is not None else [],
    )
    timings = None
    if args.timings is not None:
        timings = check_output(
            args.timings,
            overwrite=args.overwrite,
            kind="file",
            inputs=inputs,
            others=[args.out],
            flag="--timings",
        )
    return out, timings


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from src_models.atomic import write_json
    from src_models.engine import propagate
    from src_models.io import read_images, read_labels, write_labels

    out, timings = check_paths(args)
    images = read_images(args.image)
    labels = read_labels(args.labels, images)
    pixels, axis = channels_last(images.images, args.channel_axis)
    backend = backend_from_args(args)
    n = len(pixels)
    result: list[np.ndarray | None] = [
        np.asarray(lab) if lab is not None else None for lab in labels
    ]
    rows = []
    bar = None
    run = propagate(
        pixels,
        labels,
        backend,
        link=args.link,
        unpainted=args.unpainted,
        background_id=args.background_id,
        channel_axis=axis,
    )
    for res in run:
        if bar is None:  # created after validation, so a bad input prints one line only
            bar = tqdm(
                total=res.total,
                desc=backend.name,
                unit="slice",
                file=sys.stderr,
                disable=args.quiet,
            )
        bar.update(1)
        result[res.index] = res.labels
        rows.append({"index": res.index, "score": res.score, **res.timings})
        if len(rows) == 1 and (auto := _choices(res.timings)):
            print(f"{backend.name} chose {auto}", file=sys.stderr)
    if bar is not None:
        bar.close()
    final = [
        r if r is not None else np.zeros(np.shape(pixels[i])[:2], np.uint8)
        for i, r in enumerate(result)
    ]
    write_labels(out, final, images.names)
    if timings is not None:
        write_json(timings, timing_report(rows))
    print(f"wrote {out} ({n} slices, {len(rows)} proposed)", file=sys.stderr)
    return 0
