"""Validate and normalise image stacks / image sets and their example labels.

Labels are checked on the raw data before any cast: integer-valued, finite and >= 0, of an
integer, boolean or float dtype. Backends only ever see compact ids 1..K (int32); the
user's ids, whatever their size (uint64 included), are restored on output by
:meth:`LabelIds.to_user`, so no id is ever wrapped, merged or truncated.

Images keep their native bit depth until here: uint8 is divided by 255, every other dtype
is scaled with robust percentiles computed over the whole stack or set, so a 16-bit stack
never goes through an 8-bit round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from src_models.channels import MAX_CHANNELS_LAST, move_channel_axis
from src_models.scribbles import UNKNOWN, Unpainted, check_unpainted, to_scribbles

ImageInput = np.ndarray | Sequence[np.ndarray]
LabelInput = np.ndarray | Sequence[np.ndarray | None]

_PERCENTILES = (0.5, 99.5)
_MAX_SAMPLE = 2_000_000


@dataclass(frozen=True)
class LabelIds:
    """The user's label ids behind the compact ids 1..K the backends see.

    Attributes:
        table: (K + 1,) the user's ids in ascending order, ``table[0] == 0``, in ``dtype``.
    """

    table: np.ndarray

    @property
    def dtype(self) -> np.dtype:
        return self.table.dtype

    def to_user(self, compact: np.ndarray) -> np.ndarray:
        """(H, W) compact ids 0..K → the same shape in the user's ids and dtype."""
        return self.table[np.asarray(compact)]


@dataclass(frozen=True)
class Prepared:
    """A validated image set.

    Attributes:
        images: N arrays (H_i, W_i, C) float32, about [0, 1], each channel scaled on its own;
            every channel is kept (the model backends map them to 3, :mod:`src_models.channels`).
            A list, or :class:`src_models.lazy.LazySlices` reading each slice when indexed.
        labels: N arrays (H_i, W_i) int32 compact ids 0..K (all zero where a slice has no
            example); in scribble mode (``sparse``) -1 marks unpainted pixels and 0 the
            background strokes. A list, or :class:`src_models.lazy.LazyLabels`.
        examples: indices of the slices holding at least one painted label, ascending.
        ids: the user's ids and dtype behind the compact ones.
        sparse: True in scribble mode (see :mod:`src_models.scribbles`).
    """

    images: Sequence[np.ndarray]
    labels: Sequence[np.ndarray]
    examples: list[int]
    ids: LabelIds
    sparse: bool = False


def split_images(images: ImageInput, channels_last: bool = False) -> list[np.ndarray]:
    """Split a (N, Y, X[, C]) stack or a list of 2D images into (H, W, C) slices.

    A last axis longer than :data:`~src_models.channels.MAX_CHANNELS_LAST` is refused unless
    ``channels_last`` (the caller moved a ``channel_axis`` there).
    """
    most = None if channels_last else MAX_CHANNELS_LAST
    hint = f"with C <= {MAX_CHANNELS_LAST} (more: give channel_axis / --channel-axis)"
    if isinstance(images, np.ndarray):
        if images.ndim == 3 and not channels_last:
            return [s[..., None] for s in images]
        if images.ndim == 4 and (most is None or images.shape[-1] <= most):
            return list(images)
        raise ValueError(
            f"unsupported image shape {images.shape}: give a stack (N, Y, X), a multichannel "
            f"stack (N, Y, X, C) {hint}, or a list of 2D images"
        )
    slices = []
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim == 2 and not channels_last:
            image = image[..., None]
        if image.ndim != 3 or (most is not None and image.shape[-1] > most):
            raise ValueError(
                f"image {i} has unsupported shape {image.shape}: each image of a set must be "
                f"(Y, X) or (Y, X, C) {hint}"
            )
        slices.append(image)
    if not slices:
        raise ValueError("no images given")
    return slices


def _check_pixels(slices: Sequence[np.ndarray]) -> None:
    for i, s in enumerate(slices):
        if s.dtype.kind not in "biuf":
            raise ValueError(
                f"slice {i} has pixels of type {s.dtype}: give integer or float pixel values"
            )
        if s.dtype.kind == "f" and not np.isfinite(s).all():
            raise ValueError(
                f"slice {i} contains NaN or inf pixels: replace them (e.g. np.nan_to_num) first"
            )


