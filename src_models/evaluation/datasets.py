"""Readers for evaluation datasets: image/mask sets, label stacks, instance images, videos.

Layouts recognised in a dataset folder (see ``docs/evaluation.md``), checked in this order:

1. Video: ``JPEGImages/<sequence>/<frame>.jpg`` + ``Annotations/<sequence>/<frame>.png``.
2. Stack + label stack: a pair of files from :data:`STACK_PAIRS` (TIFF or NPY). A 3D pair
   is a :class:`Stack`; a 2D pair is an :class:`InstanceImage`.
3. Image set: ``images/`` + ``masks_bin/``, ``masks/`` or ``labels/`` with matching file
   stems. Classes come from sub-folders (``images/<class>/<name>``), else from a
   ``<class>_<nn>`` stem pattern, else the whole folder is one class.

An optional ``dataset.json`` in the folder sets ``{"labels": "instance" | "semantic"}``;
otherwise label images with more than :data:`INSTANCE_MIN_IDS` ids count as instances.
Masks holding a single nonzero value (0/255, 0/1) become {0, 1}.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from src_models.io import IMAGE_SUFFIXES, read_file

STACK_PAIRS: tuple[tuple[str, str], ...] = (
    ("image", "labels"),
    ("images_stack_zyx", "labels_stack_zyx"),
    ("image_zyx", "labels_zyx"),
    ("raw", "labels"),
    ("img3d", "mask3d"),
    ("img2d", "mask2d"),
)
STACK_SUFFIXES = (".tif", ".tiff", ".npy")
MASK_FOLDERS = ("masks_bin", "masks", "labels")
INSTANCE_MIN_IDS = 16


@dataclass
class AnnotatedImages:
    """Images with one mask each, grouped by class or object (one-shot / K-shot).

    Attributes:
        images: N arrays (H_i, W_i) or (H_i, W_i, C), native dtype.
        masks: N arrays (H_i, W_i) int32, 0 = background.
        names: N file stems; groups: N class / object names.
    """

    name: str
    images: list[np.ndarray]
    masks: list[np.ndarray]
    names: list[str]
    groups: list[str]
    kind: str = "images"

    def group_indices(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, g in enumerate(self.groups):
            out.setdefault(g, []).append(i)
        return out


@dataclass
class Stack:
    """A (N, Y, X[, C]) stack with a (N, Y, X) int32 label stack (semantic or instance)."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    instance: bool
    kind: str = "stack"


