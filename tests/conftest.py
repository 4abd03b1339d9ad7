"""Fixtures shared by the model and plugin tests."""

from __future__ import annotations

import faulthandler
from collections.abc import Iterator

import numpy as np
import pytest

from tests.helpers import disks_image

TEST_DEADLINE_S = 900


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Kill the run, with every thread's stack, when one test hangs for 15 minutes.

    faulthandler's watchdog is C code, so it fires even when a deadlocked thread holds the
    GIL (Python-level timeouts cannot): a hang fails CI with stacks instead of eating its limit.
    """
    faulthandler.dump_traceback_later(TEST_DEADLINE_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a test on one torch thread and restore the previous count afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def test_tiny_sam(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the test-only SAM architecture ``test_tiny`` for this test (name, options and
    builders accept it); production knows only vit_b/l/h."""
    from typing import Literal, get_args

    from src_models.backends import configs
    from src_models.sam.build import SAM_ARCHS
    from tests.models.tiny_backends import TEST_TINY_SAM

    monkeypatch.setitem(SAM_ARCHS, "test_tiny", TEST_TINY_SAM)
    names = (*get_args(configs.SamModel), "test_tiny")
    monkeypatch.setattr(configs, "SamModel", Literal[names])
    return "test_tiny"


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