def intensity_range(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, span) per channel, float64, from (P, C) pixels: robust percentiles of at most
    ``_MAX_SAMPLE`` of them (strided); a flat channel gets span 1."""
    if len(flat) > _MAX_SAMPLE:
        flat = flat[:: len(flat) // _MAX_SAMPLE + 1]
    lo, hi = np.percentile(flat.astype(np.float64), _PERCENTILES, axis=0)
    return lo, np.where(hi > lo, hi - lo, 1.0)


def normalise(image: np.ndarray, lo: np.ndarray | None, span: np.ndarray | None) -> np.ndarray:
    """(H, W, C) raw → (H, W, C) float32 about [0, 1], every channel kept: /255 when ``lo`` is
    None (uint8), else (x - lo) / span per channel, clipped to [-0.5, 1.5]."""
    if lo is None or span is None:
        return image.astype(np.float32) / 255.0
    return np.clip((image.astype(np.float64) - lo) / span, -0.5, 1.5).astype(np.float32)


def _scale(slices: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Scale intensities to about [0, 1]: /255 for uint8, robust percentiles otherwise."""
    if all(s.dtype == np.uint8 for s in slices):
        return [normalise(s, None, None) for s in slices]
    channels = slices[0].shape[-1]
    lo, span = intensity_range(np.concatenate([s.reshape(-1, channels) for s in slices]))
    return [normalise(s, lo, span) for s in slices]


def check_label_values(lab: np.ndarray, what: str) -> None:
    """Refuse labels that are not finite, integer-valued ids >= 0 (checked before any cast)."""
    kind = lab.dtype.kind
    if kind not in "biuf":
        raise ValueError(f"{what} have type {lab.dtype}: give integer label ids (0 = none)")
    if kind == "f":
        if not np.isfinite(lab).all():
            raise ValueError(f"{what} contain NaN or inf: label ids must be whole numbers")
        if not np.array_equal(lab, np.floor(lab)):
            raise ValueError(f"{what} are not whole numbers: label ids must be integers")
        if lab.size and lab.max() >= 2.0**64:
            raise ValueError(f"{what} hold ids of 2**64 or more: no integer type holds them")
    if kind in "if" and lab.size and lab.min() < 0:
        raise ValueError(f"{what} are negative: ids must be >= 0")


def user_dtype(arrays: list[np.ndarray], top: int) -> np.dtype:
    """The dtype results are returned in: the input's integer type (a common one for a list),
    uint8 for booleans, the smallest of int32/uint64 holding every id for floats."""
    kinds = {a.dtype.kind for a in arrays}
    if kinds <= {"i", "u"}:
        dtype = np.result_type(*arrays)
        return np.dtype(np.uint64) if dtype.kind == "f" else dtype  # int64 + uint64 mixes
    if kinds == {"b"}:
        return np.dtype(np.uint8)
    return np.dtype(np.int32 if top <= np.iinfo(np.int32).max else np.uint64)


def compact_ids(raw: list[np.ndarray]) -> tuple[list[np.ndarray], LabelIds]:
    """Map the user's ids to 1..K int32 (0 stays 0) and remember the way back."""
    given = [lab for lab in raw if lab.any()]
    found = {int(v) for lab in given for v in np.unique(lab)}  # Python ints: no dtype mixing
    ids = sorted(found - {0})
    dtype = user_dtype(given or raw, max(ids, default=0))
    table = np.array([0, *ids], dtype=dtype)
    search = np.array([0, *ids], dtype=np.uint64)
    compact = [
        np.searchsorted(search, lab.astype(np.uint64, copy=False)).astype(np.int32) for lab in raw
    ]
    return compact, LabelIds(table)


