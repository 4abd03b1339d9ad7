"""Images with any number of channels: classic uses all, the model backends see three."""

from __future__ import annotations

import numpy as np
import pytest

from src_models.channels import channel_rule, parse_channels, to_three
from src_models.engine import propagate
from src_models.sample_data import example_labels, synthetic_stack
from tests.helpers import iou
from tests.models.tiny_backends import TINY


def multichannel(channels: int, n: int = 5, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size, channels) uint16 where only the LAST channel shows the objects (the
    others are noise), and the truth."""
    image, truth = synthetic_stack(n_slices=n, size=size)
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 4000, (n, size, size, channels - 1), dtype=np.uint16)
    return np.concatenate([noise, image[..., None]], axis=-1), truth


def test_the_three_channel_rule() -> None:
    image = np.arange(2 * 2 * 5, dtype=np.float32).reshape(2, 2, 5)
    np.testing.assert_array_equal(to_three(image[..., :1]), np.repeat(image[..., :1], 3, -1))
    two = to_three(image[..., :2])
    np.testing.assert_array_equal(two[..., 2], image[..., :2].mean(-1))
    np.testing.assert_array_equal(to_three(image), image[..., :3])
    np.testing.assert_array_equal(to_three(image, (4, 0, 2)), image[..., [4, 0, 2]])
    assert "more unused" in channel_rule(5) and "mean" in channel_rule(2)
    with pytest.raises(ValueError, match="the image has 5 channel"):
        to_three(image, (0, 1, 5))
    assert parse_channels(" 0, 1,4 ") == (0, 1, 4) and parse_channels(None) is None
    for bad in ("0,1", "a,b,c", "0,1,-1"):
        with pytest.raises(ValueError, match="three channel indices"):
            parse_channels(bad)


@pytest.mark.parametrize("channels", [2, 4, 5])
def test_classic_uses_every_channel(channels: int) -> None:
    image, truth = multichannel(channels)

    def mean_iou(pixels: np.ndarray) -> float:
        results = list(propagate(pixels, example_labels(truth, 2), TINY["classic"]({})))
        assert len(results) == 4
        return float(np.mean([iou(r.labels == 1, truth[r.index] == 1) for r in results]))

    assert mean_iou(image) > 0.8  # the objects are only in the last channel
    if channels > 2:
        assert mean_iou(image[..., :-1]) < 0.5  # without it: noise


class SpyEncoder:
    """The backend's encoder, recording every image it is given."""

    def __init__(self, encoder) -> None:  # noqa: ANN001
        self.encoder, self.seen = encoder, []

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.encoder, name)

    def __call__(self, image, timer):  # noqa: ANN001, ANN204
        self.seen.append(image)
        return self.encoder(image, timer)

    def encode_batch(self, images, timer):  # noqa: ANN001, ANN201
        self.seen.extend(images)
        return self.encoder.encode_batch(images, timer)


def _spy_encoder(backend) -> list[np.ndarray]:  # noqa: ANN001
    backend.encoder = SpyEncoder(backend.encoder)
    return backend.encoder.seen


@pytest.mark.parametrize("channels", [2, 4, 5])
def test_a_dino_backend_sees_three_channels_by_the_rule(channels: int) -> None:
    image, truth = multichannel(channels)
    backend = TINY["dinov2"]({})
    seen = _spy_encoder(backend)
    results = list(propagate(image, example_labels(truth, 2), backend))
    assert len(results) == 4
    assert seen and all(s.shape[-1] == 3 for s in seen)
    first = seen[0]
    if channels == 2:
        np.testing.assert_allclose(first[..., 2], first[..., :2].mean(-1), rtol=1e-6)
    else:  # the first three: noise only, never the last channel
        assert not np.allclose(first[..., 2], first[..., 1])


def test_the_channels_option_chooses_what_the_backbone_sees() -> None:
    image, truth = multichannel(5)
    backend = TINY["dinov2"]({"channels": "4,4,4"})
    seen = _spy_encoder(backend)
    list(propagate(image, example_labels(truth, 2), backend, targets=[1]))
    assert all(np.array_equal(s[..., 0], s[..., 2]) for s in seen)
    assert backend.feature_key != TINY["dinov2"]({}).feature_key  # cached features differ
    with pytest.raises(ValueError, match="the image has 5 channel"):
        list(propagate(image, example_labels(truth, 2), TINY["dinov2"]({"channels": "0,1,7"})))
    with pytest.raises(ValueError, match="three channel indices"):
        TINY["dinov2"]({"channels": "0,1"})


def test_channel_axis_moves_the_channels_and_allows_many() -> None:
    image, truth = multichannel(4)
    labels = example_labels(truth, 2)
    last = [r.labels for r in propagate(image, labels, TINY["classic"]({}))]
    first = np.moveaxis(image, -1, 1)  # (N, C, Y, X)
    moved = [r.labels for r in propagate(first, labels, TINY["classic"]({}), channel_axis=1)]
    for a, b in zip(last, moved, strict=True):
        np.testing.assert_array_equal(a, b)
    many, truth = multichannel(20, n=3, size=32)
    with pytest.raises(ValueError, match="give channel_axis"):
        list(propagate(many, example_labels(truth, 1), TINY["classic"]({})))
    results = list(propagate(many, example_labels(truth, 1), TINY["classic"]({}), channel_axis=-1))
    assert len(results) == 2
    with pytest.raises(ValueError, match="slice axis"):
        list(propagate(first, labels, TINY["classic"]({}), channel_axis=0))


def test_cli_channel_axis(tmp_path) -> None:  # noqa: ANN001
    import tifffile

    from src_models.cli import main

    image, truth = multichannel(5)
    tifffile.imwrite(tmp_path / "image.tif", np.moveaxis(image, -1, 1))  # (N, C, Y, X)
    tifffile.imwrite(tmp_path / "labels.tif", example_labels(truth, 2))
    args = ["propagate", str(tmp_path / "image.tif"), "--labels", str(tmp_path / "labels.tif")]
    fast = ["--option", "sigma_max=4", "--option", "texture=false", "--quiet"]
    out = tmp_path / "out.tif"
    assert main([*args, "--out", str(out), "--channel-axis", "1", *fast]) == 0
    result = tifffile.imread(out)
    assert result.shape == truth.shape
    assert min(iou(result[i] == 1, truth[i] == 1) for i in (0, 1, 3, 4)) > 0.8
