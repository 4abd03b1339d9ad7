"""Validate and normalise image stacks / image sets and their example labels.

Images keep their native bit depth until here: uint8 is divided by 255, every other dtype
is scaled with robust percentiles computed over the whole stack or set, so a 16-bit stack
never goes through an 8-bit round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ImageInput = np.ndarray | Sequence[np.ndarray]
LabelInput = np.ndarray | Sequence[np.ndarray | None]

_PERCENTILES = (0.5, 99.5)
_MAX_SAMPLE = 2_000_000


@dataclass(frozen=True)
class Prepared:
    """A validated image set.

    Attributes:
        images: N arrays (H_i, W_i, C) float32, about [0, 1]; C is 1 or 3.
        labels: N arrays (H_i, W_i) int32 (all zero where a slice has no example).
        examples: indices of the slices holding at least one nonzero label, ascending.
    """

    images: list[np.ndarray]
    labels: list[np.ndarray]
    examples: list[int]


def split_images(images: ImageInput) -> list[np.ndarray]:
    """Split a (N, Y, X[, C]) stack or a list of 2D images into (H, W, C) slices."""
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            return [s[..., None] for s in images]
        if images.ndim == 4 and images.shape[-1] <= 4:
            return list(images)
        raise ValueError(
            f"unsupported image shape {images.shape}: give a stack (N, Y, X), a colour stack "
            "(N, Y, X, C) with C <= 4, or a list of 2D images"
        )
    slices = []
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[-1] > 4:
            raise ValueError(
                f"image {i} has unsupported shape {image.shape}: each image of a set must be "
                "(Y, X) or (Y, X, C) with C <= 4"
            )
        slices.append(image)
    if not slices:
        raise ValueError("no images given")
    return slices


def _to_rgb_or_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, C) with C in 1..4 → C in {1, 3}: drop alpha, pad 2 channels with a zero one."""
    if image.shape[-1] == 4:
        return image[..., :3]
    if image.shape[-1] == 2:
        return np.concatenate([image, np.zeros_like(image[..., :1])], axis=-1)
    return image


def _check_finite(slices: Sequence[np.ndarray]) -> None:
    for i, s in enumerate(slices):
        if np.issubdtype(s.dtype, np.floating) and not np.isfinite(s).all():
            raise ValueError(
                f"slice {i} contains NaN or inf pixels: replace them (e.g. np.nan_to_num) first"
            )


def _scale(slices: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Scale intensities to about [0, 1]: /255 for uint8, robust percentiles otherwise."""
    if all(s.dtype == np.uint8 for s in slices):
        return [s.astype(np.float32) / 255.0 for s in slices]
    channels = slices[0].shape[-1]
    flat = np.concatenate([s.reshape(-1, channels) for s in slices])
    if len(flat) > _MAX_SAMPLE:
        flat = flat[:: len(flat) // _MAX_SAMPLE + 1]
    lo, hi = np.percentile(flat.astype(np.float64), _PERCENTILES, axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return [
        np.clip((s.astype(np.float64) - lo) / span, -0.5, 1.5).astype(np.float32) for s in slices
    ]


def _split_labels(labels: LabelInput, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    n = len(shapes)
    if isinstance(labels, np.ndarray):
        if labels.ndim != 3 or len(labels) != n:
            raise ValueError(
                f"labels of shape {labels.shape} do not match {n} images: give a label stack "
                "(N, Y, X) with one slice per image"
            )
        labels = list(labels)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} label images for {n} images: give one per image")
    out = []
    for i, (lab, shape) in enumerate(zip(labels, shapes)):
        if lab is None:
            out.append(np.zeros(shape[:2], np.int32))
            continue
        lab = np.asarray(lab)
        if lab.shape != shape[:2]:
            raise ValueError(
                f"labels of slice {i} have shape {lab.shape} but the image is {shape[:2]}"
            )
        if not np.issubdtype(lab.dtype, np.integer) and not np.issubdtype(lab.dtype, np.bool_):
            if not np.all(np.mod(lab, 1) == 0):
                raise ValueError(f"labels of slice {i} are not integers")
        if lab.min() < 0:
            raise ValueError(f"labels of slice {i} are negative: ids must be >= 0")
        out.append(lab.astype(np.int32))
    return out


def check_example(labels: np.ndarray, index: int) -> None:
    """Refuse an example slice whose single label covers every pixel (it has no negatives)."""
    ids = np.unique(labels)
    if len(ids) == 1 and ids[0] != 0:
        raise ValueError(
            f"the example on slice {index} covers the whole slice with label {ids[0]}: leave "
            "some background (0) so the backend sees what is not the object"
        )


def prepare(images: ImageInput, labels: LabelInput, require_example: bool = True) -> Prepared:
    """Validate images and labels and normalise the images.

    Args:
        images: (N, Y, X) or (N, Y, X, C) array of any integer or float dtype, or a list of
            (Y, X) / (Y, X, C) arrays of possibly different sizes.
        labels: (N, Y, X) integer array, or a list with one (Y, X) array (or None) per image.
        require_example: refuse input without any labelled slice (turn off when the examples
            come from elsewhere, e.g. :class:`~src_models.types.ExtraExamples`).

    Returns:
        A :class:`Prepared` set. Raises ``ValueError`` with a fix for any bad input.
    """
    raw = split_images(images)
    _check_finite(raw)
    lab = _split_labels(labels, [s.shape for s in raw])
    if len({s.shape[-1] for s in raw}) > 1:
        raise ValueError("the images have different numbers of channels: convert them first")
    examples = [i for i, lb in enumerate(lab) if lb.any()]
    if not examples and require_example:
        raise ValueError(
            "no example: paint at least one object (a nonzero label) on one slice or image"
        )
    for i in examples:
        check_example(lab[i], i)
    scaled = [_to_rgb_or_gray(s) for s in _scale(raw)]
    return Prepared(images=scaled, labels=lab, examples=examples)
