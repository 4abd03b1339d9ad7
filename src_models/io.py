"""Read image stacks / image folders and write label outputs without partial results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from src_models.atomic import write_file, write_folder
from src_models.hashing import array_sha256
from src_models.outputs import tiff_description

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
STACK_SUFFIXES = (".tif", ".tiff", ".npy", ".zarr")


@dataclass(frozen=True)
class ImageSet:
    """Images read from disk.

    Attributes:
        images: a (N, Y, X[, C]) array (stack input: a memmap or zarr array for NPY and zarr
            files, read per slice by the engine) or a list of 2D images (folder input).
        names: file stems of a folder's images (None for a stack).
        path: where they came from.
    """

    images: np.ndarray | list[np.ndarray] | Any
    names: list[str] | None
    path: Path

    @property
    def is_stack(self) -> bool:
        return self.names is None


def is_zarr(path: Path) -> bool:
    """A zarr store (a folder named *.zarr)."""
    return path.suffix.lower() == ".zarr" and path.is_dir()


def _open_zarr(path: Path) -> Any:
    from src_models.lazy import open_zarr

    try:
        return open_zarr(path)
    except ValueError:
        raise
    except Exception as error:  # any zarr error means the same thing to the user
        raise ValueError(f"cannot read {path}: {_reason(error)}") from error


def _series_note(shapes: list[tuple[int, ...]]) -> str:
    listed = ", ".join("x".join(map(str, shape)) for shape in shapes[:4])
    return listed + (", ..." if len(shapes) > 4 else "")


def _read_tiff(path: Path) -> tuple[np.ndarray, str]:
    """The TIFF's only image series and its axes (tifffile letters, e.g. ``ZYX``, ``YXS``)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series
        kinds = {(tuple(s.shape), str(s.dtype)) for s in series}
        if len(series) > 1 and len(kinds) == 1:  # pages written one by one: a stack
            return np.stack([s.asarray() for s in series]), "I" + str(series[0].axes)
        if len(series) > 1:
            shapes = [tuple(s.shape) for s in series]
            raise ValueError(
                f"{path} holds {len(series)} images of different sizes or types "
                f"({_series_note(shapes)}): save them as separate files in a folder"
            )
        return np.asarray(series[0].asarray()), str(series[0].axes)


