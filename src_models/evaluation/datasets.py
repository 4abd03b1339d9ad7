"""Readers for evaluation datasets: image/mask sets, label stacks, instance images, videos.

Layouts recognised in a dataset folder (see ``docs/evaluation.md``), checked in this order:

1. Video: ``JPEGImages/<sequence>/<frame>.jpg`` + ``Annotations/<sequence>/<frame>.png``;
   flat ``JPEGImages/`` + ``Annotations/`` whose stems are all frame numbers is one sequence.
2. Stack + label stack: a pair of files from :data:`STACK_PAIRS` (TIFF or NPY). A 3D pair
   is a :class:`Stack`; a 2D pair is an :class:`InstanceImage`.
3. Image set: an image folder + a mask folder from :data:`IMAGE_SETS` (``images/`` +
   ``masks/``, mmseg ``img_dir/`` + ``ann_dir/``, flat VOC-style ``JPEGImages/`` +
   ``Annotations/``), paired by name (:mod:`.pairing`: same stem, stem + ``_mask`` ...).
   Classes come from sub-folders (``images/<class>/<name>``; split names such as
   ``train``/``val`` are not classes), else from a ``<class>_<nn>`` stem pattern, else the
   whole folder is one class.

An optional ``dataset.json`` in the folder sets ``{"labels": "instance" | "semantic"}``;
otherwise label images with more than :data:`INSTANCE_MIN_IDS` ids count as instances.
Masks holding a single nonzero value (0/255, 0/1) become {0, 1}; an image set in which any
mask holds several nonzero ids keeps every id (``multiclass``: scored per id). JPEG masks
are thresholded at half their dtype range, with a warning.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from src_models.evaluation.pairing import pair_files
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
IMAGE_SETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("images", MASK_FOLDERS),
    ("img_dir", ("ann_dir",)),
    ("JPEGImages", ("Annotations",)),
)
"""(image folder, mask folders in order of preference) of the image-set layouts."""
SPLITS = frozenset({"train", "training", "val", "validation", "test", "testing"})
JPEG_SUFFIXES = (".jpg", ".jpeg")
MASK_FILE_TYPES = (*IMAGE_SUFFIXES, ".gif")  # DRIVE-style masks are GIFs
INSTANCE_MIN_IDS = 16


@dataclass
class AnnotatedImages:
    """Images with one mask each, grouped by class or object (one-shot / K-shot).

    Attributes:
        images: N arrays (H_i, W_i) or (H_i, W_i, C), native dtype.
        masks: N arrays (H_i, W_i) int32, 0 = background.
        names: N file stems; groups: N class / object names.
        multiclass: masks keep their ids (some mask holds several): score per id.
        layout: the folders it was read from, e.g. ``"images/ + masks/"``.
    """

    name: str
    images: list[np.ndarray]
    masks: list[np.ndarray]
    names: list[str]
    groups: list[str]
    kind: str = "images"
    multiclass: bool = False
    layout: str = ""

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
    """Read a mask as (H, W) int32: palette PNGs keep their indices, grey RGB keeps one channel.

    JPEG masks are thresholded at half their dtype range ({0, 1}, with a warning): lossy
    compression leaves values such as 1 or 254 that would otherwise read as extra ids.
    """
    if path.suffix.lower() in (".png", ".gif"):
        from PIL import Image

        with Image.open(path) as im:
            mask = np.asarray(im if im.mode in ("P", "L", "I", "I;16", "1") else im.convert("RGB"))
    else:
        mask = read_image(path)
    if mask.ndim == 3:
        mask = np.any(mask, axis=-1) if not (mask == mask[..., :1]).all() else mask[..., 0]
    if path.suffix.lower() in JPEG_SUFFIXES:
        half = np.iinfo(mask.dtype).max / 2 if mask.dtype.kind in "ui" else 0.5
        warnings.warn(
            f"{path}: JPEG mask thresholded at {half:g} (lossy compression alters label "
            "values); save masks as PNG or TIFF to keep exact ids",
            stacklevel=2,
        )
        return (mask > half).astype(np.int32)
    return mask.astype(np.int32)


def _binarise(labels: np.ndarray) -> np.ndarray:
    """Labels with a single nonzero value (e.g. 0/255) → {0, 1}; others unchanged, int32."""
    values = np.unique(labels)
    if len(values[values != 0]) == 1:
        return (labels != 0).astype(np.int32)
    return labels.astype(np.int32)


def binarise_set(masks: list[np.ndarray]) -> tuple[list[np.ndarray], bool]:
    """Decide for a whole mask set: (masks, multiclass).

    When every mask holds at most one nonzero value, each becomes {0, 1} (binary). When any
    holds several, every mask keeps its ids, so that id k means the same class in every
    image (binarising per mask would turn a lone id 2 into 1).
    """
    multiclass = any(len(np.unique(m[m != 0])) > 1 for m in masks)
    if multiclass:
        return [m.astype(np.int32) for m in masks], True
    return [(m != 0).astype(np.int32) for m in masks], False


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


def _mask_files(
    images_dir: Path, mask_dir: Path, sub: str
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Images of one (sub-)folder and the mask paired with each (:func:`pairing.pair_files`)."""
    images = _files(images_dir / sub)
    masks = _files(mask_dir / sub, MASK_FILE_TYPES) if (mask_dir / sub).is_dir() else {}
    paired, missing = pair_files(images, masks, mask_dir / sub)
    if missing:
        raise ValueError(
            f"{images_dir / sub}: no mask for {', '.join(missing[:5])} in "
            f"{mask_dir / sub}; give every image a mask with the same name (or name + _mask)"
        )
    return images, paired


