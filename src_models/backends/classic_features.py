"""Weight-free pixel features for `classic`: an ilastik-style filter bank.

Per channel and scale σ: Gaussian smoothing, Laplacian of Gaussian, gradient magnitude,
difference of Gaussians, and the two eigenvalues of the structure tensor and of the Hessian
(ilastik's pixel-classification set). The separable filters and resampling are OpenCV's
(SIMD: the bank takes 2.4× less time than with ``scipy.ndimage``; same kernels, reflecting
border). Scales above ``_COARSE`` are computed on a 2×/4× downsampled image and upsampled
bilinearly: the result is smooth at those scales, so little is lost and the cost of the large
kernels drops. RGB images are converted to CIE Lab first (distances there follow perceived
colour); the two colour channels get fewer filters (:data:`CHROMA_FILTERS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

# part of classic's feature key: a new version never reuses features cached by an older one
BANK_VERSION = 2
# at σ ≥ 2·factor, a ``factor``× downsampled image still has ≥ 2 px per σ
_COARSE = ((8.0, 4), (3.0, 2))
LADDER = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0, 20.0)  # ilastik's scales (σ, pixels), and 20
FILTERS = ("gauss", "log", "gradient", "dog", "structure", "hessian")
# the filters of Lab's two colour channels: colour, its edges and its change across scales;
# fine colour texture is mostly noise (cameras and JPEG keep a fraction of the lightness's
# colour resolution), and the full bank on them cost 0.02 mean IoU on DAVIS and 1.5× the time
CHROMA_FILTERS = ("gauss", "gradient", "dog")
_CV_CHANNELS = 128  # the most channels OpenCV's Python binding takes in one array
_BORDER = cv2.BORDER_REFLECT  # scipy.ndimage's default "reflect" (abc|cba)
_DIFF = np.array([-0.5, 0.0, 0.5], np.float32)  # central difference (np.gradient inside)
_ONE = np.ones(1, np.float32)


def ilastik_scales(sigma_min: float, sigma_max: float, strict: bool = True) -> list[float]:
    """The scales of :data:`LADDER` in [min, max] (``strict``: a ValueError when there is
    none; else maybe an empty list, for estimates)."""
    scales = [s for s in LADDER if sigma_min <= s <= sigma_max]
    if strict and not scales:
        raise ValueError(
            f"no scale of the filter bank ({', '.join(map(str, LADDER))}) lies between "
            f"sigma_min={sigma_min} and sigma_max={sigma_max}: widen the range"
        )
    return scales


def _per_scale(filters: Sequence[str]) -> int:
    """Features per scale and channel (the two eigenvalue filters give 2 each)."""
    return sum(2 if f in ("structure", "hessian") else 1 for f in filters)


def feature_count(n_scales: int, channels: int) -> int:
    """Features per pixel of :func:`image_bank` for an image with ``channels`` channels."""
    if channels == 3:
        return n_scales * (_per_scale(FILTERS) + 2 * _per_scale(CHROMA_FILTERS))
    return n_scales * _per_scale(FILTERS) * channels


def image_bank(image: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """The bank of any image: RGB (3 channels) in Lab, the full bank of the lightness and
    :data:`CHROMA_FILTERS` of a and b; other channel counts the full bank of each channel.

    Args:
        image: (H, W, C) float32, RGB in about [0, 1].

    Returns:
        (H, W, :func:`feature_count`) float32.
    """
    if image.shape[-1] != 3:
        return filter_bank(image, scales)
    lab = to_lab(image)
    planes = bank_planes(lab[..., :1], scales) + bank_planes(lab[..., 1:], scales, CHROMA_FILTERS)
    return merge(planes)


def to_lab(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in about [0, 1] → (H, W, 3) float32 Lab scaled to about [0, 1]."""
    rgb = np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float32)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)  # sRGB, D65: L in [0, 100], a and b ±127
    offset, scale = np.array([[0.0, 128.0, 128.0], [100.0, 255.0, 255.0]], np.float32)
    return (lab + offset) / scale


def _cv(op: Callable[[np.ndarray], np.ndarray], img: np.ndarray) -> np.ndarray:
    """An OpenCV filter applied to (h, w, C) float32 → (h', w', C) float32, any C (OpenCV
    takes at most :data:`_CV_CHANNELS` at once and drops a single channel's axis)."""
    parts = [
        op(np.ascontiguousarray(img[..., i : i + _CV_CHANNELS]))
        for i in range(0, img.shape[-1], _CV_CHANNELS)
    ]
    parts = [p.reshape(*p.shape[:2], -1) for p in parts]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


def gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    """(h, w, C) float32 smoothed at ``sigma`` pixels (kernel radius 4σ, reflecting border)."""
    return _cv(lambda a: cv2.GaussianBlur(a, (0, 0), sigma, sigmaY=sigma, borderType=_BORDER), img)


def _blur(plane: np.ndarray, sigma: float) -> np.ndarray:
    """(h, w) float32 smoothed at ``sigma`` pixels (kernel radius 4σ, reflecting border)."""
    return cv2.GaussianBlur(plane, (0, 0), sigma, sigmaY=sigma, borderType=_BORDER)


def _diff(plane: np.ndarray, axis: int) -> np.ndarray:
    """(h, w) → its central differences along ``axis`` (0: y, 1: x)."""
    kx, ky = (_ONE, _DIFF) if axis == 0 else (_DIFF, _ONE)
    return cv2.sepFilter2D(plane, -1, kx, ky, borderType=_BORDER)


