"""Generated sample data: works offline, needs no download."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def _texture(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    noise = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return noise / (noise.std() + 1e-8)


def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def synthetic_stack(
    n_slices: int = 12, size: int = 96, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A 16-bit stack with two textured objects that drift and change size along Z.

    Object 1 is a bright, finely textured ellipse; object 2 a darker, coarse blob; the
    background has its own texture. Good enough to show the classic backend at work.

    Returns:
        image (N, size, size) uint16 and ground-truth labels (N, size, size) int32 in {0, 1, 2}.
    """
    rng = np.random.default_rng(seed)
    shape = (size, size)
    image = np.zeros((n_slices, size, size), np.float64)
    labels = np.zeros((n_slices, size, size), np.int32)
    for z in range(n_slices):
        t = z / max(n_slices - 1, 1)
        one = _ellipse(
            shape,
            size * (0.35 + 0.1 * t),
            size * (0.3 + 0.15 * t),
            size * (0.16 + 0.05 * np.sin(3 * t)),
            size * 0.2,
        )
        two = (
            _ellipse(
                shape,
                size * (0.72 - 0.05 * t),
                size * (0.7 - 0.1 * t),
                size * 0.12,
                size * (0.1 + 0.04 * t),
            )
            & ~one
        )
        background = 2000 + 300 * _texture(rng, shape, 4.0)
        image[z] = np.where(one, 9000 + 900 * _texture(rng, shape, 1.0), background)
        image[z] = np.where(two, 5200 + 700 * _texture(rng, shape, 3.0), image[z])
        image[z] += 150 * rng.standard_normal(shape)
        labels[z][one] = 1
        labels[z][two] = 2
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def example_labels(truth: np.ndarray, index: int | None = None) -> np.ndarray:
    """Keep only one slice of a ground-truth stack (the middle one by default) as the example."""
    index = len(truth) // 2 if index is None else index
    labels = np.zeros_like(truth)
    labels[index] = truth[index]
    return labels