def _image_set_folders(folder: Path) -> tuple[Path, Path] | None:
    for image_name, mask_names in IMAGE_SETS:
        mask_dir = next((folder / m for m in mask_names if (folder / m).is_dir()), None)
        if (folder / image_name).is_dir() and mask_dir is not None:
            return folder / image_name, mask_dir
    return None


def _read_image_set(folder: Path, max_side: int | None) -> AnnotatedImages | None:
    found = _image_set_folders(folder)
    if found is None:
        return None
    images_dir, mask_dir = found
    subdirs = sorted(p.name for p in images_dir.iterdir() if p.is_dir())
    entries: list[tuple[str, Path, Path]] = []  # group, image, mask
    for sub in subdirs or [""]:
        images, masks = _mask_files(images_dir, mask_dir, sub)
        stems = list(images)
        if sub and sub.lower() not in SPLITS:
            groups = [sub] * len(stems)
        else:
            groups = _stem_group(stems, folder.name)
        entries += [(g, images[s], masks[s]) for g, s in zip(groups, stems, strict=True)]
    if not entries:
        raise ValueError(f"{images_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    imgs = [_resize(read_image(p), max_side, 1) for _, p, _ in entries]
    labels, multiclass = binarise_set([_resize(read_mask(m), max_side, 0) for _, _, m in entries])
    for img, mask, (_, p, _) in zip(imgs, labels, entries, strict=True):
        if img.shape[:2] != mask.shape:
            raise ValueError(f"{p.name}: image {img.shape[:2]} and mask {mask.shape} differ")
    names = [f"{p.parent.name}/{p.stem}" if subdirs else p.stem for _, p, _ in entries]
    layout = f"{images_dir.name}/ + {mask_dir.name}/"
    groups = [g for g, _, _ in entries]
    return AnnotatedImages(folder.name, imgs, labels, names, groups, "images", multiclass, layout)


def _read_video(folder: Path, max_side: int | None) -> Video | None:
    frames_dir, masks_dir = folder / "JPEGImages", folder / "Annotations"
    if not frames_dir.is_dir() or not masks_dir.is_dir():
        return None
    video = Video(folder.name, max_side=max_side)
    sequences = sorted(p for p in frames_dir.iterdir() if p.is_dir())
    if not sequences:
        frames = _files(frames_dir)
        if not frames or not all(stem.isdigit() for stem in frames):
            return None  # a flat folder of named photos: an image set
        sequences = [frames_dir]
    for seq in sequences:
        frames = _files(seq)
        mask_seq = masks_dir if seq == frames_dir else masks_dir / seq.name
        masks = _files(mask_seq) if mask_seq.is_dir() else {}
        common = sorted(set(frames) & set(masks))
        if not common:
            raise ValueError(f"{seq.name}: no frame of JPEGImages has a mask in Annotations")
        name = folder.name if seq == frames_dir else seq.name
        video.sequences.append(
            Sequence(name, [frames[c] for c in common], [masks[c] for c in common])
        )
    return video


def describe(dataset: Dataset) -> str:
    """What a dataset was read as, in words (printed by ``eval`` and kept in its results)."""
    if isinstance(dataset, AnnotatedImages):
        n_classes = len(dataset.group_indices())
        masks = "multi-class masks, scored per id" if dataset.multiclass else "binary masks"
        plural = "es" if n_classes != 1 else ""
        return (
            f"an image set of {len(dataset.images)} images in {n_classes} class{plural} "
            f"({masks}; {dataset.layout})"
        )
    if isinstance(dataset, Stack):
        ids = len(np.unique(dataset.labels[dataset.labels != 0]))
        kind, what = ("an instance", "object") if dataset.instance else ("a semantic", "class")
        plural = "" if ids == 1 else ("es" if what == "class" else "s")
        shape = "×".join(map(str, dataset.labels.shape))
        return f"{kind} stack {shape} (Z×Y×X) with {ids} {what}{plural}"
    if isinstance(dataset, InstanceImage):
        ids = len(np.unique(dataset.labels[dataset.labels != 0]))
        shape = "×".join(map(str, dataset.labels.shape))
        return f"an instance image {shape} (Y×X) with {ids} instances"
    n = len(dataset.sequences)
    return f"a video of {n} sequence{'' if n == 1 else 's'}"


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
        "such as image.tif + labels.tif, img_dir/ + ann_dir/, or JPEGImages/ + Annotations/ "
        "(docs/evaluation.md)"
    )
