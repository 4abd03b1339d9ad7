"""Real ``fastfilters`` vs ``scripts/convpaint_standin/fastfilters.py``: same features, what speed.

Run by a python that imports the real fastfilters (convpaint's scratch venv, never the
project's):  /work/cp-venv/bin/python scripts/check_fastfilters_standin.py
Prints, per filter and scale of convpaint's ``ilastik_2d`` bank (called as
``ilastik.napari.filters`` calls them), the largest absolute difference and that relative to
the real output's largest magnitude, on a smoothed random 120 × 214 float32 image; then the CPU
seconds of the whole bank (6 filters × 7 scales, one channel) for each.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import fastfilters
import numpy as np
from scipy import ndimage as ndi

SCALES = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)


def _standin():
    path = Path(__file__).parent / "convpaint_standin" / "fastfilters.py"
    spec = importlib.util.spec_from_file_location("standin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bank(ff, image: np.ndarray, s: float) -> dict[str, np.ndarray]:
    """The filters of ilastik.napari.filters at scale ``s``, called the same way."""
    return {
        "Gaussian": ff.gaussianSmoothing(image, sigma=s),
        "LoG": ff.laplacianOfGaussian(image, scale=s),
        "GradMag": ff.gaussianGradientMagnitude(image, sigma=s),
        "DoG": ff.gaussianSmoothing(image, sigma=s) - ff.gaussianSmoothing(image, sigma=s / 2),
        "STEig": ff.structureTensorEigenvalues(image, innerScale=s / 2, outerScale=s),
        "HoGEig": ff.hessianOfGaussianEigenvalues(image, scale=s),
    }


def main() -> None:
    standin = _standin()
    rng = np.random.default_rng(0)
    image = ndi.gaussian_filter(rng.random((120, 214)) * 255, 1.0).astype(np.float32)
    print(f"real fastfilters {fastfilters.__version__} ({fastfilters.__file__})")
    worst = 0.0
    for s in SCALES:
        real, alt = bank(fastfilters, image, s), bank(standin, image, s)
        cells = []
        for name, r in real.items():
            diff = float(np.abs(r - alt[name]).max())
            rel = diff / float(np.abs(r).max())
            worst = max(worst, rel)
            cells.append(f"{name} {diff:.2g} ({rel:.1g})")
        print(f"σ {s}: max |real − stand-in| (relative): " + ", ".join(cells))
    print(f"worst relative difference: {worst:.2g}")
    for label, ff in (("real", fastfilters), ("stand-in", standin)):
        start = time.process_time()
        for _ in range(3):
            for s in SCALES:
                bank(ff, image, s)
        print(f"{label}: {(time.process_time() - start) / 3:.3f} CPU s per bank per channel")


if __name__ == "__main__":
    main()
