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
    """The bank of (C, h, w) float32 channels at one scale (in the pixels of ``img``); every
    channel at once (one numpy call per operation instead of one per channel).

    Derivatives are central differences of the smoothed image (one Gaussian per scale
    instead of one per derivative); ``finer`` is the image smoothed at the previous,
    smaller scale, the partner of the difference of Gaussians and the inner scale of the
    structure tensor. Returns the features and this scale's smoothed image.
    """
    out: list[np.ndarray] = []
    smooth = ndi.gaussian_filter(img, sigma, axes=(1, 2))
    dy, dx = np.gradient(smooth, axis=(1, 2))
    if "gauss" in filters:
        out.append(smooth)
    if {"log", "hessian"} & set(filters):
        hyy, hxy = np.gradient(dy, axis=(1, 2))
        hxx = np.gradient(dx, axis=2)
        if "log" in filters:
            out.append((hyy + hxx) * sigma**2)
        if "hessian" in filters:
            out.extend(e * sigma**2 for e in _eig2(hyy, hxy, hxx))
    if "gradient" in filters:
        out.append(np.hypot(dy, dx) * sigma)
    if "dog" in filters:
        out.append(smooth - finer)
    if "structure" in filters:
        gy, gx = np.gradient(finer, axis=(1, 2))
        tensor = (ndi.gaussian_filter(p, sigma, axes=(1, 2)) for p in (gy * gy, gy * gx, gx * gx))
        out.extend(e * sigma for e in _eig2(*tensor))
    return out, smooth


def _downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """(C, h, w) → block mean of ``factor``² pixels (the edge rows/columns that do not fill a
    block are padded by reflection)."""
    _, h, w = img.shape
    ph, pw = -h % factor, -w % factor
    padded = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode="reflect") if ph or pw else img
    c, hp, wp = padded.shape
    return padded.reshape(c, hp // factor, factor, wp // factor, factor).mean((2, 4))


def _linear_taps(n_in: int, n_out: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weight of linear interpolation from a ``factor``× coarser grid whose block
    centres sit at (k + 0.5)·factor − 0.5 fine pixels (clamped at the edges)."""
    x = np.clip((np.arange(n_out, dtype=np.float32) + 0.5) / factor - 0.5, 0, n_in - 1)
    lo = np.floor(x).astype(np.intp)
    return lo, np.minimum(lo + 1, n_in - 1), x - lo


def _upsample(feats: list[np.ndarray], factor: int, shape: tuple[int, int]) -> np.ndarray:
    """k (C, h, w) coarse features → (H, W, C, k), bilinear, all at once (ndi.zoom per
    feature was a third of the bank's time)."""
    # (h, w, C, k) first, so that every gather below moves contiguous runs of C·k values
    a = np.ascontiguousarray(np.stack(feats, axis=-1).transpose(1, 2, 0, 3))
    lo, hi, w = _linear_taps(a.shape[0], shape[0], factor)
    w = w[:, None, None, None]
    a = a[lo] + (a[hi] - a[lo]) * w
    lo, hi, w = _linear_taps(a.shape[1], shape[1], factor)
    w = w[:, None, None]
    return a[:, lo] + (a[:, hi] - a[:, lo]) * w


def filter_bank(
    image: np.ndarray, scales: Sequence[float], filters: Sequence[str] = FILTERS
) -> np.ndarray:
    """ilastik-style features of every channel at every scale.

    Args:
        image: (H, W, C) float32, any C.
        scales: Gaussian σ in pixels.
        filters: a subset of :data:`FILTERS`.

    Returns:
        (H, W, F) float32, F = C · Σ_σ (features per scale), in a fixed order (deterministic).
    """
    shape = image.shape[:2]
    per_scale = sum(2 if f in ("structure", "hessian") else 1 for f in filters)
    # (H, W, channel, scale, feature): the order of the per-channel bank, written in place
    out = np.empty((*shape, image.shape[-1], len(scales), per_scale), np.float32)
    img = np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32)
    coarse: dict[int, np.ndarray] = {1: img}
    finer = {1: img}  # per grid: the image smoothed at the previous scale
    for k, sigma in enumerate(scales):
        f = next((f for limit, f in _COARSE if sigma >= limit and min(shape) >= 16 * f), 1)
        if f not in coarse:
            coarse[f] = _downsample(img, f)
            finer[f] = _downsample(finer[1], f)
        bank, smooth = _one_scale(coarse[f], sigma / f, finer[f], filters)
        finer[f] = smooth
        if f == 1:
            for j, feat in enumerate(bank):
                out[..., k, j] = np.moveaxis(feat, 0, -1)
        else:
            out[..., k, :] = _upsample(bank, f, shape)
    return out.reshape(*shape, -1)