def read_file(path: Path, mapped: bool = False) -> tuple[np.ndarray, str]:
    """Pixels of one image file in its own dtype, and its axes ('' when the format does not
    say); ``ValueError`` naming the file when it cannot be read. ``mapped``: an NPY file is
    memory-mapped read-only (a stack the engine reads slice by slice), not loaded."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            return _read_tiff(path)
        if path.suffix.lower() == ".npy":
            return np.load(path, mmap_mode="r" if mapped else None, allow_pickle=False), ""
        import imageio.v3 as iio

        return np.asarray(iio.imread(path)), ""
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"cannot read {path}: {_reason(error)}") from error
    except Exception as error:  # any decoder error means the same thing to the user
        raise ValueError(f"cannot read {path}: {_reason(error)}") from error


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_one_colour_image(array: np.ndarray, axes: str) -> bool:
    """A single (Y, X, C) colour image rather than a stack of C-pixel-wide slices."""
    if array.ndim != 3:
        return False
    if axes:
        return axes.endswith("S")
    return array.shape[-1] in (3, 4) and array.shape[-2] > 4


def _folder_files(folder: Path) -> list[Path]:
    """The images of a folder, sorted by name: hidden and AppleDouble (``._x``) files are
    skipped; two images whose names differ only by suffix or case are refused, because
    outputs are named by stem and one would silently replace the other."""
    files = sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    seen: dict[str, Path] = {}
    for f in files:
        key = f.stem.casefold()
        if key in seen:
            raise ValueError(
                f"{seen[key].name} and {f.name} in {folder} have the same name: outputs are "
                "named by it, so rename or move one of them"
            )
        seen[key] = f
    return files


def read_images(path: str | Path) -> ImageSet:
    """Read a TIFF/NPY/zarr stack (N, Y, X[, C]) or a folder of 2D images sorted by name.

    A single 2D image file (grey or colour, e.g. an RGB TIFF) is a stack of one slice. NPY
    files are memory-mapped and zarr stores (OME-Zarr: level 0) opened, not loaded: the
    engine reads them slice by slice (:mod:`src_models.lazy`).
    """
    path = Path(path)
    if is_zarr(path):
        return ImageSet(_open_zarr(path), None, path)
    if path.is_dir():
        files = _folder_files(path)
        return ImageSet([read_file(f)[0] for f in files], [f.stem for f in files], path)
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if path.suffix.lower() not in STACK_SUFFIXES:
        raise ValueError(f"{path}: give a TIFF/NPY stack or a folder of images")
    stack, axes = read_file(path, mapped=True)
    if stack.ndim == 2 or _is_one_colour_image(stack, axes):
        stack = stack[None]
    return ImageSet(stack, None, path)


def _as_label_image(mask: np.ndarray, name: str) -> np.ndarray:
    if mask.ndim == 3:
        if not (mask == mask[..., :1]).all():
            raise ValueError(
                f"mask {name} is a colour image: save label ids as a single-channel image"
            )
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"mask {name} has shape {mask.shape}: expected a 2D label image")
    return mask


def read_labels(path: str | Path, images: ImageSet) -> np.ndarray | list[np.ndarray | None]:
    """Read the example labels matching ``images``.

    A stack input takes a label stack of the same (N, Y, X) shape. A folder input takes a
    folder holding masks named like the example images (any image suffix); the other
    images have no mask. A mask file given for an image must not be empty.
    """
    path = Path(path)
    if images.is_stack and is_zarr(path):
        return _open_zarr(path)
    if images.is_stack:
        if not path.is_file():
            raise ValueError(f"{path}: a stack input needs a label stack file of the same shape")
        labels = read_file(path, mapped=True)[0]
        if labels.ndim == 2:
            labels = labels[None]
        return labels  # dtype kept: inputs.prepare checks the values before any cast
    if not path.is_dir():
        raise ValueError(f"{path}: a folder of images needs a folder of masks named like them")
    by_stem = {f.stem: f for f in _folder_files(path)}
    unknown = sorted(set(by_stem) - set(images.names or []))
    if unknown:
        raise ValueError(f"masks with no image of the same name: {', '.join(unknown[:5])}")
    out: list[np.ndarray | None] = []
    for name in images.names or []:
        if name not in by_stem:
            out.append(None)
            continue
        mask = _as_label_image(read_file(by_stem[name])[0], by_stem[name].name)
        if not mask.any():
            raise ValueError(f"example mask {by_stem[name]} is empty: paint the object in it")
        out.append(mask)
    return out


def label_dtype(labels: list[np.ndarray]) -> np.dtype:
    """The smallest integer type holding every id: unsigned when none is negative.

    Raises:
        ValueError: a float label that is not a whole number (it would be truncated).
    """
    arrays = [np.asarray(lab) for lab in labels if np.size(lab)]
    for a in arrays:
        if a.dtype.kind == "f" and not (np.isfinite(a).all() and np.array_equal(a, np.floor(a))):
            raise ValueError("labels hold values that are not whole numbers: nothing written")
    low = min((int(a.min()) for a in arrays), default=0)
    high = max((int(a.max()) for a in arrays), default=0)
    kinds = (
        (np.uint8, np.uint16, np.uint32, np.uint64)
        if low >= 0
        else (np.int8, np.int16, np.int32, np.int64)
    )
    for dtype in kinds:
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    raise ValueError(f"label ids from {low} to {high} fit no integer type: nothing written")


def write_tiff(path: Path, data: np.ndarray, run: dict[str, Any] | None = None) -> None:
    """A zlib TIFF carrying our marker, the sha256 of its pixels (see outputs.py) and the
    ``run`` that made it, if given."""
    import tifffile

    data = np.ascontiguousarray(data)
    digest = array_sha256(data)
    tifffile.imwrite(
        path, data, compression="zlib", metadata=None, description=tiff_description(digest, run)
    )


def write_labels(
    out: str | Path,
    labels: list[np.ndarray],
    names: list[str] | None,
    run: dict[str, Any] | None = None,
) -> Path:
    """Write labels mirroring the input, atomically: a TIFF stack (a file) when ``names`` is
    None, else a folder with one PNG per name (TIFF when ids exceed 16 bits or are negative)
    plus our manifest. ``run`` (the backend, options and automatic choices that made them,
    :func:`src_models.provenance.run_record`) goes into the TIFF's description or the
    manifest. Ids are kept exactly (:func:`label_dtype`), never wrapped.

    The destination must have passed :func:`src_models.outputs.check_output`.
    """
    dtype = label_dtype(labels)
    if names is None:
        stack = np.stack([np.asarray(lab) for lab in labels]).astype(dtype, copy=False)
        return write_file(out, lambda tmp: write_tiff(tmp, stack, run))
    extra = {"run": run} if run is not None else None
    return write_folder(out, lambda tmp: _write_masks(tmp, labels, names, dtype), extra)


def _write_masks(folder: Path, labels: list[np.ndarray], names: list[str], dtype: np.dtype) -> None:
    import imageio.v3 as iio
    import tifffile

    for name, lab in zip(names, labels, strict=True):
        if dtype.itemsize > 2 or dtype.kind == "i":  # PNG holds 8/16-bit unsigned only
            tifffile.imwrite(folder / f"{name}.tif", np.asarray(lab).astype(dtype))
        else:
            iio.imwrite(folder / f"{name}.png", np.asarray(lab).astype(dtype))
