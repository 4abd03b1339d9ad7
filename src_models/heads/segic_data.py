"""SEGIC training episodes: reference/target pairs from label stacks or image sets, augmented.

An episode is a reference image with K object masks and a target image with the masks of the
same K objects (same instance id in a label stack, same class value in an image set). Slices
of a stack are natural pairs. Augmentations follow the official recipe (docs/parity.md):

- ``instance``: RandomResizedCrop(scale 0.3–1, bicubic), ColorJitter(0.4, 0.4, 0.2, 0.1)
  with p 0.2, horizontal flip with p 0.1;
- ``semantic``: horizontal flip (p 0.5) + large-scale jitter (scale 0.1–2.0);
- ``none``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
            _to_labels(lab, (im.shape[-2], im.shape[-1]))
            for lab, im in zip(labels, self.images, strict=True)
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


def _pipeline(mode: str, size: tuple[int, int]) -> Callable[..., Any]:
    """The torchvision v2 transform of one recipe (joint on an image and its masks)."""
    from torchvision.transforms import v2

    if mode == "instance":
        return v2.Compose(
            [
                v2.RandomResizedCrop(
                    size, scale=(0.3, 1.0), interpolation=v2.InterpolationMode.BICUBIC
                ),
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.2),
                v2.RandomHorizontalFlip(p=0.1),
            ]
        )
    if mode == "semantic":  # large-scale jitter: resize ×0.1–2, then crop / zero-pad back
        return v2.Compose(
            [
                v2.RandomHorizontalFlip(p=0.5),
                v2.ScaleJitter(size, scale_range=(0.1, 2.0)),
                v2.RandomCrop(size, pad_if_needed=True),
            ]
        )
    raise ValueError(f"unknown augmentation {mode!r}: choose one of {', '.join(AUGMENTATIONS)}")


def augment(
    image: torch.Tensor, masks: torch.Tensor, rng: np.random.Generator, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one augmentation recipe (see the module docstring) to an image and its masks.

    Args:
        image: (C, H, W) float32 in [0, 1].
        masks: (K, H, W) float32 in {0, 1} (resampled with nearest neighbour).
        rng: draws the seed of the torchvision transforms, so a run is reproducible and
            resumable without touching torch's global random state.

    Returns:
        The augmented (C, H, W) image clamped to [0, 1] and (K, H, W) masks, same size.
    """
    if mode == "none":
        return image, masks
    from torchvision import tv_tensors

    transform = _pipeline(mode, (int(image.shape[-2]), int(image.shape[-1])))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        out, out_masks = transform(tv_tensors.Image(image), tv_tensors.Mask(masks))
    return out.as_subclass(torch.Tensor).clamp(0, 1), out_masks.as_subclass(torch.Tensor)


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
