"""Read image stacks / image folders and write label outputs without partial results."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
STACK_SUFFIXES = (".tif", ".tiff", ".npy")


@dataclass(frozen=True)
class ImageSet:
    """Images read from disk.

    Attributes:
        images: a (N, Y, X[, C]) array (stack input) or a list of 2D images (folder input).
        names: file stems of a folder's images (None for a stack).
        path: where they came from.
    """

    images: np.ndarray | list[np.ndarray]
    names: list[str] | None
    path: Path

    @property
    def is_stack(self) -> bool:
        return self.names is None


def _read_one(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except Exception as error:  # any decoder error means the same thing to the user
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"cannot read {path}: {reason}") from error


def _folder_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_images(path: str | Path) -> ImageSet:
    """Read a TIFF/NPY stack (N, Y, X[, C]) or a folder of 2D images sorted by name."""
    path = Path(path)
    if path.is_dir():
        files = _folder_files(path)
        return ImageSet([_read_one(f) for f in files], [f.stem for f in files], path)
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    if path.suffix.lower() not in STACK_SUFFIXES:
        raise ValueError(f"{path}: give a TIFF/NPY stack or a folder of images")
    stack = _read_one(path)
    if stack.ndim == 2:
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
    return mask.astype(np.int32)


def read_labels(path: str | Path, images: ImageSet) -> np.ndarray | list[np.ndarray | None]:
    """Read the example labels matching ``images``.

    A stack input takes a label stack of the same (N, Y, X) shape. A folder input takes a
    folder holding masks named like the example images (any image suffix); the other
    images have no mask. A mask file given for an image must not be empty.
    """
    path = Path(path)
    if images.is_stack:
        labels = _read_one(path) if path.is_file() else None
        if labels is None:
            raise ValueError(f"{path}: a stack input needs a label stack file of the same shape")
        if labels.ndim == 2:
            labels = labels[None]
        return labels.astype(np.int32)
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
        mask = _as_label_image(_read_one(by_stem[name]), by_stem[name].name)
        if not mask.any():
            raise ValueError(f"example mask {by_stem[name]} is empty: paint the object in it")
        out.append(mask)
    return out


def check_output(out: str | Path, overwrite: bool) -> Path:
    """Refuse an existing output path unless ``overwrite`` (checked before any work)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists: choose another --out or pass --overwrite")
    return out


def _label_dtype(labels: list[np.ndarray]) -> type:
    top = max(int(lab.max()) for lab in labels)
    return np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32


def write_labels(out: str | Path, labels: list[np.ndarray], images: ImageSet) -> Path:
    """Write labels mirroring the input: a TIFF stack, or a folder with one PNG per image.

    Writes to a temporary sibling first and renames, so a failure leaves nothing half-way.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dtype = _label_dtype(labels)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if images.is_stack:
            import tifffile

            target = tmp / "stack.tif"
            tifffile.imwrite(target, np.stack(labels).astype(dtype), compression="zlib")
        else:
            target = tmp / "masks"
            target.mkdir()
            _write_folder(target, labels, images.names or [], dtype)
        _replace(target, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_folder(folder: Path, labels: list[np.ndarray], names: list[str], dtype: type) -> None:
    import imageio.v3 as iio
    import tifffile

    for name, lab in zip(names, labels):
        if dtype == np.uint32:
            tifffile.imwrite(folder / f"{name}.tif", lab.astype(dtype))
        else:
            iio.imwrite(folder / f"{name}.png", lab.astype(dtype))


def _replace(src: Path, dst: Path) -> None:
    if dst.is_dir():
        shutil.rmtree(dst)
    elif dst.exists():
        dst.unlink()
    os.replace(src, dst)
