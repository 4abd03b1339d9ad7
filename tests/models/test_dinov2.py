"""The dinov2 backend with random weights, and DINOv2 weight loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src_models.backbones.dinov2 import PatchEncoder, build_dinov2, to_model_input
from src_models.backends.dinov2 import Dinov2Backend
from src_models.cache import FeatureCache
from src_models.device import pick_dtype
from src_models.engine import propagate
from src_models.registry import build_backend
from src_models.weights import ENV_DIR
from tests.helpers import iou


@pytest.fixture(scope="module")
def backend():
    return build_backend("dinov2", weights="random", device="cpu", dtype="float32")


def test_identity_shift_and_flip_return_the_mask(backend, geometry_stack) -> None:
    stack, examples, truth = geometry_stack
    results = {r.index: r for r in propagate(stack, examples, backend)}
    assert iou(results[1].labels == 1, truth[1] == 1) >= 0.95  # the example itself
    for index in (2, 3):  # shifted, flipped
        assert iou(results[index].labels == 1, truth[index] == 1) >= 0.9, index
    assert set(np.unique(results[1].labels)) == {0, 1, 2}


def test_backbone_time_is_reported_and_features_are_cached(backend, geometry_stack) -> None:
    stack, examples, _ = geometry_stack
    cache = FeatureCache()
    first = list(propagate(stack, examples, backend, cache=cache))
    fresh = [r for r in first if not r.timings["cached"]]
    assert fresh and all(0 < r.timings["backbone"] <= r.timings["features"] for r in fresh)
    list(propagate(stack, examples, backend, cache=cache))
    assert cache.misses == 3 and cache.hits >= 4  # slices 0 and 1 are the same image


def test_model_input_keeps_aspect_and_patch_multiple() -> None:
    x = to_model_input(np.zeros((100, 50, 1), np.float32), longest=518, patch=14)
    assert x.shape[:2] == (1, 3) and x.shape[2] % 14 == 0 and x.shape[3] % 14 == 0
    assert abs(x.shape[2] / x.shape[3] - 2.0) < 0.1
    assert abs(max(x.shape[2:]) - 518) <= 7


def test_bf16_tokens_match_fp32() -> None:
    model = build_dinov2("vits14", "random")
    image = np.random.default_rng(0).random((56, 56, 3)).astype(np.float32)
    full = PatchEncoder(model, 112, torch.device("cpu"), torch.float32)(image)
    half = PatchEncoder(build_dinov2("vits14", "random"), 112, torch.device("cpu"), torch.bfloat16)
    half.model.load_state_dict(model.state_dict())
    cos = (full * half(image)).sum(-1)
    assert full.shape == (8, 8, 384) and cos.mean() > 0.99
    assert pick_dtype("float32", torch.device("cpu")) == torch.float32


def _official_checkpoint(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A random DINOv2 ViT-S/14 saved in the official (facebookresearch) key layout."""
    model = build_dinov2("vits14", "random")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["mask_token"] = torch.zeros(1, 384)  # only the official file has it
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    return path, model


def test_official_checkpoint_loads_by_path_and_env_dir(tmp_path: Path, monkeypatch) -> None:
    path, reference = _official_checkpoint(tmp_path)
    image = np.random.default_rng(1).random((28, 28, 1)).astype(np.float32)
    expected = PatchEncoder(reference, 56, torch.device("cpu"), torch.float32)(image)
    by_path = build_dinov2("vits14", path)
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    by_env = build_dinov2("vits14", None)
    for model in (by_path, by_env):
        tokens = PatchEncoder(model, 56, torch.device("cpu"), torch.float32)(image)
        np.testing.assert_allclose(tokens, expected, atol=1e-5)


def test_missing_weights_say_how_to_get_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_DIR, str(tmp_path))
    monkeypatch.setattr("src_models.weights.cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr("src_models.weights._hf_cached", lambda spec: None)
    with pytest.raises(RuntimeError, match="weights download dinov2_vits14"):
        build_backend("dinov2", device="cpu")
    with pytest.raises(RuntimeError, match="does not exist"):
        build_backend("dinov2", device="cpu", weights=tmp_path / "nope.pth")


def test_wrong_or_corrupt_file_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot load"):
        build_dinov2("vits14", bad)
    other = tmp_path / "other_size.pth"
    state = build_dinov2("vits14", "random").state_dict()
    state["norm.weight"] = torch.ones(768)  # as in a ViT-B/14 file
    torch.save(state, other)
    with pytest.raises(RuntimeError, match="does not fit"):
        build_dinov2("vits14", other)


def test_a_replaced_model_never_shares_cached_features(backend) -> None:
    other = build_backend("dinov2", weights="random", device="cpu", dtype="float32")
    assert other.feature_key != backend.feature_key  # another random init: other features
    same_model = Dinov2Backend(backend.encoder, backend.config)
    assert same_model.feature_key == backend.feature_key  # the same model keeps its features
