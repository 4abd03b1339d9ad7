"""Lazy, per-slice input: stacks larger than memory (memmaps, zarr, dask).

:func:`prepare_lazy` is :func:`src_models.inputs.prepare` for a stack that should not be
loaded whole: it reads the label stack once, one slice at a time (keeping only the example
slices), computes the intensity range from a strided sample of at most ``SAMPLE_SLICES``
slices, and returns sequences that read, check and normalise a slice only when it is indexed
(the last few are kept). Peak memory follows the slices in flight, not the stack's length.

With at most ``SAMPLE_SLICES`` slices every slice is sampled, so the result is bit-identical
to :func:`~src_models.inputs.prepare` on the same data loaded into memory; longer stacks
differ only in the percentiles' sample (a few slices spread over the stack instead of a pixel
stride over all of them).
"""

from __future__ import annotations

import mmap
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from src_models.channels import MAX_CHANNELS_LAST, check_axis
from src_models.inputs import (
    LabelIds,
    Prepared,
    check_example,
    check_label_values,
    compact_ids,
    intensity_range,
    normalise,
    remap_ids,
)
from src_models.scribbles import (
    DEFAULT_BACKGROUND_ID,
    UNKNOWN,
    Unpainted,
    check_unpainted,
    to_scribbles,
)

SAMPLE_SLICES = 16
_KEEP = 4  # normalised slices kept: the engine reads a slice a few times in a row


def is_lazy(images: Any) -> bool:
    """True for a stack that should be read slice by slice: a memmap, or any array-like
    (zarr, dask, h5py) that is not an in-memory numpy array or a sequence (a list of images,
    a multiscale pyramid: those take the eager path)."""
    if isinstance(images, np.memmap):
        return True
    if isinstance(images, (np.ndarray, Sequence)):  # napari's MultiScaleData is a Sequence
        return False
    return hasattr(images, "shape") and hasattr(images, "dtype") and hasattr(images, "ndim")


def open_zarr(path: str | Path) -> Any:
    """The zarr array at ``path`` (v2 or v3); for a group, OME-Zarr's level 0 (the first
    ``multiscales`` dataset) or else its array named ``0``."""
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return node
    attrs: dict[str, Any] = dict(node.attrs)
    multiscales = attrs.get("multiscales") or dict(attrs.get("ome") or {}).get("multiscales")
    name = str(multiscales[0]["datasets"][0]["path"]) if multiscales else "0"
    if name not in node:
        raise ValueError(f"{path} is a zarr group without an array '0' or OME-Zarr multiscales")
    return node[name]


def stack_view(images: Any, channel_axis: int | None = None) -> Any:
    """A (N, Y, X[, C]) view of a lazy stack, nothing read: ``channel_axis`` (an axis of
    ``images`` as given) moved last, leading length-1 axes before it dropped (OME-Zarr's t,
    and c when there is no channel axis).

    Raises:
        ValueError: the channel axis does not exist or is the slice axis (0).
    """
    axis = None if channel_axis is None else check_axis(channel_axis, images.ndim, "the stack")
    if axis == 0:
        raise ValueError("channel axis 0 is the slice axis: give the axis of the channels")
    lead = 0
    if axis is None:
        while (
            images.ndim - lead > 3
            and images.shape[lead] == 1
            and images.shape[-1] > MAX_CHANNELS_LAST
        ):
            lead += 1
    else:
        while images.ndim - lead > 4 and images.shape[lead] == 1 and lead < axis:
            lead += 1
        axis = None if axis == images.ndim - 1 else axis - lead
    if not hasattr(images, "transpose"):  # zarr, h5py: ``array[0]`` would read all of it
        return _Moved(images, lead, axis) if lead or axis is not None else images
    view = images[(0,) * lead] if lead else images  # memmap, dask: views of their own
    return view if axis is None else np.moveaxis(view, axis, -1)


class _Moved:
    """``source`` without its first ``lead`` (length-1) axes and with ``axis`` (of what
    remains; 0 when the slices follow the channels) moved last; indexing by one slice reads
    that slice only (a zarr or h5py array has no lazy view: ``array[0]`` reads all of it)."""

    def __init__(self, source: Any, lead: int, axis: int | None) -> None:
        self.source, self.lead, self.axis = source, lead, axis
        shape = list(source.shape[lead:])
        if axis is not None:
            shape.append(shape.pop(axis))
        self.shape, self.ndim, self.dtype = tuple(shape), len(shape), source.dtype

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, index: int) -> np.ndarray:
        before = (slice(None),) if self.axis == 0 else ()  # the channels come first
        raw = np.asarray(self.source[(0,) * self.lead + before + (index,)])
        return raw if self.axis is None else np.moveaxis(raw, max(self.axis - 1, 0), -1)


