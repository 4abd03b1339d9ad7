"""`propagate` on ONE 2D image bigger than a tile, with --out *.zarr: in bounded memory.

The example is the window around the painted pixels of the (same-size, 2D) labels, grown
by the tile overlap (:func:`src_models.big_image.example_window`: only that window of the
image is read); the image is then proposed tile by tile and written band by band into the
zarr store (:func:`~src_models.big_image.propagate_image`, :func:`~.write_image`).

The store's key is the stack path's (:func:`~src_models.commands.propagate_cmd.store_key`:
the image file, every option) plus the painted window, its pixels and the tile grid: a
rerun of the same command resumes the bands done, one of other inputs or options is
refused unless ``--overwrite``. ``--scheduler`` is refused: the tiles run here, in order.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from src_models.plane import Plane, open_plane
from src_models.tiling import TileGrid, grid_for, tile_options


def big_input(args: argparse.Namespace, out: Path) -> Plane | None:
    """The image as a lazy :class:`~src_models.plane.Plane` when this run may take the big
    image path (--out *.zarr, one 2D image file), else None."""
    if out.suffix.lower() != ".zarr":
        return None
    return open_plane(args.image, args.channel_axis)


def big_grid(args: argparse.Namespace, image: Plane | None, backend: Any) -> TileGrid | None:
    """The tile grid of ``image`` for ``backend``; None when there is no image or it fits.
    ``ValueError`` for a big image with --scheduler (its tiles run here, in order)."""
    grid = None if image is None else grid_for(backend, image.shape)
    if grid is not None and args.scheduler is not None:
        raise ValueError(
            f"--scheduler runs the slices of a stack; one big 2D image ({len(grid)} tiles) "
            "is proposed tile by tile on this machine: drop --scheduler"
        )
    return grid


def run_big(
    args: argparse.Namespace,
    image: Plane,
    grid: TileGrid,
    backend: Any,
    cache: Any,
    out: Path,
    timings: Path | None,
) -> int:
    """Propose the big ``image`` into ``out`` (paths already checked by ``check_paths``),
    resuming the bands an interrupted run with the same inputs and options wrote."""
    import zarr

    from src_models.big_image import example_window, propagate_image, resume_bands, write_image
    from src_models.commands.propagate_cmd import store_key
    from src_models.inputs import user_dtype
    from src_models.provenance import run_record

    labels = open_plane(args.labels)
    if labels is None:
        raise ValueError(
            f"--labels {args.labels}: give one (Y, X) label image (zarr, NPY or TIFF) of the "
            "image's size"
        )
    margin = (tile_options(backend) or (0, 0))[1]
    crop, painted, box = example_window(image, labels, margin)
    height, width = image.shape[:2]
    tiling = {"tile": grid.tile, "overlap": grid.overlap, "tiles": len(grid)}
    window = [[s.start, s.stop] for s in box]
    key = store_key(args, image, painted[None], big_image={**tiling, "window": window})
    done = resume_bands(out, (height, width), key, args.overwrite)
    bands = propagate_image(
        image,
        [(crop, painted)],
        backend,
        cache,
        unpainted=args.unpainted,
        background_id=args.background_id,
        skip=done,
    )
    dtype = user_dtype([np.empty(0, labels.dtype)], np.iinfo(np.int64).max)
    written = write_image(
        bands,
        out,
        dtype,
        (height, width),
        args.confidence,
        args.overwrite,
        key,
        lambda band: run_record(backend, band.choices, unpainted=args.unpainted, tiles=tiling),
    )
    resumed = sum(b.stop - b.start for b in grid.bands() if b.start in done)
    last = _consume(args, written, backend.name, height, resumed)
    mean = zarr.open_array(str(out), mode="r").attrs.get("mean_confidence")
    if timings is not None:
        from src_models.atomic import write_json

        report = {"big_image": True, **tiling, "mean_confidence": mean, "timings": last}
        write_json(timings, report)
    print(
        f"wrote {out}: ran as a big image ({height} x {width}) in {len(grid)} tiles of "
        f"{grid.tile} px, example = the painted window {crop.shape[0]} x {crop.shape[1]}"
        + (f", {resumed} of {height} rows resumed" if done else "")
        + (f", mean confidence {mean:.3f}" if isinstance(mean, float) else ""),
        file=sys.stderr,
    )
    return 0


def _consume(
    args: argparse.Namespace, bands: Iterator[Any], desc: str, height: int, resumed: int
) -> dict[str, float]:
    """Run ``bands`` with a progress bar of rows (``resumed`` of them done already);
    returns the last band's timings."""
    from tqdm import tqdm

    last: dict[str, float] = {}
    with tqdm(
        total=height,
        initial=resumed,
        desc=desc,
        unit="row",
        file=sys.stderr,
        disable=args.quiet,
    ) as bar:
        for band in bands:
            bar.update(len(band.labels))
            last = band.timings or last
    return last
