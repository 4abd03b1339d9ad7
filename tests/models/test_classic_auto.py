"""classic's filter bank, Lab colour, class balance and automatic choices (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest

from src_models.backends import classic as classic_module
from src_models.backends import classic_features
from src_models.backends.classic import ClassicBackend, ClassicConfig, pixel_features
from src_models.backends.classic_features import (
    CHROMA_FILTERS,
    filter_bank,
    ilastik_scales,
    to_lab,
)
from src_models.engine import propagate
from src_models.sample_data import example_labels, synthetic_stack
from tests.helpers import iou


def test_filter_bank_shape_dtype_and_determinism() -> None:
    image = np.random.default_rng(0).random((70, 90, 2), dtype=np.float32)
    scales = ilastik_scales(0.7, 10.0)
    feats = filter_bank(image, scales)
    assert scales == [0.7, 1.0, 1.6, 3.5, 5.0, 10.0]
    assert feats.shape == (70, 90, 2 * len(scales) * 8) and feats.dtype == np.float32
    assert np.isfinite(feats.astype(np.float32)).all()
    np.testing.assert_array_equal(feats, filter_bank(image.copy(), scales))
    # one filter kind gives one feature per scale and channel (two for the eigenvalues)
    assert filter_bank(image, scales, ("gauss",)).shape[-1] == 2 * len(scales)
    assert filter_bank(image, scales, ("hessian",)).shape[-1] == 4 * len(scales)


def test_channels_at_once_equal_one_channel_at_a_time() -> None:
    image = np.random.default_rng(2).random((67, 75, 3), dtype=np.float32)
    scales = ilastik_scales(0.7, 10.0)  # 3.5 and up: computed on 2× / 4× coarser grids
    together = filter_bank(image, scales).reshape(67, 75, 3, -1)
    for ch in range(3):
        alone = filter_bank(image[..., ch : ch + 1], scales)
        np.testing.assert_allclose(together[..., ch, :], alone, rtol=1e-5, atol=1e-6)


def test_coarse_features_upsample_as_zoom_does() -> None:
    from scipy import ndimage as ndi

    from src_models.backends.classic_features import _upsample

    coarse = np.random.default_rng(3).random((9, 13), dtype=np.float32)
    up = _upsample(coarse, 4, (34, 50))  # crops the padded edge
    zoom = ndi.zoom(coarse, 4, order=1, mode="nearest", grid_mode=True)[:34, :50]
    assert up.shape == (34, 50)
    np.testing.assert_allclose(up, zoom, atol=1e-5)


def test_rgb_goes_through_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    rgb = np.random.default_rng(1).random((40, 40, 3), dtype=np.float32)
    config = ClassicConfig(sigma_max=1.6)
    scales = ilastik_scales(config.sigma_min, config.sigma_max)
    lab = to_lab(rgb)
    # the lightness gets the full bank, the two colour channels CHROMA_FILTERS
    expected = np.concatenate(
        [filter_bank(lab[..., :1], scales), filter_bank(lab[..., 1:], scales, CHROMA_FILTERS)],
        axis=-1,
    )
    np.testing.assert_array_equal(pixel_features(rgb, config), expected)
    assert expected.shape[-1] == len(scales) * (8 + 2 * len(CHROMA_FILTERS))
    assert not np.array_equal(expected, filter_bank(rgb, scales))
    # two or four channels are not colour: no conversion
    calls: list[tuple[int, ...]] = []
    monkeypatch.setattr(classic_features, "to_lab", lambda im: calls.append(im.shape) or im)
    pixel_features(rgb[..., :2], config)
    pixel_features(np.dstack([rgb, rgb[..., :1]]), config)
    pixel_features(rgb, config)
    assert calls == [(40, 40, 3)]


def _speckles(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy 96² image with eight faint 3×3 spots (a class of under 1% of the pixels)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.5, 0.1, (96, 96)).astype(np.float32)
    labels = np.zeros((96, 96), np.int32)
    for y, x in rng.integers(4, 92, (8, 2)):
        image[y - 1 : y + 2, x - 1 : x + 2] += 0.2
        labels[y - 1 : y + 2, x - 1 : x + 2] = 1
    return image, labels


def test_class_balance_finds_a_tiny_class() -> None:
    (a, la), (b, lb) = _speckles(0), _speckles(1)

    def tiny_iou(balance: bool) -> float:
        config = ClassicConfig(
            balance=balance, sigma_max=1.6, smooth_sigma=0, n_estimators=16, context=0
        )  # one forest: a context stage lifts the unbalanced one too (0.61 → 0.73)
        (res,) = propagate([a, b], [la, None], ClassicBackend(config), warn_sparse=False)
        return iou(res.labels == 1, lb == 1)

    unbalanced, balanced = tiny_iou(False), tiny_iou(True)
    assert balanced > unbalanced + 0.08, (unbalanced, balanced)  # 0.61 → 0.74


def _choices(stack: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    config = ClassicConfig(sigma_max=1.6, n_estimators=4)
    first = next(propagate(stack, example_labels(truth, 0), ClassicBackend(config)))
    return {k[5:]: v for k, v in first.timings.items() if k.startswith("auto_")}


def test_auto_standardises_a_drifting_stack_only() -> None:
    image, truth = synthetic_stack(n_slices=6, size=64, seed=2)
    drifted = image.astype(np.float64)
    for z in range(6):
        drifted[z] = drifted[z] * (1.0 + 0.35 * z) + 3000.0 * z
    steady, drifting = _choices(image, truth), _choices(drifted, truth)
    assert steady["per_slice"] == 0.0 and drifting["per_slice"] == 1.0
    assert drifting["drift"] > steady["drift"]
    # a continuous stack is linked; position stays off with a single example slice
    assert steady["link"] == 1.0 and steady["position"] == 0.0


def test_auto_does_not_link_a_jumpy_stack_or_an_image_set() -> None:
    image, truth = synthetic_stack(n_slices=6, size=64, seed=2)
    jumpy = image.copy()
    jumpy[1::2] = jumpy[1::2, ::-1, ::-1]
    assert _choices(jumpy, truth)["link"] == 0.0
    config = ClassicConfig(sigma_max=1.6, n_estimators=4)
    first = next(propagate(list(image), list(example_labels(truth, 0)), ClassicBackend(config)))
    assert first.timings["auto_link"] == 0.0 and first.timings["auto_per_slice"] == 1.0


def test_explicit_options_are_not_overridden() -> None:
    image, truth = synthetic_stack(n_slices=4, size=64, seed=2)
    config = ClassicConfig(per_slice=False, position=False, sigma_max=1.6, n_estimators=4)
    first = next(propagate(list(image), list(example_labels(truth, 0)), ClassicBackend(config)))
    assert "auto_per_slice" not in first.timings and "auto_position" not in first.timings


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_memory_estimate_counts_the_ilastik_bank(channels: int) -> None:
    from src_models.memory import feature_bytes

    backend = ClassicBackend()
    image = np.zeros((30, 40, channels), np.float32)
    cached, _ = feature_bytes(backend, (30, 40), channels)
    assert cached == pixel_features(image, backend.config).nbytes


@pytest.mark.parametrize("lazy", [False, True])
def test_an_added_example_keeps_the_choices_and_every_cache_hit(lazy: bool) -> None:
    import dask.array as da

    from src_models.cache import FeatureCache

    image, truth = synthetic_stack(n_slices=20, size=32)
    image = image.astype(np.float32)
    image[12:] += 2.0 * float(image.std())  # the last slices drift: brighter
    stack = da.from_array(image, chunks=(1, 32, 32)) if lazy else image
    backend, cache = ClassicBackend(), FeatureCache()
    one = example_labels(truth, 0)
    two = one.copy()
    two[15] = truth[15]  # a correction on a drifted slice

    def run(labels: np.ndarray) -> tuple[dict[str, float], list[float]]:
        results = list(propagate(stack, labels, backend, cache=cache))
        return dict(backend.choices), [r.timings["cached"] for r in results if r.index != 0]

    first, _ = run(one)
    second, hits = run(two)
    assert first == second  # decided from the stack, not from where the examples are
    assert hits and all(h == 1.0 for h in hits)  # so no feature is computed again


@pytest.mark.parametrize(
    ("chooser", "value", "choice"),
    [("position_helps", True, "position"), ("choose_prior", 0.75, "prior")],
)
def test_a_skipped_fit_keeps_the_forests_choices(monkeypatch, chooser, value, choice) -> None:  # noqa: ANN001
    """Run this slice after a run (FitMemo skips the fit): the forest fitted with positions
    must be given positions again (the prior correction applied again), and the run must
    say so."""
    from src_models.engine import FitMemo

    monkeypatch.setattr(classic_module, chooser, lambda *a, **k: value)
    image, truth = synthetic_stack(n_slices=5, size=40, seed=2)
    backend, memo = ClassicBackend(ClassicConfig(sigma_max=1.6, n_estimators=4)), FitMemo()
    labels = example_labels(truth, 2)
    first = next(propagate(image, labels, backend, memo=memo, targets=[0]))
    again = next(propagate(image, labels, backend, memo=memo, targets=[0]))
    assert first.timings[f"auto_{choice}"] == again.timings[f"auto_{choice}"] == float(value)
    np.testing.assert_array_equal(first.labels, again.labels)
