"""What every frozen image encoder shares: device/dtype placement, a timed forward, ImageNet
normalisation. The DINOv2/DINOv3 patch encoder, the SEGIC encoder and the SAM encoder
subclass :class:`TimedEncoder` and only say how to run their model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from src_models.timing import Timer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [0, 1] → ImageNet-normalised (DINOv2/DINOv3 input)."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


class TimedEncoder:
    """A frozen model on one device; its forward is timed as the stage ``stage``.

    Attributes:
        model: the frozen module (eval mode, no grad), on ``device``.
        device: torch device.
        dtype: dtype of the part that runs in reduced precision (``cast``; default the model).
        stage: timer stage name of the forward (``backbone`` unless a subclass says otherwise).
    """

    stage = "backbone"

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        cast: nn.Module | None = None,
    ) -> None:
        self.model = model.to(device).eval().requires_grad_(False)
        (cast if cast is not None else self.model).to(dtype=dtype)
        self.device = device
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> Any:
        """Run the model on a batch already on ``device`` in ``dtype``."""
        raise NotImplementedError

    @torch.inference_mode()
    def timed_forward(self, x: torch.Tensor, timer: Timer) -> Any:
        """Move ``x`` to the device/dtype and run :meth:`forward`, timed as ``stage``."""
        x = x.to(self.device, self.dtype)
        with timer(self.stage, self.device):
            return self.forward(x)

    @torch.inference_mode()
    def timed_forward_batch(self, inputs: Sequence[torch.Tensor], timer: Timer) -> list[Any]:
        """:meth:`timed_forward` on (1, ...) inputs, those of one shape in one batch.

        Returns:
            Per input, in order, its rows of the forward's output (a (1, ...) tensor).
        """
        out: list[Any] = [None] * len(inputs)
        for indices in same_shape_groups([tuple(x.shape) for x in inputs]):
            result = self.timed_forward(torch.cat([inputs[i] for i in indices]), timer)
            for row, i in enumerate(indices):
                out[i] = result[row : row + 1]
        return out


def same_shape_groups(shapes: Sequence[tuple[int, ...]]) -> list[list[int]]:
    """Indices of ``shapes`` grouped by equal shape, groups in order of first appearance."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(shape, []).append(i)
    return list(groups.values())
