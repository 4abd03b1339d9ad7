"""Validation and normalisation of images and labels."""

from __future__ import annotations

import numpy as np
import pytest

from src_models.inputs import prepare


def _stack(n: int = 3, size: int = 16, dtype: type = np.uint16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    top = 256 if dtype == np.uint8 else 4000
    images = rng.integers(0, top, (n, size, size)).astype(dtype)
    labels = np.zeros((n, size, size), np.int32)
    labels[0, 4:9, 4:9] = 1
    return images, labels


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_any_dtype_is_scaled_without_8bit_round_trip(dtype: type) -> None:
    images, labels = _stack(dtype=dtype)
    data = prepare(images, labels)
    assert data.examples == [0]
    assert all(s.dtype == np.float32 and s.shape == (16, 16, 1) for s in data.images)
    if dtype != np.uint8:
        # 16-bit detail survives: values 1 apart in the raw data stay apart after scaling
        raw = images[1].astype(np.float64).ravel()
        out = data.images[1][..., 0].ravel()
        order = np.argsort(raw)
        assert len(np.unique(out)) > 256 or len(np.unique(raw)) <= 256
        assert np.all(np.diff(out[order]) >= -1e-6)


def test_colour_stack_and_list_of_different_sizes() -> None:
    rgb = np.random.default_rng(1).integers(0, 255, (2, 10, 12, 4)).astype(np.uint8)
    labels = np.zeros((2, 10, 12), np.int32)
    labels[1, 2:5, 2:5] = 3
    data = prepare(rgb, labels)
    assert data.images[0].shape == (10, 12, 4)  # kept: model backends take the first three
    images = [np.ones((8, 9), np.float32), np.zeros((20, 7), np.float32)]
    masks = [np.pad(np.ones((2, 2), np.int32), ((0, 6), (0, 7))), None]
    data = prepare(images, masks)
    assert [s.shape for s in data.images] == [(8, 9, 1), (20, 7, 1)]
    assert data.labels[1].shape == (20, 7) and data.examples == [0]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no_examples", "no example"),
        ("shape_mismatch", "but the image is"),
        ("whole_slice", "covers the whole slice"),
        ("ndim", "unsupported image shape"),
        ("nan", "NaN or inf"),
        ("inf", "NaN or inf"),
        ("negative", "negative"),
        ("count_mismatch", "do not match"),
    ],
)
def test_bad_input_is_refused_with_a_fix(case: str, message: str) -> None:
    images, labels = _stack()
    images = images.astype(np.float32)
    if case == "no_examples":
        labels[:] = 0
    elif case == "shape_mismatch":
        labels = labels[:, :8]
    elif case == "whole_slice":
        labels[0] = 2
    elif case == "ndim":
        images = images[None, None]
    elif case == "nan":
        images[1, 3, 3] = np.nan
    elif case == "inf":
        images[2, 0, 0] = np.inf
    elif case == "negative":
        labels[0, 0, 0] = -1
    elif case == "count_mismatch":
        labels = labels[:2]
    with pytest.raises(ValueError, match=message):
        prepare(images, labels)


def test_two_ids_may_cover_a_whole_slice() -> None:
    images, labels = _stack()
    labels[0] = 1
    labels[0, :8] = 2
    assert prepare(images, labels).examples == [0]