class _PerSlice(Sequence[np.ndarray]):
    """A sequence of ``n`` per-slice arrays made by :meth:`_get` when indexed."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[np.ndarray]: ...
    def __getitem__(self, index: int | slice) -> np.ndarray | Sequence[np.ndarray]:
        if isinstance(index, slice):
            return [self._get(i) for i in range(self.n)[index]]
        return self._get(range(self.n)[index])

    def _get(self, index: int) -> np.ndarray:
        raise NotImplementedError


class LazySlices(_PerSlice):
    """Slice ``i`` of a (N, Y, X[, C]) array-like as (Y, X, C) float32 about [0, 1], read
    and normalised when indexed; ``reads`` counts the reads from the source."""

    def __init__(self, source: Any, lo: np.ndarray | None, span: np.ndarray | None) -> None:
        super().__init__(int(source.shape[0]))
        self.source, self.lo, self.span = source, lo, span
        self.reads = 0
        self._kept: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()  # the engine's prefetch thread reads slices too

    def _get(self, index: int) -> np.ndarray:
        with self._lock:
            if index in self._kept:
                self._kept.move_to_end(index)
                return self._kept[index]
            image = normalise(read_slice(self.source, index), self.lo, self.span)
            drop_pages(self.source)
            self.reads += 1
            self._kept[index] = image
            if len(self._kept) > _KEEP:
                self._kept.popitem(last=False)
            return image


def drop_pages(array: Any) -> None:
    """Let the OS take back the pages of a read-only memmap that were read: they count in
    the process's RSS until then, so a scan of a mapped stack would look like loading it."""
    mapped = getattr(array, "_mmap", None)  # numpy keeps the mmap of every memmap view
    if isinstance(array, np.memmap) and not array.flags.writeable and mapped is not None:
        advise = getattr(mapped, "madvise", None)
        if advise is not None and hasattr(mmap, "MADV_DONTNEED"):
            advise(mmap.MADV_DONTNEED)


def read_slice(source: Any, index: int) -> np.ndarray:
    """Raw slice ``index`` of a stack as a (Y, X, C) numpy array, its pixels checked."""
    raw = np.asarray(source[index])
    if raw.ndim == 2:
        raw = raw[..., None]
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise ValueError(
            f"slice {index} contains NaN or inf pixels: replace them (e.g. np.nan_to_num) first"
        )
    return raw


class LazyLabels(_PerSlice):
    """(H, W) int32 compact labels per slice: the example slices kept, ``fill`` elsewhere
    (0, or :data:`~src_models.scribbles.UNKNOWN` in scribble mode)."""

    def __init__(
        self, n: int, shape: tuple[int, int], examples: dict[int, np.ndarray], fill: int = 0
    ) -> None:
        super().__init__(n)
        self.shape, self.examples, self.fill = shape, examples, fill

    def _get(self, index: int) -> np.ndarray:
        found = self.examples.get(index)
        return found if found is not None else np.full(self.shape, self.fill, np.int32)

    def remap(self, lut: np.ndarray) -> LazyLabels:
        """The same labels with compact ids mapped through ``lut`` (``lut[0] == 0``)."""
        mapped = {i: remap_ids(lab, lut) for i, lab in self.examples.items()}
        return LazyLabels(self.n, self.shape, mapped, self.fill)


def _check_shape(images: Any, channels_last: bool) -> None:
    ndim, shape = images.ndim, tuple(images.shape)
    if (ndim == 3 and not channels_last) or (
        ndim == 4 and (channels_last or shape[-1] <= MAX_CHANNELS_LAST)
    ):
        if images.dtype.kind not in "biuf":
            raise ValueError(
                f"the images have pixels of type {images.dtype}: give integer or float pixels"
            )
        return
    raise ValueError(
        f"unsupported image shape {shape}: give a stack (N, Y, X) or a multichannel stack "
        f"(N, Y, X, C) with C <= {MAX_CHANNELS_LAST} (more: give channel_axis / --channel-axis)"
    )


