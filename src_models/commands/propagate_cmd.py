"""`napari-incontext propagate`: examples on some slices → proposals on all of them."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from src_models.commands.common import add_backend_arguments, backend_from_args

HELP = "propagate example labels to every slice of a stack or every image of a folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="TIFF/NPY/zarr stack, or a folder of 2D images")
    parser.add_argument("--labels", required=True, help="label stack, or folder of example masks")
    parser.add_argument(
        "--out",
        required=True,
        help="output TIFF stack or folder; a stack's *.zarr is written slice by slice and a "
        "rerun resumes it; ONE 2D image larger than a tile (--labels: painted region(s) of "
        "the same size) is proposed tile by tile into a *.zarr in bounded memory, band by "
        "band, and a rerun resumes it too",
    )
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
    add_cache_arguments(parser)
    parser.add_argument(
        "--scheduler",
        default=None,
        help="run the slices as dask.distributed tasks (stacks with --out *.zarr only, not "
        "one big image): "
        "'local' starts --workers processes here, or a scheduler address tcp://HOST:PORT; "
        "proposals are scored against the examples, no --link",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="with --scheduler local: worker processes"
    )
    parser.add_argument(
        "--confidence",
        action="store_true",
        help="with --out *.zarr: also write each proposal's confidence (float16 in [0, 1]) "
        "into the store's confidence/ array, slice by slice and resumable like the labels",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """--feature-cache-gb, --feature-cache-dir and --feature-cache-disk-gb."""
    parser.add_argument(
        "--feature-cache-gb", type=float, default=4.0, help="memory for features (GB)"
    )
    parser.add_argument(
        "--feature-cache-dir",
        default=None,
        help="keep features on disk in DIR/features too, so a re-run of the same stack "
        "with the same options reads them instead of recomputing (classic: across runs; "
        "model backends: within one run)",
    )
    parser.add_argument(
        "--feature-cache-disk-gb", type=float, default=20.0, help="disk for features (GB)"
    )


def feature_cache(args: argparse.Namespace) -> Any:
    """The run's :class:`~src_models.cache.FeatureCache` from the --feature-cache-* options."""
    from src_models.cache import FeatureCache
    from src_models.disk_cache import DiskCache

    for flag in ("feature_cache_gb", "feature_cache_disk_gb"):
        if not getattr(args, flag) >= 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 0")
    disk = None
    if args.feature_cache_dir is not None:
        cap = int(args.feature_cache_disk_gb * 1e9)
        disk = DiskCache("features", args.feature_cache_dir, max_bytes=cap)
    return FeatureCache(int(args.feature_cache_gb * 1e9), disk)


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
    and the axis to tell the engine (-1 once moved, None when not given). A stack read per
    slice (a memmap, a zarr array) stays one: nothing is read here."""
    from src_models.channels import move_channel_axis
    from src_models.lazy import is_lazy, stack_view

    if channel_axis is None:
        return images, None
    if isinstance(images, np.ndarray) and images.ndim == 3:  # one multichannel image
        images = images[None]
        channel_axis += 1 if channel_axis >= 0 else 0
    if is_lazy(images):
        return stack_view(images, channel_axis), -1
    return move_channel_axis(images, channel_axis), -1


def timing_report(results: list[dict[str, Any]], link_auto: bool = True) -> dict[str, Any]:
    """Per-slice timings, their means, the ratio of total time to the backbone forward and
    the backend's automatic choices (``automatic_choices``: what ``link``, ``per_slice``,
    ``position`` were set to and the measures that decided them, 1.0 = on; ``link`` only
    when the run left it to the backend, ``link_auto``)."""
    from src_models.provenance import automatic_choices

    fresh = [r for r in results if not r["cached"]]
    mean = {
        k: float(np.mean([r.get(k, 0.0) for r in fresh])) if fresh else 0.0
        for k in ("features", "head", "backbone")
    }
    report: dict[str, Any] = {"slices": results, "mean_seconds": mean}
    chosen = automatic_choices(results[0], link_auto) if results else {}
    if chosen:
        report["automatic_choices"] = chosen
    if mean["backbone"] > 0:
        report["total_over_backbone"] = (mean["features"] + mean["head"]) / mean["backbone"]
    return report


def run_description(args: argparse.Namespace, backend: Any) -> Any:
    """``SliceResult -> dict``: the record of this run (:func:`src_models.provenance.
    run_record`) from its first result, as the outputs store it."""
    from src_models.provenance import automatic_choices, run_record

    def describe(first: Any) -> dict[str, Any]:
        chosen = automatic_choices(first.timings, args.link == "auto")
        return run_record(backend, chosen, link=args.link, unpainted=args.unpainted)

    return describe


def check_paths(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """Refuse dangerous or occupied outputs and an image given as its own labels, before
    anything is read or computed; returns (out, timings)."""
    from src_models.outputs import check_output

    for flag, value in (("image", args.image), ("--labels", args.labels)):
        if not str(value).strip():
            raise ValueError(f"{flag} is empty: give a file or folder")
    from src_models.io import is_zarr
    from src_models.zarr_out import store_problem

    image, labels = Path(args.image).expanduser(), Path(args.labels).expanduser()
    if image.exists() and labels.exists() and image.resolve() == labels.resolve():
        raise ValueError(f"--labels {args.labels} is the image itself: give the label file")
    stack = not image.is_dir() or is_zarr(image)
    suffix = Path(args.out).suffix.lower()
    if stack and suffix not in (".tif", ".tiff", ".zarr") and str(args.out).strip():
        raise ValueError(
            f"--out {args.out}: a stack's labels are a TIFF, name it *.tif (or *.zarr)"
        )
    zarr_out = stack and suffix == ".zarr"
    if getattr(args, "confidence", False) and not zarr_out:
        raise ValueError("--confidence needs a stack and --out *.zarr: drop it or use *.zarr")
    if getattr(args, "scheduler", None) is not None:
        if not zarr_out:
            raise ValueError("--scheduler needs a stack and --out *.zarr (the workers write it)")
        if args.link is True:  # "auto": a distributed run does not link
            raise ValueError("--link needs a local run's order: drop --link or --scheduler")
    inputs = [args.image, args.labels]
    out = check_output(
        args.out,
        overwrite=args.overwrite or zarr_out,  # ours is resumed (or replaced with --overwrite)
        kind="folder" if zarr_out or not stack else "file",
        inputs=inputs,
        others=[args.timings] if args.timings is not None else [],
        owner=store_problem if zarr_out else None,
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


def store_key(args: argparse.Namespace, images: Any, labels: Any, **more: Any) -> str:
    """The key of a zarr output: the inputs (the image's path, size, time, shape and dtype,
    the pixels of ``labels``), every option of the run and ``more``."""
    from src_models.zarr_out import run_key

    image = Path(args.image).resolve()
    stat = image.stat() if image.is_file() else None
    options = {k: v for k, v in vars(args).items() if k not in _NOT_KEYED}
    if not options.get("confidence"):  # keyed only when on: older stores still resume
        options.pop("confidence", None)
    record = {
        "image": str(image),
        "stat": [stat.st_size, stat.st_mtime_ns] if stat else None,
        "shape": list(images.shape),
        "dtype": str(images.dtype),
        "labels": str(Path(args.labels).resolve()),
        "options": options,
        **more,
    }
    return run_key(record, labels)


_NOT_KEYED = {"out", "overwrite", "quiet", "timings", "func", "command"}
_NOT_KEYED |= {"feature_cache_gb", "feature_cache_dir", "feature_cache_disk_gb"}


def _final(n: int, pixels: Any, labels: Any, proposals: dict[int, np.ndarray]) -> list[np.ndarray]:
    """Every slice of the TIFF/folder output: its proposal, else its labels, else zeros."""
    out = []
    for i in range(n):
        found = proposals.get(i)
        if found is None:
            given = labels[i]
            found = np.zeros(np.shape(pixels[i])[:2], np.uint8) if given is None else given
        out.append(np.asarray(found))
    return out


def run(args: argparse.Namespace) -> int:
    from src_models.commands.big_image_cmd import big_grid, big_input, run_big
    from src_models.inputs import user_dtype
    from src_models.io import read_images, read_labels, write_labels
    from src_models.zarr_out import done_slices, open_proposals, record_run, write_proposals

    out, timings = check_paths(args)
    cache = feature_cache(args)
    big = big_input(args, out)  # one 2D image opened lazily, nothing read yet
    backend = backend_from_args(args) if big is not None else None
    if (grid := big_grid(args, big, backend)) is not None and big is not None:
        return run_big(args, big, grid, backend, cache, out, timings)
    images = read_images(args.image)
    labels = read_labels(args.labels, images)
    pixels, axis = channels_last(images.images, args.channel_axis)
    backend = backend or backend_from_args(args)
    describe = run_description(args, backend)
    n = len(pixels) if images.names is not None else int(pixels.shape[0])
    if not (images.is_stack and out.suffix.lower() == ".zarr"):
        results = _local(args, pixels, labels, backend, cache, None, axis)
        proposals, count, record = _report(args, results, backend.name, timings, True, describe)
        write_labels(out, _final(n, pixels, labels, proposals), images.names, run=record)
        print(f"wrote {out} ({n} slices, {count} proposed)", file=sys.stderr)
        return 0
    stack: Any = labels  # a stack's labels: an array, memmap or zarr array
    key = store_key(args, images.images, stack)  # the options: --unpainted etc. too
    done = done_slices(out, tuple(stack.shape), key, args.overwrite)
    dtype = user_dtype([np.empty(0, stack.dtype)], np.iinfo(np.int64).max)

    opened: list[Any] = []  # the store, once open: the run's record goes into its attrs

    def open_store() -> Any:
        opened.append(open_proposals(out, stack, dtype, key, args.overwrite, args.confidence))
        return opened[-1]

    with contextlib.ExitStack() as scope:
        if args.scheduler is None:
            results = write_proposals(
                _local(args, pixels, labels, backend, cache, done, axis), open_store
            )
        else:
            from src_models.distributed import connect, propagate_distributed

            client = scope.enter_context(connect(args.scheduler, args.workers))
            results = propagate_distributed(
                pixels,
                labels,
                backend,
                client,
                open_store,
                cache=cache,
                targets=[i for i in range(n) if i not in done],
                unpainted=args.unpainted,
                background_id=args.background_id,
                channel_axis=axis,
            )
        results = record_run(results, lambda: opened[-1], describe)
        count = _report(args, results, backend.name, timings, False, describe)[1]
    print(f"wrote {out} ({n} slices, {count} proposed, {len(done)} resumed)", file=sys.stderr)
    return 0


def _local(
    args: argparse.Namespace,
    pixels: Any,
    labels: Any,
    backend: Any,
    cache: Any,
    done: set[int] | None,
    axis: int | None,
) -> Any:
    """The local run (:func:`src_models.engine.propagate`) of the slices not ``done``."""
    from src_models.engine import propagate

    n = len(pixels) if not hasattr(pixels, "shape") else int(pixels.shape[0])
    return propagate(
        pixels,
        labels,
        backend,
        cache=cache,
        link=args.link,
        targets=None if done is None else [i for i in range(n) if i not in done],
        unpainted=args.unpainted,
        background_id=args.background_id,
        channel_axis=axis,
    )


def _report(
    args: argparse.Namespace,
    results: Any,
    desc: str,
    timings: Path | None,
    keep: bool,
    describe: Any,
) -> tuple[dict[int, np.ndarray], int, dict[str, Any] | None]:
    """Consume the run with a progress bar; write the timings. Returns the proposals (when
    ``keep``), how many slices were proposed and the run's record (``describe`` of the first
    result; None when nothing was proposed)."""
    from tqdm import tqdm

    from src_models.atomic import write_json
    from src_models.provenance import describe_choices

    proposals: dict[int, np.ndarray] = {}
    rows = []
    bar, record = None, None
    for res in results:
        if bar is None:  # created after validation, so a bad input prints one line only
            bar = tqdm(
                total=res.total, desc=desc, unit="slice", file=sys.stderr, disable=args.quiet
            )
            record = describe(res)
            if auto := describe_choices(record["automatic_choices"], "="):
                print(f"{desc} chose {auto}", file=sys.stderr)
        bar.update(1)
        if keep:
            proposals[res.index] = res.labels
        rows.append({"index": res.index, "score": res.score, **res.timings})
    if bar is not None:
        bar.close()
    if timings is not None:
        write_json(timings, timing_report(rows, args.link == "auto"))
    return proposals, len(rows), record
