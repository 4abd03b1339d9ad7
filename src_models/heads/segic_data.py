"""SEGIC training episodes: reference/target pairs from label stacks or image sets, augmented.

An episode is a reference image with K object masks and a target image with the masks of the
same K objects (same instance id in a label stack, same class value in an image set). Slices
of a stack are natural pairs. Augmentations follow the official recipe (methods.md §5):

- ``instance``: RandomResizedCrop(scale 0.3–1, bicubic), ColorJitter(0.4, 0.4, 0.2, 0.1)
  with p 0.2, horizontal flip with p 0.1;
- ``semantic``: horizontal flip (p 0.5) + large-scale jitter (scale 0.1–2.0);
- ``none``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

AUGMENTATIONS = ("instance", "semantic", "none")


@dataclass(frozen=True)
class Episode:
    """One training pair.

    Attributes:
        ref_image, tgt_image: (C, H, W) float32 in [0, 1], C in {1, 3} (gray is expanded
            to RGB only when the backbone input is built).
        ref_masks, tgt_masks: (K, H, W) float32 in {0, 1}, row k = the same object.
    """

    ref_image: torch.Tensor
    ref_masks: torch.Tensor
    tgt_image: torch.Tensor
    tgt_masks: torch.Tensor


def _to_chw(image: np.ndarray, longest: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    scale = longest / max(x.shape[-2:])
    if scale < 1:
        size = (max(1, round(x.shape[1] * scale)), max(1, round(x.shape[2] * scale)))
        x = F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[
            0
        ]
    return x.contiguous()


def _to_labels(labels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    lab = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    if tuple(lab.shape) != size:
        lab = F.interpolate(lab[None, None].float(), size=size, mode="nearest")[0, 0].long()
    return lab


class EpisodeSource:
    """Pairs of labelled images that share object ids.

    Args:
        images: N (H, W, C) float32 images in [0, 1] (e.g. ``Prepared.images``).
        labels: N (H, W) int label images (0 = background).
        max_gap: for stacks, only pair slices at most this far apart (None: any two images).
        longest: images larger than this are downscaled once (the input size is enough).
        self_pairs: also pair an image with itself (two different augmentations).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        max_gap: int | None = None,
        longest: int = 896,
        self_pairs: bool = False,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} label images")
        self.images = [_to_chw(im, longest) for im in images]
        self.labels = [
            _to_labels(lab, tuple(im.shape[-2:])) for lab, im in zip(labels, self.images)
        ]
        ids = [set(torch.unique(lab).tolist()) - {0} for lab in self.labels]
        self.pairs = [
            (i, j, sorted(ids[i] & ids[j]))
            for i in range(len(images))
            for j in range(len(images))
            if (i != j or self_pairs)
            and ids[i] & ids[j]
            and (max_gap is None or abs(i - j) <= max_gap)
        ]
        if not self.pairs:
            raise ValueError(
                "no training pair: give at least two images (or slices) that share a label id "
                "(same instance id in a stack, same class value in an image set)"
            )

    def __len__(self) -> int:
        return len(self.pairs)


def hflip(image: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return image.flip(-1), masks.flip(-1)


def resized_crop(
    image: torch.Tensor,
    masks: torch.Tensor,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.3, 1.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """RandomResizedCrop back to the image's own size (aspect ratio 3/4–4/3), bicubic image."""
    h, w = image.shape[-2:]
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        ch, cw = round(math.sqrt(area / ratio)), round(math.sqrt(area * ratio))
        if 0 < ch <= h and 0 < cw <= w:
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            break
    else:
        ch, cw, y, x = h, w, 0, 0
    crop = image[None, :, y : y + ch, x : x + cw]
    image = F.interpolate(crop, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)
    masks = F.interpolate(masks[None, :, y : y + ch, x : x + cw], size=(h, w), mode="nearest")[0]
    return image, masks


def scale_jitter(
    image: torch.Tensor,
    masks: torch.Tensor,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.1, 2.0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Large-scale jitter: resize by a random factor, then random-crop or zero-pad to the old size."""
    h, w = image.shape[-2:]
    s = rng.uniform(*scale)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    image = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
    masks = F.interpolate(masks[None], size=(nh, nw), mode="nearest")[0]
    y, x = int(rng.integers(0, max(nh - h, 0) + 1)), int(rng.integers(0, max(nw - w, 0) + 1))
    image, masks = image[:, y : y + h, x : x + w], masks[:, y : y + h, x : x + w]
    pad = (0, w - image.shape[-1], 0, h - image.shape[-2])
    return F.pad(image, pad), F.pad(masks, pad)


def color_jitter(image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """ColorJitter(brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1) in random order."""
    from torchvision.transforms.v2 import functional as TF

    ops = [
        lambda x: TF.adjust_brightness(x, rng.uniform(0.6, 1.4)),
        lambda x: TF.adjust_contrast(x, rng.uniform(0.6, 1.4)),
        lambda x: TF.adjust_saturation(x, rng.uniform(0.8, 1.2)),
        lambda x: TF.adjust_hue(x, rng.uniform(-0.1, 0.1)),
    ]
    for index in rng.permutation(len(ops)):
        image = ops[index](image)
    return image.clamp(0, 1)


def augment(
    image: torch.Tensor, masks: torch.Tensor, rng: np.random.Generator, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one augmentation recipe (see the module docstring) to (C, H, W) and (K, H, W)."""
    if mode == "instance":
        image, masks = resized_crop(image, masks, rng)
        if rng.random() < 0.2:
            image = color_jitter(image, rng)
        if rng.random() < 0.1:
            image, masks = hflip(image, masks)
    elif mode == "semantic":
        if rng.random() < 0.5:
            image, masks = hflip(image, masks)
        image, masks = scale_jitter(image, masks, rng)
    elif mode != "none":
        raise ValueError(f"unknown augmentation {mode!r}: choose one of {', '.join(AUGMENTATIONS)}")
    return image, masks


def sample_episode(
    source: EpisodeSource,
    rng: np.random.Generator,
    mode: str = "instance",
    max_objects: int = 4,
    min_area: int = 100,
    tries: int = 20,
) -> Episode:
    """Draw a random pair, 1–``max_objects`` shared objects, augment both sides independently.

    Objects smaller than ``min_area`` pixels on either side after augmentation are dropped;
    the draw is repeated (up to ``tries`` times) until at least one object remains.
    """
    for _ in range(tries):
        i, j, shared = source.pairs[int(rng.integers(len(source.pairs)))]
        count = int(rng.integers(1, min(max_objects, len(shared)) + 1))
        ids = rng.choice(shared, size=count, replace=False)
        ref = [(source.labels[i] == k).float() for k in ids]
        tgt = [(source.labels[j] == k).float() for k in ids]
        ref_image, ref_masks = augment(source.images[i], torch.stack(ref), rng, mode)
        tgt_image, tgt_masks = augment(source.images[j], torch.stack(tgt), rng, mode)
        keep = (ref_masks.flatten(1).sum(1) >= min_area) & (tgt_masks.flatten(1).sum(1) >= min_area)
        if keep.any():
            return Episode(ref_image, ref_masks[keep], tgt_image, tgt_masks[keep])
    raise ValueError(
        f"no object of at least {min_area} px survived {tries} augmented draws: lower min_area "
        "or use larger objects"
    )