def remap_ids(lab: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(H, W) compact ids through ``lut``; :data:`~src_models.scribbles.UNKNOWN` stays."""
    return np.where(lab == UNKNOWN, UNKNOWN, lut[np.maximum(lab, 0)])


def joint_ids(first: Prepared, second: Prepared) -> tuple[Prepared, Prepared]:
    """Both sets with compact ids over the union of their user ids (examples of another
    stack next to this one's); the way back keeps ``first``'s dtype when the ids fit it."""
    ids = sorted({int(v) for v in first.ids.table} | {int(v) for v in second.ids.table})
    dtype = first.ids.dtype
    if np.issubdtype(dtype, np.integer) and ids[-1] > np.iinfo(dtype).max:
        dtype = second.ids.dtype
    search = np.array(ids, dtype=np.uint64)

    def remap(data: Prepared) -> Prepared:
        lut = np.searchsorted(search, data.ids.table.astype(np.uint64)).astype(np.int32)
        lazy = getattr(data.labels, "remap", None)  # lazy labels stay lazy
        labels = lazy(lut) if lazy is not None else [remap_ids(lab, lut) for lab in data.labels]
        return replace(data, labels=labels, ids=LabelIds(np.array(ids, dtype=dtype)))

    return remap(first), remap(second)


def _split_labels(labels: LabelInput, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    """One (H, W) raw label array per image (zeros of uint8 where none is given), checked."""
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
    for i, (lab, shape) in enumerate(zip(labels, shapes, strict=True)):
        if lab is None:
            out.append(np.zeros(shape[:2], np.uint8))
            continue
        lab = np.asarray(lab)
        if lab.shape != shape[:2]:
            raise ValueError(
                f"labels of slice {i} have shape {lab.shape} but the image is {shape[:2]}"
            )
        check_label_values(lab, f"labels of slice {i}")
        out.append(lab)
    return out


def check_example(labels: np.ndarray, index: int, ids: LabelIds | None = None) -> None:
    """Refuse an example slice whose single label covers every pixel (it has no negatives)."""
    found = np.unique(labels)
    if len(found) == 1 and found[0] != 0:
        shown = ids.table[found[0]] if ids is not None else found[0]
        raise ValueError(
            f"the example on slice {index} covers the whole slice with label {shown}: leave "
            "some background (0) so the backend sees what is not the object"
        )


def prepare(
    images: ImageInput,
    labels: LabelInput,
    require_example: bool = True,
    unpainted: Unpainted = "background",
    background_id: int = 1,
    channel_axis: int | None = None,
) -> Prepared:
    """Validate images and labels and normalise the images.

    Args:
        images: (N, Y, X) or (N, Y, X, C) array of any integer or float dtype, or a list of
            (Y, X) / (Y, X, C) arrays of possibly different sizes.
        labels: (N, Y, X) array of ids, or a list with one (Y, X) array (or None) per
            image; integer, boolean, or float holding whole numbers; ids >= 0, any size.
        require_example: refuse input without any labelled slice (turn off when the examples
            come from elsewhere, e.g. :class:`~src_models.types.ExtraExamples`).
        unpainted: "background" (dense masks: 0 is the background class) or "unlabelled"
            (strokes: ``background_id`` is the background class, 0 is unknown).
        background_id: the background label in "unlabelled" mode.
        channel_axis: the axis of the channels (of the stack, or of each image of a list);
            None = channel-last when there is a channel axis.

    Returns:
        A :class:`Prepared` set. Raises ``ValueError`` with a fix for any bad input.
    """
    check_unpainted(unpainted, background_id)
    raw = split_images(move_channel_axis(images, channel_axis), channel_axis is not None)
    _check_pixels(raw)
    lab, ids = compact_ids(_split_labels(labels, [s.shape for s in raw]))
    if len({s.shape[-1] for s in raw}) > 1:
        raise ValueError("the images have different numbers of channels: convert them first")
    examples = [i for i, lb in enumerate(lab) if lb.any()]
    if not examples and require_example:
        raise ValueError(
            "no example: paint at least one object (a nonzero label) on one slice or image"
        )
    sparse = unpainted == "unlabelled"
    if sparse and examples:
        lab, table = to_scribbles(lab, ids.table, background_id)
        ids = LabelIds(table)
    for i in examples if not sparse else ():
        check_example(lab[i], i, ids)
    return Prepared(images=_scale(raw), labels=lab, examples=examples, ids=ids, sparse=sparse)
