"""SEGIC fine-tuning: episodes, augmentations, loss, a tiny run that learns, resumable state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src_models.heads.segic import build_segic_decoder, load_segic_weights, save_segic_weights
from src_models.heads.segic_data import EpisodeSource, augment, sample_episode
from src_models.heads.segic_loss import importance_points, mask_loss
from src_models.heads.segic_train import SegicTrainConfig, Trainer, sidecar_path, train_segic
from src_models.inputs import prepare
from src_models.types import Example
from tests.helpers import iou
from tests.models.segic_helpers import SIZE, tiny_backend, tiny_decoder, tiny_vit, wide_stack

FAST = {
    "batch_size": 2,
    "num_points": 256,
    "min_area": 20,
    "augment": "none",
    "box_prob": 0.0,
    "decay_every": 10**6,
}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Tiny SEGIC models: thread start-up costs more than the work."""


@pytest.fixture(scope="module")
def data():
    image, labels = wide_stack(8)
    return prepare(image, labels)


@pytest.fixture(scope="module")
def trained(data):
    """80 steps of the tiny decoder on same-instance slice pairs; returns (decoder, losses)."""
    source = EpisodeSource(data.images, data.labels, longest=SIZE)
    trainer = Trainer(tiny_decoder(), tiny_vit(), SegicTrainConfig(steps=80, lr=3e-3, **FAST))
    losses = [p["loss"] for p in train_segic(trainer, source)]
    return trainer.decoder.eval(), losses


def test_tiny_training_run_loss_falls(trained) -> None:
    _, losses = trained
    first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
    assert len(losses) == 80
    assert last < 0.7 * first, (first, last)


def _identity_ious(decoder, data) -> list[float]:
    backend = tiny_backend(decoder)
    feats = backend.compute_features(data.images[3])
    backend.fit([Example(3, feats, data.labels[3])])
    labels, _ = backend.predict(feats, data.labels[3].shape)
    return [iou(labels == k, data.labels[3] == k) for k in (1, 2)]


def test_geometric_identity_after_training(trained, data) -> None:
    """Target = example through the whole backend (preprocess, pad, crop, resize, non-square).

    An untrained decoder gives an arbitrary mask; after the tiny run both objects of the
    example are recovered on the example itself. A misaligned pipeline (flip, transposed
    coordinates, wrong crop of the padding) could not reach this on a 64 × 48 image.
    """
    trained_ious = _identity_ious(trained[0], data)
    untrained_ious = _identity_ious(tiny_decoder(), data)
    assert min(trained_ious) > 0.6, trained_ious
    assert min(trained_ious) > max(untrained_ious) + 0.2, (trained_ious, untrained_ious)


def test_stop_and_resume_reproduce_an_uninterrupted_run(data, tmp_path: Path) -> None:
    source = EpisodeSource(data.images, data.labels, longest=SIZE)
    config = SegicTrainConfig(steps=4, lr=1e-3, **{**FAST, "num_points": 64, "batch_size": 1})
    straight = Trainer(tiny_decoder(), tiny_vit(), config)
    list(train_segic(straight, source))

    out = tmp_path / "ft.pth"
    first = Trainer(tiny_decoder(), tiny_vit(), config)
    run = train_segic(first, source, out)
    assert [next(run)["step"], next(run)["step"]] == [1, 2]
    run.close()  # stopped at a yield: the checkpoint is written
    assert out.is_file() and sidecar_path(out).is_file()
    second = Trainer(tiny_decoder(seed=5), tiny_vit(), config)
    steps = [p["step"] for p in train_segic(second, source, out, resume=True)]
    assert steps == [3, 4]
    for key, value in straight.decoder.state_dict().items():
        assert torch.allclose(second.decoder.state_dict()[key], value, atol=1e-6), key
    fresh = tiny_decoder(seed=9)
    load_segic_weights(fresh, out)  # the checkpoint is in the released (strict) format


