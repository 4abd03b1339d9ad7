"""Images with any number of channels: where the channel axis is, and how the DINO/SAM
backbones, which take 3 channels, see C of them.

``classic`` uses every channel. The model backends map C channels to 3 by one rule
(:func:`to_three`), or by the channels the user names with the option ``channels=0,1,2``:

* C = 1 → the channel three times (a grey image);
* C = 2 → (c0, c1, mean of both);
* C ≥ 3 → the first three (RGB; RGBA drops alpha).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_CHANNELS_LAST = 16
"""A stack's or image's last axis is taken as channels up to this size without a
``channel_axis``: a longer last axis is more likely a mistake (e.g. a 4D volume)."""


def move_channel_axis(images: Any, channel_axis: int | None) -> Any:
    """Move the channel axis last (a view, no copy).

    Args:
        images: a (N, ...) stack with the channels on ``channel_axis`` (of the whole array,
            negative counts from the end), or a list of images with the channels on that
            axis of each image.
        channel_axis: None leaves ``images`` as they are.

    Raises:
        ValueError: the axis does not exist, or is the slice axis of a stack.
    """
    if channel_axis is None:
        return images
    if hasattr(images, "ndim") and hasattr(images, "transpose"):  # numpy or dask: a view
        axis = check_axis(channel_axis, images.ndim, "the stack")
        if axis == 0:
            raise ValueError("channel axis 0 is the slice axis: give the axis of the channels")
        return np.moveaxis(images, axis, -1)
    out = []
    for i, image in enumerate(images):
        image = image if hasattr(image, "transpose") else np.asarray(image)  # lazy stays lazy
        out.append(np.moveaxis(image, check_axis(channel_axis, image.ndim, f"image {i}"), -1))
    return out


def check_axis(axis: int, ndim: int, what: str) -> int:
    if not -ndim <= axis < ndim or ndim < 3:
        raise ValueError(
            f"channel axis {axis} does not fit {what} of {ndim} dimensions: give the axis of "
            "the channels (e.g. 1 for a (N, C, Y, X) stack)"
        )
    return axis % ndim


def parse_channels(text: str | None) -> tuple[int, ...] | None:
    """``"0,1,2"`` → (0, 1, 2); None or ``""`` → None (the default rule).

    Raises:
        ValueError: not three whole numbers >= 0.
    """
    if text is None or not text.strip():
        return None
    try:
        chosen = tuple(int(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        chosen = ()
    if len(chosen) != 3 or min(chosen) < 0:
        raise ValueError(
            f"option channels={text!r}: give three channel indices >= 0, e.g. channels=0,1,2"
        )
    return chosen


def channel_rule(count: int, chosen: Sequence[int] | None = None) -> str:
    """How :func:`to_three` shows ``count`` channels to a backbone, in words."""
    if chosen is not None:
        return f"channels {', '.join(map(str, chosen))} as RGB (option channels)"
    if count == 1:
        return "the single channel three times"
    if count == 2:
        return "channels 0, 1 and their mean as RGB"
    return "channels 0, 1, 2 as RGB" + (f" ({count - 3} more unused)" if count > 3 else "")


def to_three(image: np.ndarray, chosen: Sequence[int] | None = None) -> np.ndarray:
    """(H, W, C) → (H, W, 3) for a 3-channel backbone, by the rule of this module.

    Raises:
        ValueError: a chosen channel does not exist.
    """
    count = image.shape[-1]
    if chosen is not None:
        if max(chosen) >= count:
            raise ValueError(
                f"option channels={','.join(map(str, chosen))}: the image has {count} "
                f"channel(s), 0..{count - 1}"
            )
        return image[..., list(chosen)]
    if count == 1:
        return np.repeat(image, 3, axis=-1)
    if count == 2:
        return np.concatenate([image, image.mean(-1, keepdims=True)], axis=-1)
    return image[..., :3]
