"""A scipy stand-in for ``fastfilters`` (benchmark helper only, not project code).

napari-convpaint's ``ilastik`` extractor calls ``ilastik.napari.filters`` (pip:
``ilastik-napari``), which calls the five functions below from ``fastfilters``. fastfilters is
only published on conda (ilastik-forge); no pip wheel exists, so ``scripts/bench_convpaint.py``
puts this folder first on ``PYTHONPATH`` of convpaint's scratch venv.

Same maths as fastfilters: separable Gaussian (derivative) kernels truncated at
``(3 + order/2)·σ`` (its fir_kernel.c), eigenvalues sorted in descending order, float32 out.
Differences: scipy.ndimage convolves with plain loops where fastfilters uses SIMD (AVX/FMA)
FIR kernels, so real fastfilters is likely 2–4× faster on the filter part; border handling is
reflection in both. Accuracy should match to float32 rounding; speed figures of convpaint
measured with this stand-in are therefore an upper bound on its feature time.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def _g(x: np.ndarray, sigma: float, order: tuple[int, int]) -> np.ndarray:
    truncate = 3.0 + 0.5 * max(order)
    return ndi.gaussian_filter(
        np.asarray(x, np.float32), sigma, order=order, truncate=truncate, mode="mirror"
    )


def _eig(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    mean = (a + c) / 2
    root = np.sqrt(((a - c) / 2) ** 2 + b**2)
    return np.stack([mean + root, mean - root], axis=-1).astype(np.float32)


def gaussianSmoothing(array, sigma, window_size=0.0):  # noqa: N802 (fastfilters' names)
    return _g(array, sigma, (0, 0))


def gaussianGradientMagnitude(array, sigma, window_size=0.0):  # noqa: N802
    return np.hypot(_g(array, sigma, (1, 0)), _g(array, sigma, (0, 1))).astype(np.float32)


def laplacianOfGaussian(array, scale, window_size=0.0):  # noqa: N802
    return (_g(array, scale, (2, 0)) + _g(array, scale, (0, 2))).astype(np.float32)


def hessianOfGaussianEigenvalues(array, scale, window_size=0.0):  # noqa: N802
    return _eig(_g(array, scale, (2, 0)), _g(array, scale, (1, 1)), _g(array, scale, (0, 2)))


def structureTensorEigenvalues(array, innerScale, outerScale, window_size=0.0):  # noqa: N802
    gy, gx = _g(array, innerScale, (1, 0)), _g(array, innerScale, (0, 1))
    return _eig(*(_g(p, outerScale, (0, 0)) for p in (gy * gy, gy * gx, gx * gx)))