def sample_indices(n: int, count: int = SAMPLE_SLICES) -> list[int]:
    """At most ``count`` slice indices spread evenly over 0..n-1 (all of them when n <= count)."""
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(n, count))})


def _intensity(images: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    if images.dtype == np.uint8:
        return None, None
    raw = [read_slice(images, i) for i in sample_indices(int(images.shape[0]))]
    channels = raw[0].shape[-1]
    flat = np.concatenate([s.reshape(-1, channels) for s in raw])
    drop_pages(images)
    return intensity_range(flat)


def _scan_labels(labels: Any, n: int, shape: tuple[int, int]) -> tuple[dict[int, np.ndarray], list]:
    """Read the labels one slice at a time: the raw example slices, and an empty array of
    every dtype seen (for the ids' dtype when there is no example)."""
    if hasattr(labels, "ndim") and (labels.ndim != 3 or labels.shape[0] != n):
        raise ValueError(
            f"labels of shape {labels.shape} do not match {n} images: give a label stack "
            "(N, Y, X) with one slice per image"
        )
    if not hasattr(labels, "ndim") and len(labels) != n:
        raise ValueError(f"{len(labels)} label images for {n} images: give one per image")
    examples: dict[int, np.ndarray] = {}
    dtypes: dict[str, np.ndarray] = {}
    for i in range(n):
        lab = np.zeros(shape, np.uint8) if labels[i] is None else np.asarray(labels[i])
        if lab.shape != shape:
            raise ValueError(f"labels of slice {i} have shape {lab.shape} but the image is {shape}")
        check_label_values(lab, f"labels of slice {i}")
        dtypes.setdefault(lab.dtype.str, lab[:0, 0])
        if lab.any():
            examples[i] = np.array(lab)  # a copy: a memmap view must not pin the file
        drop_pages(labels)
    return examples, list(dtypes.values())


def prepare_lazy(
    images: Any,
    labels: Any,
    require_example: bool = True,
    unpainted: Unpainted = "background",
    background_id: int = DEFAULT_BACKGROUND_ID,
    channel_axis: int | None = None,
) -> Prepared:
    """:func:`~src_models.inputs.prepare` for a (N, Y, X[, C]) array-like read per slice.

    Args:
        images: a memmap, zarr or dask array (anything indexable by slice with ``shape``,
            ``ndim`` and ``dtype``) of any integer or float dtype.
        labels: (N, Y, X) array-like of ids (read per slice) or one (Y, X) array / None per
            slice.
        require_example: refuse input without any labelled slice.
        unpainted, background_id: scribble mode, as in :func:`~src_models.inputs.prepare`
            (the example slices are relabelled when read; the others are all unknown).
        channel_axis: the axis of the channels of ``images`` (moved last per slice).

    Returns:
        A :class:`~src_models.inputs.Prepared` whose ``images`` is a :class:`LazySlices`
        (every channel kept, each scaled on its own) and ``labels`` a :class:`LazyLabels`.
        NaN/inf pixels are refused when their slice is read.
    """
    check_unpainted(unpainted, background_id)
    images = stack_view(images, channel_axis)
    _check_shape(images, channel_axis is not None)
    n, shape = int(images.shape[0]), (int(images.shape[1]), int(images.shape[2]))
    raw, dtypes = _scan_labels(labels, n, shape)
    order = sorted(raw)
    compact, ids = compact_ids([raw[i] for i in order] or dtypes)
    examples = dict(zip(order, compact, strict=False))  # compact is longer when no example
    if not examples and require_example:
        raise ValueError(
            "no example: paint at least one object (a nonzero label) on one slice or image"
        )
    sparse = unpainted == "unlabelled"
    if sparse and examples:
        scribbles, table = to_scribbles(list(examples.values()), ids.table, background_id)
        examples, ids = dict(zip(order, scribbles, strict=True)), LabelIds(table)
    for i, lab in examples.items() if not sparse else ():
        check_example(lab, i, ids)
    lo, span = _intensity(images)
    return Prepared(
        images=LazySlices(images, lo, span),
        labels=LazyLabels(n, shape, examples, UNKNOWN if sparse and examples else 0),
        examples=order,
        ids=ids,
        sparse=sparse,
    )