def _gradient(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) → its central differences along y and x."""
    return _diff(plane, 0), _diff(plane, 1)


def _eig2(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (larger, smaller) of the symmetric 2×2 matrices [[a, b], [b, c]]."""
    mean = (a + c) / 2
    root = np.sqrt(((a - c) / 2) ** 2 + b**2)
    return mean + root, mean - root


def _one_scale(
    img: np.ndarray, sigma: float, finer: np.ndarray, filters: Sequence[str]
) -> tuple[list[np.ndarray], np.ndarray]:
    """The bank of (h, w) float32 features of one channel at one scale (in the pixels of
    ``img``).

    Derivatives are central differences of the smoothed image (one Gaussian per scale
    instead of one per derivative); ``finer`` is the image smoothed at the previous,
    smaller scale, the partner of the difference of Gaussians and the inner scale of the
    structure tensor. Returns the features and this scale's smoothed image.
    """
    out: list[np.ndarray] = []
    smooth = _blur(img, sigma)
    dy, dx = _gradient(smooth)
    if "gauss" in filters:
        out.append(smooth)
    if {"log", "hessian"} & set(filters):
        hyy, hxy = _gradient(dy)
        hxx = _diff(dx, 1)
        if "log" in filters:
            out.append((hyy + hxx) * sigma**2)
        if "hessian" in filters:
            out.extend(e * sigma**2 for e in _eig2(hyy, hxy, hxx))
    if "gradient" in filters:
        out.append(np.hypot(dy, dx) * sigma)
    if "dog" in filters:
        out.append(smooth - finer)
    if "structure" in filters:
        gy, gx = _gradient(finer)
        tensor = (_blur(p, sigma) for p in (gy * gy, gy * gx, gx * gx))
        out.extend(e * sigma for e in _eig2(*tensor))
    return out, smooth


def _downsample(plane: np.ndarray, factor: int) -> np.ndarray:
    """(h, w) → block mean of ``factor``² pixels (edge rows/columns that do not fill a
    block are padded by reflection)."""
    ph, pw = -plane.shape[0] % factor, -plane.shape[1] % factor
    padded = np.pad(plane, ((0, ph), (0, pw)), mode="reflect") if ph or pw else plane
    size = (padded.shape[1] // factor, padded.shape[0] // factor)
    return cv2.resize(padded, size, interpolation=cv2.INTER_AREA)


def _upsample(plane: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) coarse → (H, W), bilinear: block centres sit at (i + 0.5)·factor − 0.5 fine
    pixels, values beyond the outer centres are held."""
    size = (plane.shape[1] * factor, plane.shape[0] * factor)  # the padded grid, cropped
    return cv2.resize(plane, size, interpolation=cv2.INTER_LINEAR)[: shape[0], : shape[1]]


def merge(planes: Sequence[np.ndarray]) -> np.ndarray:
    """F (H, W) float32 planes → (H, W, F) float32, interleaved by OpenCV in one pass (numpy's
    strided writes into a pixel-major array cost a third of the bank)."""
    parts = [cv2.merge(planes[i : i + _CV_CHANNELS]) for i in range(0, len(planes), _CV_CHANNELS)]
    parts = [p.reshape(*p.shape[:2], -1) for p in parts]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


def upsample_grid(coarse: np.ndarray, step: int, shape: tuple[int, int]) -> np.ndarray:
    """(h, w, C) values at the pixels (step·i, step·j) of an (H, W) grid → (H, W, C) float32,
    bilinear in between and held beyond the last ones."""
    # output pixel → input pixel
    inverse = np.array([[1 / step, 0, 0], [0, 1 / step, 0]], np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    size = (shape[1], shape[0])
    return _cv(
        lambda a: cv2.warpAffine(a, inverse, size, flags=flags, borderMode=cv2.BORDER_REPLICATE),
        np.asarray(coarse, np.float32),
    )


def filter_bank(
    image: np.ndarray, scales: Sequence[float], filters: Sequence[str] = FILTERS
) -> np.ndarray:
    """ilastik-style features of every channel at every scale.

    Args:
        image: (H, W, C) float32, any C.
        scales: Gaussian σ in pixels.
        filters: a subset of :data:`FILTERS`.

    Returns:
        (H, W, F) float32, F = C · Σ_σ (features per scale), ordered by channel, then scale,
        then filter (deterministic).
    """
    return merge(bank_planes(image, scales, filters))


def bank_planes(
    image: np.ndarray, scales: Sequence[float], filters: Sequence[str] = FILTERS
) -> list[np.ndarray]:
    """The features of :func:`filter_bank` as a list of (H, W) float32 planes."""
    planes: list[np.ndarray] = []
    for c in range(image.shape[-1]):
        plane = np.ascontiguousarray(image[..., c], dtype=np.float32)
        planes += _channel_planes(plane, scales, filters)
    return planes


def _channel_planes(
    img: np.ndarray, scales: Sequence[float], filters: Sequence[str]
) -> list[np.ndarray]:
    """(H, W) float32 channel → its (H, W) feature planes, scale by scale."""
    shape = img.shape
    out: list[np.ndarray] = []
    coarse: dict[int, np.ndarray] = {1: img}
    finer = {1: img}  # per grid: the image smoothed at the previous scale
    for sigma in scales:
        f = next((f for limit, f in _COARSE if sigma >= limit and min(shape) >= 16 * f), 1)
        if f not in coarse:
            coarse[f] = _downsample(img, f)
            finer[f] = _downsample(finer[1], f)
        bank, smooth = _one_scale(coarse[f], sigma / f, finer[f], filters)
        finer[f] = smooth
        out += bank if f == 1 else [_upsample(p, f, shape) for p in bank]
    return out
