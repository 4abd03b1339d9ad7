"""Weight-free pixel features for `classic`: an ilastik-style filter bank.

Per channel and scale σ: Gaussian smoothing, Laplacian of Gaussian, gradient magnitude,
difference of Gaussians, and the two eigenvalues of the structure tensor and of the Hessian
(ilastik's pixel-classification set, computed with separable ``scipy.ndimage`` filters). Scales
above ``_COARSE`` are computed on a 2×/4× downsampled image and upsampled bilinearly: the
result is smooth at those scales, so little is lost and the cost of the large kernels drops.
RGB images are converted to CIE Lab first (distances there follow perceived colour).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

# at σ ≥ 2·factor, a ``factor``× downsampled image still has ≥ 2 px per σ
_COARSE = ((8.0, 4), (3.0, 2))
FILTERS = ("gauss", "log", "gradient", "dog", "structure", "hessian")
# features per scale and channel with every filter (the two eigenvalue filters give 2 each)
FEATURES_PER_SCALE = 8


def ilastik_scales(sigma_min: float, sigma_max: float) -> list[float]:
    """ilastik's scale ladder (0.3, 0.7, 1, 1.6, 3.5, 5, 10) restricted to [min, max]."""
    ladder = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0, 20.0)
    return [s for s in ladder if sigma_min <= s <= sigma_max]


def to_lab(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in about [0, 1] → (H, W, 3) float32 Lab scaled to about [0, 1]."""
    from skimage.color import rgb2lab

    lab = rgb2lab(np.clip(image, 0.0, 1.0))
    return ((lab + (0.0, 128.0, 128.0)) / (100.0, 255.0, 255.0)).astype(np.float32)


def _eig2(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (larger, smaller) of the symmetric 2×2 matrices [[a, b], [b, c]]."""
    mean = (a + c) / 2
    root = np.sqrt(((a - c) / 2) ** 2 + b**2)
    return mean + root, mean - root


def _one_scale(
    img: np.ndarray, sigma: float, finer: np.ndarray, filters: Sequence[str]
) -> tuple[list[np.ndarray], np.ndarray]:
    """The bank of one 2D float32 channel at one scale (in the pixels of ``img``).

    Derivatives are central differences of the smoothed image (one Gaussian per scale
    instead of one per derivative); ``finer`` is the image smoothed at the previous,
    smaller scale, the partner of the difference of Gaussians and the inner scale of the
    structure tensor. Returns the features and this scale's smoothed image.
    """
    out: list[np.ndarray] = []
    smooth = ndi.gaussian_filter(img, sigma)
    dy, dx = np.gradient(smooth)
    if "gauss" in filters:
        out.append(smooth)
    if {"log", "hessian"} & set(filters):
        hyy, hxy = np.gradient(dy)
        hxx = np.gradient(dx, axis=1)
        if "log" in filters:
            out.append((hyy + hxx) * sigma**2)
        if "hessian" in filters:
            out.extend(e * sigma**2 for e in _eig2(hyy, hxy, hxx))
    if "gradient" in filters:
        out.append(np.hypot(dy, dx) * sigma)
    if "dog" in filters:
        out.append(smooth - finer)
    if "structure" in filters:
        gy, gx = np.gradient(finer)
        tensor = (ndi.gaussian_filter(p, sigma) for p in (gy * gy, gy * gx, gx * gx))
        out.extend(e * sigma for e in _eig2(*tensor))
    return out, smooth


def _downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Block mean of ``factor``² pixels (the edge rows/columns that do not fill a block
    are padded by reflection)."""
    h, w = img.shape
    ph, pw = -h % factor, -w % factor
    padded = np.pad(img, ((0, ph), (0, pw)), mode="reflect") if ph or pw else img
    return padded.reshape(padded.shape[0] // factor, factor, -1, factor).mean((1, 3))


def _upsample(feats: list[np.ndarray], factor: int, shape: tuple[int, int]) -> list[np.ndarray]:
    out = []
    for f in feats:
        # block centres of the coarse grid sit at (k + 0.5)·factor − 0.5 fine pixels
        big = ndi.zoom(f, factor, order=1, mode="nearest", grid_mode=True)
        out.append(big[: shape[0], : shape[1]])
    return out


def filter_bank(
    image: np.ndarray, scales: Sequence[float], filters: Sequence[str] = FILTERS
) -> np.ndarray:
    """ilastik-style features of every channel at every scale.

    Args:
        image: (H, W, C) float32, any C.
        scales: Gaussian σ in pixels.
        filters: a subset of :data:`FILTERS`.

    Returns:
        (H, W, F) float16, F = C · Σ_σ (features per scale), in a fixed order (deterministic).
    """
    shape = image.shape[:2]
    feats: list[np.ndarray] = []
    for ch in range(image.shape[-1]):
        img = np.ascontiguousarray(image[..., ch], dtype=np.float32)
        coarse: dict[int, np.ndarray] = {1: img}
        finer = {1: img}  # per grid: the image smoothed at the previous scale
        for sigma in scales:
            f = next((f for limit, f in _COARSE if sigma >= limit and min(shape) >= 16 * f), 1)
            if f not in coarse:
                coarse[f] = _downsample(img, f)
                finer[f] = _downsample(finer[1], f)
            bank, smooth = _one_scale(coarse[f], sigma / f, finer[f], filters)
            finer[f] = smooth
            feats.extend(bank if f == 1 else _upsample(bank, f, shape))
    return np.stack(feats, axis=-1).astype(np.float16)