def test_episodes_pair_same_ids_and_respect_gap(data) -> None:
    source = EpisodeSource(data.images, data.labels, max_gap=1, longest=SIZE)
    assert all(abs(i - j) == 1 and shared == [1, 2] for i, j, shared in source.pairs)
    rng = np.random.default_rng(0)
    episode = sample_episode(source, rng, "instance", max_objects=2, min_area=20)
    assert episode.ref_image.shape[0] == 1  # gray stays one channel until the backbone input
    assert episode.ref_masks.shape[1:] == episode.ref_image.shape[1:]
    assert episode.ref_masks.shape[0] == episode.tgt_masks.shape[0] >= 1
    with pytest.raises(ValueError, match="no training pair"):
        EpisodeSource([data.images[0]], [data.labels[0]])


@pytest.mark.parametrize("mode", ["instance", "semantic"])
def test_augmentations_move_image_and_masks_together(mode: str) -> None:
    rng = np.random.default_rng(1)
    masks = torch.zeros(2, 40, 30)
    masks[0, 5:20, 3:12], masks[1, 25:35, 10:25] = 1, 1
    image = (0.1 + 0.8 * masks[0] + 0.4 * masks[1])[None]  # the masks drawn into the image
    changed = 0
    for _ in range(8):
        out, out_masks = augment(image, masks, rng, mode)
        assert out.shape == image.shape and out_masks.shape == masks.shape
        assert set(torch.unique(out_masks).tolist()) <= {0.0, 1.0}
        assert float(out.min()) >= 0 and float(out.max()) <= 1
        changed += not torch.equal(out_masks, masks)
        first, second = out_masks[0] > 0, out_masks[1] > 0
        background = ~(first | second)
        if first.sum() > 4 and second.sum() > 4 and background.sum() > 4:
            # each object stays where the image shows it (order kept by brightness/contrast)
            assert out[0][first].mean() > out[0][second].mean() > out[0][background].mean()
    assert changed >= 4, "the augmentation hardly ever changed anything"
    a = augment(image, masks, np.random.default_rng(5), mode)
    b = augment(image, masks, np.random.default_rng(5), mode)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # reproducible from the rng


def test_point_loss_is_small_for_a_correct_mask_and_points_follow_uncertainty() -> None:
    target = torch.zeros(1, 1, 64, 64)
    target[..., 16:48, 16:48] = 1
    good = (target[..., ::4, ::4] * 2 - 1) * 20
    assert float(mask_loss(good, target, 512, importance=0.0)) < 0.1  # uniform points
    assert float(mask_loss(good, target, 512)) < 0.3  # points crowd on the (blurred) boundary
    assert float(mask_loss(-good, target, 512)) > 1.5
    logits = torch.full((1, 1, 16, 16), 10.0)
    logits[..., :, 8:] = 0.0  # uncertain right half
    points = importance_points(logits, 400, 3.0, 0.75)
    assert points.shape == (1, 400, 2) and bool(((points >= 0) & (points <= 1)).all())
    assert float((points[0, :300, 0] > 0.5).float().mean()) > 0.95


def test_train_command_from_a_released_format_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--init NAME goes through the weights manager; lr 0 leaves the weights unchanged."""
    from src_models.cli import main
    from tests.models.segic_helpers import wide_stack as stack

    image, labels = stack(3)
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "lab.npy", labels)
    torch.manual_seed(0)
    init = build_segic_decoder(feat_dim=384, input_size=SIZE)
    save_segic_weights(init, tmp_path / "segic_dinov2_l_80kx12e.pth")
    monkeypatch.setenv("NAPARI_INCONTEXT_WEIGHTS", str(tmp_path))
    out = tmp_path / "ft.pth"
    args = [
        "train-segic",
        str(tmp_path / "img.npy"),
        "--labels",
        str(tmp_path / "lab.npy"),
        "--out",
        str(out),
        "--init",
        "segic_dinov2_l_80kx12e",
        "--backbone",
        "vits14",
        "--weights",
        "random",
        "--input-size",
        str(SIZE),
        "--steps",
        "1",
        "--batch-size",
        "1",
        "--num-points",
        "64",
        "--min-area",
        "20",
        "--lr",
        "0",
        "--device",
        "cpu",
        "--quiet",
    ]
    assert main(args) == 0
    state = torch.load(out, map_location="cpu", weights_only=True)
    for key, value in init.state_dict().items():
        assert torch.equal(state[key], value), key
    assert main(args) == 2  # refuses to overwrite without --overwrite
