"""Fixtures shared by the model and plugin tests."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.helpers import disks_image


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a test on one torch thread and restore the previous count afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def disks() -> tuple[np.ndarray, np.ndarray]:
    return disks_image()


@pytest.fixture
def geometry_stack(
    disks: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slice 0 is the example; 1 = the same image, 2 = shifted, 3 = flipped left-right.

    Returns image (4, Y, X) float32, example labels (4, Y, X) and ground truth (4, Y, X).
    """
    image, labels = disks

    def shift(a: np.ndarray) -> np.ndarray:
        return np.roll(a, (14, -9), (0, 1))

    stack = np.stack([image, image, shift(image), image[:, ::-1]])
    truth = np.stack([labels, labels, shift(labels), labels[:, ::-1]])
    examples = np.zeros_like(truth)
    examples[0] = labels
    return stack, examples, truth