@dataclass
class InstanceImage:
    """One (H, W[, C]) image with (H, W) int32 instance labels."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    kind: str = "instances"


@dataclass
class Sequence:
    """One video sequence on disk; :meth:`load` reads it as a semantic :class:`Stack`."""

    name: str
    frames: list[Path]
    masks: list[Path]

    def load(self, max_frames: int | None = None, max_side: int | None = None) -> Stack:
        n = len(self.frames) if max_frames is None else min(max_frames, len(self.frames))
        image = np.stack([_resize(read_image(p), max_side, 1) for p in self.frames[:n]])
        labels = np.stack([_resize(read_mask(p), max_side, 0) for p in self.masks[:n]])
        return Stack(self.name, image, _binarise(labels), instance=False)


@dataclass
class Video:
    """DAVIS-style sequences, read lazily (a sequence at full size is hundreds of MB)."""

    name: str
    sequences: list[Sequence] = field(default_factory=list)
    max_side: int | None = None
    kind: str = "video"


Dataset = AnnotatedImages | Stack | InstanceImage | Video


def read_image(path: Path) -> np.ndarray:
    """Read a 2D image (or a stack for TIFF/NPY) keeping its dtype (:func:`io.read_file`)."""
    return read_file(path)[0]


def read_mask(path: Path) -> np.ndarray:
    """Read a mask as (H, W) int32: palette PNGs keep their indices, grey RGB keeps one channel."""
    if path.suffix.lower() == ".png":
        from PIL import Image

        with Image.open(path) as im:
            mask = np.asarray(im if im.mode in ("P", "L", "I", "I;16", "1") else im.convert("RGB"))
    else:
        mask = read_image(path)
    if mask.ndim == 3:
        mask = np.any(mask, axis=-1) if not (mask == mask[..., :1]).all() else mask[..., 0]
    return mask.astype(np.int32)


def _binarise(labels: np.ndarray) -> np.ndarray:
    """Labels with a single nonzero value (e.g. 0/255) → {0, 1}; others unchanged, int32."""
    values = np.unique(labels)
    if len(values[values != 0]) == 1:
        return (labels != 0).astype(np.int32)
    return labels.astype(np.int32)


def _resize(array: np.ndarray, max_side: int | None, order: int) -> np.ndarray:
    """Shrink a 2D image/mask (channels last allowed) so its longest side is <= max_side."""
    h, w = array.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return array
    from skimage.transform import resize

    scale = max_side / max(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale))) + array.shape[2:]
    out = resize(array, shape, order=order, preserve_range=True, anti_aliasing=order > 0)
    return out.round().astype(array.dtype) if order == 0 else out.astype(array.dtype)


def _resize_stack(stack: np.ndarray, max_side: int | None, order: int) -> np.ndarray:
    if max_side is None or max(stack.shape[1:3]) <= max_side:
        return stack
    return np.stack([_resize(s, max_side, order) for s in stack])


def _is_instance(labels: np.ndarray, meta: dict) -> bool:
    if "labels" in meta:
        if meta["labels"] not in ("instance", "semantic"):
            raise ValueError("dataset.json 'labels' must be 'instance' or 'semantic'")
        return meta["labels"] == "instance"
    return len(np.unique(labels)) - 1 > INSTANCE_MIN_IDS


def _find_file(folder: Path, stem: str) -> Path | None:
    for suffix in STACK_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def _read_stacks(folder: Path, meta: dict, max_side: int | None) -> list[Dataset]:
    found: list[Dataset] = []
    for image_stem, label_stem in STACK_PAIRS:
        image_path, label_path = _find_file(folder, image_stem), _find_file(folder, label_stem)
        if image_path is None or label_path is None:
            continue
        image, labels = read_image(image_path), read_image(label_path).astype(np.int32)
        if image.shape[: labels.ndim] != labels.shape:
            raise ValueError(
                f"{image_path.name} {image.shape} and {label_path.name} "
                f"{labels.shape} differ: the label stack must match the image"
            )
        labels = _binarise(labels)
        name = f"{folder.name}/{image_stem}"
        if labels.ndim == 2:
            found.append(
                InstanceImage(name, _resize(image, max_side, 1), _resize(labels, max_side, 0))
            )
        else:
            found.append(
                Stack(
                    name,
                    _resize_stack(image, max_side, 1),
                    _resize_stack(labels, max_side, 0),
                    _is_instance(labels, meta),
                )
            )
    return found


def _files(folder: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes}


def _stem_group(stems: list[str], default: str) -> list[str]:
    matches = [re.fullmatch(r"(.+)_(\d+)", s) for s in stems]
    if stems and all(matches):
        return [m.group(1) for m in matches if m]
    return [default] * len(stems)


def _read_image_set(folder: Path, max_side: int | None) -> AnnotatedImages | None:
    images_dir = folder / "images"
    mask_dir = next((folder / m for m in MASK_FOLDERS if (folder / m).is_dir()), None)
    if not images_dir.is_dir() or mask_dir is None:
        return None
    subdirs = sorted(p.name for p in images_dir.iterdir() if p.is_dir())
    entries: list[tuple[str, Path, Path]] = []  # group, image, mask
    for sub in subdirs or [""]:
        images = _files(images_dir / sub)
        masks = _files(mask_dir / sub) if (mask_dir / sub).is_dir() else {}
        missing = sorted(set(images) - set(masks))
        if missing:
            raise ValueError(
                f"{images_dir / sub}: no mask for {', '.join(missing[:5])} in "
                f"{mask_dir / sub}; give every image a mask with the same name"
            )
        stems = list(images)
        groups = [sub] * len(stems) if sub else _stem_group(stems, folder.name)
        entries += [(g, images[s], masks[s]) for g, s in zip(groups, stems, strict=True)]
    if not entries:
        raise ValueError(f"{images_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    imgs = [_resize(read_image(p), max_side, 1) for _, p, _ in entries]
    labels = [_binarise(_resize(read_mask(m), max_side, 0)) for _, _, m in entries]
    for img, mask, (_, p, _) in zip(imgs, labels, entries, strict=True):
        if img.shape[:2] != mask.shape:
            raise ValueError(f"{p.name}: image {img.shape[:2]} and mask {mask.shape} differ")
    names = [f"{g}/{p.stem}" if subdirs else p.stem for g, p, _ in entries]
    return AnnotatedImages(folder.name, imgs, labels, names, [g for g, _, _ in entries])


def _read_video(folder: Path, max_side: int | None) -> Video | None:
    frames_dir, masks_dir = folder / "JPEGImages", folder / "Annotations"
    if not frames_dir.is_dir() or not masks_dir.is_dir():
        return None
    video = Video(folder.name, max_side=max_side)
    for seq in sorted(p for p in frames_dir.iterdir() if p.is_dir()):
        frames = _files(seq)
        masks = _files(masks_dir / seq.name) if (masks_dir / seq.name).is_dir() else {}
        common = sorted(set(frames) & set(masks))
        if not common:
            raise ValueError(f"{seq.name}: no frame of JPEGImages has a mask in Annotations")
        video.sequences.append(
            Sequence(seq.name, [frames[c] for c in common], [masks[c] for c in common])
        )
    return video


def load_datasets(path: str | Path, max_side: int | None = None) -> list[Dataset]:
    """Every dataset found in a folder (see the module docstring for the layouts).

    Args:
        path: a dataset folder.
        max_side: shrink images (anti-aliased) and masks (nearest) so the longest side is at
            most this; None keeps the full size. Video frames are shrunk when loaded.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder: give a dataset folder (docs/evaluation.md)")
    meta_path = folder / "dataset.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    video = _read_video(folder, max_side)
    if video is not None:
        return [video]
    stacks = _read_stacks(folder, meta, max_side)
    if stacks:
        return stacks
    image_set = _read_image_set(folder, max_side)
    if image_set is not None:
        return [image_set]
    raise ValueError(
        f"{folder}: no known layout. Use images/ + masks/ with matching names, a stack pair "
        "such as image.tif + labels.tif, or JPEGImages/ + Annotations/ (docs/evaluation.md)"
    )
