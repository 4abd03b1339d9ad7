"""A scipy stand-in for ``fastfilters`` (benchmark helper only, not project code).

napari-convpaint's ``ilastik`` extractor calls ``ilastik.napari.filters`` (pip:
``ilastik-napari``), which calls the five functions below from ``fastfilters``. fastfilters is
only published on conda (ilastik-forge); no pip wheel exists. ``scripts/bench_convpaint.py``
uses the real one when convpaint's scratch venv imports it (docs/benchmarks.md says how it was
built from source) and otherwise puts this folder first on that venv's ``PYTHONPATH``.

Same maths as fastfilters 0.3 (checked against a build of it: max relative difference ~1e-6
for every function at σ 0.3–10): its kernels (fir_kernel.c, after vigra) sampled up to
``ceil((3 + order/2)·σ)``, the second derivative's mean removed, and derivative kernels scaled
so that they return the exact derivative of a polynomial of their order (at small σ this
differs much from scipy's ``gaussian_filter(order=…)``); mirrored borders; eigenvalues in
descending order; float32 out. Its Python binding passes the structure tensor's scales to the C
function swapped, so ``structureTensorEigenvalues(x, innerScale, outerScale)`` differentiates
at ``outerScale`` and smooths the products at ``innerScale``; this module does the same.
Speed differs: scipy's plain loops against fastfilters' AVX/FMA kernels (about 3× slower on
the filter part, measured on a 214 × 120 image).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi


@lru_cache
def _kernel(order: int, sigma: float) -> np.ndarray:
    """fastfilters' 1-D Gaussian (derivative) kernel, reversed for ``correlate1d``."""
    n = math.ceil((3.0 + 0.5 * order) * sigma)
    x = np.arange(-n, n + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    k = [g, x * g, (1 - (x / sigma) ** 2) * g][order]
    if order == 2:
        k = k - k.mean()
    k = k / (k.sum() if order == 0 else np.sum(k * (-x) ** order) / math.factorial(order))
    return k[::-1].copy()


def _g(x: np.ndarray, sigma: float, order: tuple[int, int]) -> np.ndarray:
    out = np.asarray(x, np.float32)
    for axis, o in enumerate(order):
        out = ndi.correlate1d(out, _kernel(o, float(sigma)), axis=axis, mode="mirror")
    return out


def _eig(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    mean = (a + c) / 2
    root = np.sqrt(((a - c) / 2) ** 2 + b**2)
    return np.stack([mean + root, mean - root], axis=-1).astype(np.float32)


def gaussianSmoothing(array, sigma, window_size=0.0):  # noqa: N802 (fastfilters' names)
    return _g(array, sigma, (0, 0)).astype(np.float32)


def gaussianGradientMagnitude(array, sigma, window_size=0.0):  # noqa: N802
    return np.hypot(_g(array, sigma, (1, 0)), _g(array, sigma, (0, 1))).astype(np.float32)


def laplacianOfGaussian(array, scale, window_size=0.0):  # noqa: N802
    return (_g(array, scale, (2, 0)) + _g(array, scale, (0, 2))).astype(np.float32)


def hessianOfGaussianEigenvalues(array, scale, window_size=0.0):  # noqa: N802
    return _eig(_g(array, scale, (2, 0)), _g(array, scale, (1, 1)), _g(array, scale, (0, 2)))


def structureTensorEigenvalues(array, innerScale, outerScale, window_size=0.0):  # noqa: N802
    gy, gx = _g(array, outerScale, (1, 0)), _g(array, outerScale, (0, 1))
    return _eig(*(_g(p, innerScale, (0, 0)) for p in (gy * gy, gy * gx, gx * gx)))
