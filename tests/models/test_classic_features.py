"""classic's OpenCV filter bank against a plain scipy reference, its channel chunking, and the
forests' cascade (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from sklearn.ensemble import RandomForestClassifier

from src_models.backends import classic
from src_models.backends.classic_features import filter_bank, upsample_grid


def _eig(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
    root = np.sqrt(((a - c) / 2) ** 2 + b**2)
    return [(a + c) / 2 + root, (a + c) / 2 - root]


def _reference(img: np.ndarray, sigma: float, finer: np.ndarray) -> list[np.ndarray]:
    """One scale of the bank for one (H, W) channel, written with scipy and np.gradient."""
    smooth = ndi.gaussian_filter(img, sigma)
    dy, dx = np.gradient(smooth)
    hyy, hxy = np.gradient(dy)
    hxx = np.gradient(dx, axis=1)
    gy, gx = np.gradient(finer)
    tensor = [ndi.gaussian_filter(p, sigma) for p in (gy * gy, gy * gx, gx * gx)]
    return [
        smooth,
        (hyy + hxx) * sigma**2,
        *(e * sigma**2 for e in _eig(hyy, hxy, hxx)),
        np.hypot(dy, dx) * sigma,
        smooth - finer,
        *(e * sigma for e in _eig(*tensor)),
    ]


def _image(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Blobs of several sizes plus noise, float64 (H, W)."""
    rng = np.random.default_rng(seed)
    img = ndi.gaussian_filter(rng.random(shape), 4) * 8 + ndi.gaussian_filter(rng.random(shape), 1)
    return img + 0.05 * rng.random(shape)


def test_full_resolution_scales_equal_scipy_inside_the_border() -> None:
    img = _image((64, 72))
    scales = [0.7, 1.0, 1.6]
    got = filter_bank(img[..., None].astype(np.float32), scales).reshape(64, 72, 3, 8)
    finer, inner = img, (slice(12, -12), slice(12, -12))  # the border conventions differ
    for k, sigma in enumerate(scales):
        expected = _reference(img, sigma, finer)
        finer = expected[0]
        for j, feat in enumerate(expected):
            scale = np.abs(feat[inner]).max()
            np.testing.assert_allclose(got[(*inner, k, j)], feat[inner], atol=1e-3 * scale)


def test_coarse_scales_stay_close_to_the_full_resolution_filters() -> None:
    img = _image((96, 104), seed=1)
    got = filter_bank(img[..., None].astype(np.float32), [5.0]).reshape(96, 104, 8)
    inner = (slice(24, -24), slice(24, -24))
    expected = _reference(img, 5.0, img)[0]  # the smoothed image, from a 2× coarser grid
    error = np.abs(got[..., 0] - expected)[inner].max()
    assert error < 0.02 * np.ptp(expected[inner]), error


def test_a_sigma_range_without_a_scale_is_refused_with_what_to_do() -> None:
    from src_models.backends.classic import ClassicBackend, ClassicConfig

    with pytest.raises(ValueError, match="widen the range"):
        ClassicBackend(ClassicConfig(sigma_min=2.0, sigma_max=3.0)).compute_features(
            np.zeros((20, 20, 1), np.float32)
        )


def test_more_channels_than_opencv_takes_at_once() -> None:
    image = np.random.default_rng(4).random((24, 20, 130), dtype=np.float32)
    scales = [1.0]
    together = filter_bank(image, scales).reshape(24, 20, 130, -1)
    for ch in (0, 127, 128, 129):
        alone = filter_bank(image[..., ch : ch + 1], scales)
        np.testing.assert_allclose(together[..., ch, :], alone, rtol=1e-5, atol=1e-6)


def test_upsample_grid_is_exact_on_the_grid_and_linear_between() -> None:
    coarse = np.random.default_rng(5).random((5, 7, 3)).astype(np.float32)
    up = upsample_grid(coarse, 2, (10, 13))
    assert up.shape == (10, 13, 3)
    np.testing.assert_allclose(up[::2, ::2], coarse, atol=1e-6)
    np.testing.assert_allclose(up[1, 2], (coarse[0, 1] + coarse[1, 1]) / 2, atol=1e-2)
    np.testing.assert_allclose(up[9, 12], coarse[4, 6], atol=1e-6)  # held beyond the last row


@pytest.mark.parametrize("shape", [(12, 17), (13, 16)])
def test_grid_proba_predicts_every_other_pixel(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(shape[0] * shape[1], 4)).astype(np.float32)
    forest = RandomForestClassifier(5, max_depth=5, random_state=0).fit(x, x[:, 0] > 0)
    got = classic.grid_proba(forest, x[:, :3], x[:, 3:], shape)
    assert got.shape == (*shape, 2) and got.dtype == np.float32
    full = forest.predict_proba(x).reshape(*shape, 2)
    np.testing.assert_allclose(got[::2, ::2], full[::2, ::2], atol=1e-6)
    # off the grid it is what the neighbours say, not the forest's own answer
    assert not np.allclose(got[1::2, 1::2], full[1::2, 1::2])


def _forest_on(image: np.ndarray, truth: np.ndarray) -> tuple[RandomForestClassifier, np.ndarray]:
    from src_models.backends.classic_features import ilastik_scales

    x = filter_bank(image[..., None], ilastik_scales(0.7, 3.5)).reshape(-1, 32)
    forest = RandomForestClassifier(16, max_depth=12, random_state=0)
    return forest.fit(x, truth.ravel()), x


@pytest.mark.parametrize("scene", ["disc", "thin line"])
def test_the_cascade_equals_every_tree_at_a_fraction_of_the_work(
    scene: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:90, :110]
    if scene == "disc":
        truth = (yy - 40) ** 2 + (xx - 60) ** 2 < 25**2
    else:  # one pixel wide and diagonal: a grid of every other row and column never meets it
        truth = (yy == xx + 1) & (xx > 10) & (xx < 80)
    image = (truth + rng.normal(0, 0.1, truth.shape)).astype(np.float32)
    forest, x = _forest_on(image, truth)
    rows: list[int] = []
    tree_sum = classic._tree_sum

    def counted(trees: list, x: np.ndarray, n_classes: int) -> np.ndarray:
        rows.append(len(trees) * len(x))
        return tree_sum(trees, x, n_classes)

    monkeypatch.setattr(classic, "_tree_sum", counted)
    got = classic.forest_proba(forest, x[:, :30], x[:, 30:], cascade=True)
    full = forest.predict_proba(x)
    np.testing.assert_array_equal(got.argmax(-1), full.argmax(-1))
    assert sum(rows) < 0.5 * 16 * truth.size, rows  # every row meets 4 of the 16 trees
    unsure = got.max(-1) < classic.SURE  # every tree saw these rows: the forest's answer
    assert unsure.any()
    np.testing.assert_allclose(got[unsure], full[unsure], atol=1e-12)
