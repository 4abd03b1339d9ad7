"""`propagate` on ONE 2D image bigger than a tile, with --out *.zarr: in bounded memory.

The example is the window around the painted pixels of the (same-size, 2D) labels, grown
by the tile overlap (:func:`src_models.big_image.example_window`: only that window of the
image is read); the image is then proposed tile by tile and written band by band into the
zarr store (:func:`~src_models.big_image.propagate_image`, :func:`~.write_image`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from src_models.plane import Plane, open_plane
from src_models.tiling import TileGrid, grid_for, tile_options


def big_input(args: argparse.Namespace, out: Path) -> Plane | None:
    """The image as a lazy :class:`~src_models.plane.Plane` when this run may take the big
    image path (--out *.zarr, no --scheduler, one 2D image file), else None."""
    if out.suffix.lower() != ".zarr" or args.scheduler is not None:
        return None
    return open_plane(args.image, args.channel_axis)


def big_grid(image: Plane | None, backend: Any) -> TileGrid | None:
    """The tile grid of ``image`` for ``backend``; None when there is no image or it fits."""
    return None if image is None else grid_for(backend, image.shape)


def run_big(
    args: argparse.Namespace,
    image: Plane,
    grid: TileGrid,
    backend: Any,
    cache: Any,
    out: Path,
    timings: Path | None,
) -> int:
    """Propose the big ``image`` into ``out`` (paths already checked by ``check_paths``)."""
    from tqdm import tqdm

    from src_models.atomic import write_json
    from src_models.big_image import example_window, propagate_image, write_image
    from src_models.inputs import user_dtype

    labels = open_plane(args.labels)
    if labels is None:
        raise ValueError(
            f"--labels {args.labels}: give one (Y, X) label image (zarr, NPY or TIFF) of the "
            "image's size"
        )
    margin = (tile_options(backend) or (0, 0))[1]
    crop, painted, _ = example_window(image, labels, margin)
    bands = propagate_image(
        image,
        [(crop, painted)],
        backend,
        cache,
        unpainted=args.unpainted,
        background_id=args.background_id,
    )
    dtype = user_dtype([np.empty(0, labels.dtype)], np.iinfo(np.int64).max)
    height, width = image.shape[:2]
    written = write_image(
        bands, out, dtype, (height, width), args.confidence, overwrite=args.overwrite
    )
    last: dict[str, float] = {}
    with tqdm(
        total=height, desc=backend.name, unit="row", file=sys.stderr, disable=args.quiet
    ) as bar:
        for band in written:
            bar.update(len(band.labels))
            last = band.timings or last
    if timings is not None:
        write_json(timings, {"big_image": True, "tiles": len(grid), "timings": last})
    print(
        f"wrote {out}: ran as a big image ({height} x {width}) in {len(grid)} tiles of "
        f"{grid.tile} px, example = the painted window {crop.shape[0]} x {crop.shape[1]}",
        file=sys.stderr,
    )
    return 0
