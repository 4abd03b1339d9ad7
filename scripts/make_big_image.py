"""Inputs for the big image CLI measurement (docs/scale.md): one S² uint8 NPY image (a 512²
synthetic texture repeated, cropped to S) and same-size labels painted only on its top-left
512² corner (S ≥ 512).

Usage: python scripts/make_big_image.py S OUTDIR, then
  /usr/bin/time -v napari-incontext propagate OUTDIR/img{S}.npy --labels OUTDIR/lab{S}.npy
      --out OUTDIR/out{S}.zarr --quiet --option tile_size=1024 --feature-cache-gb 0
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from src_models.sample_data import synthetic_stack

BASE = 512


def main(side: int, folder: Path) -> None:
    image, truth = synthetic_stack(n_slices=1, size=BASE)
    reps = -(-side // BASE)
    big = np.tile(image[0], (reps, reps))[:side, :side]
    big = (big.astype(np.float64) * 255 / big.max()).astype(np.uint8)
    labels = np.zeros(big.shape, np.uint8)
    labels[:BASE, :BASE] = truth[0]
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"img{side}.npy", big)
    np.save(folder / f"lab{side}.npy", labels)
    print(f"{big.shape} uint8, {big.nbytes / 1e6:.0f} MB in {folder}")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
