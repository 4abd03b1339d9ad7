"""INSID3 steps against the official code (golden file of scripts/parity/insid3_parity.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src_models.backbones.dinov2 import PatchEncoder
from src_models.backbones.dinov3 import create_dinov3, has_qkv_bias, load_dinov3_weights
from src_models.backends.configs import Insid3Config
from src_models.backends.insid3 import Insid3Backend, PositionalDebias
from src_models.config import build_config
from src_models.heads import insid3 as head
from src_models.heads import insid3_debias as debiasing
from src_models.types import Example
from tests.models.test_parity_dino import official_state
from tests.parity import load_golden, rel_err

TOL = 1e-5


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, np.ndarray], dict]:
    return load_golden("insid3")


@pytest.fixture(scope="module")
def encoder() -> PatchEncoder:
    """The golden's tiny DINOv3 (same seeded weights as dinov3_vits16.npz) at 256 px."""
    arrays, meta = load_golden("dinov3_vits16")
    state = official_state(arrays, meta)
    model = create_dinov3(
        "vits16", qkv_bias=has_qkv_bias(state), depth=2, embed_dim=64, num_heads=2
    )
    load_dinov3_weights(model, state, "golden")
    return PatchEncoder(model.eval(), 256, torch.device("cpu"), torch.float32)


def hwc(chw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(chw, 0, -1))


def projector(basis: np.ndarray) -> np.ndarray:
    return basis.astype(np.float64) @ basis.T.astype(np.float64)


def test_positional_basis_is_the_black_image_basis(golden, encoder) -> None:
    arrays, meta = golden
    k = meta["svd_components"]
    debias = PositionalDebias(encoder, "golden", on_disk=False)
    basis = debias.basis((16, 16))[:, :k]
    expected = projector(arrays["basis"])
    # the 20th singular values are ~1e-4 apart with tiny random weights, so the subspace's
    # edge moves with float32 rounding: 9.9e-5 and 2.2e-4 measured on two CPUs (docs/parity.md)
    assert np.abs(projector(basis) - expected).max() <= 1e-3
    # the former mid-grey estimate spans another subspace
    grey = encoder.model.forward_features(torch.zeros(1, 3, 256, 256))[0, 5:]
    grey_tokens = debiasing.unit(grey).reshape(16, 16, -1).detach().numpy()
    grey_basis = debiasing.positional_basis(grey_tokens)[0]
    assert np.abs(projector(grey_basis[:, :k]) - expected).max() > 1e-2


def test_debias_prototype_candidates_clusters(golden) -> None:
    arrays, meta = golden
    k = meta["svd_components"]
    feats = [hwc(f) for f in arrays["features"]]
    deb = [debiasing.debias(f, arrays["basis"], k) for f in feats]
    assert max(rel_err(d, hwc(e)) for d, e in zip(deb, arrays["debiased"], strict=True)) <= TOL
    masks = [np.repeat(np.repeat(m, 2, 0), 2, 1) for m in arrays["masks"][:2]]
    patch = [head.patch_mask(m, (16, 16)) for m in masks]
    proto = head.prototype(deb[:2], patch)
    assert rel_err(proto, arrays["prototype"]) <= TOL
    cand = head.candidates(deb[2], deb[:2], patch, proto)
    np.testing.assert_array_equal(cand, arrays["candidates"])
    clusters = head.cluster_patches(feats[2], meta["tau"])
    pairs = set(zip(clusters.ravel().tolist(), arrays["clusters"].ravel().tolist(), strict=True))
    assert len(pairs) == clusters.max() + 1 == arrays["clusters"].max() + 1  # same partition


def test_reference_patch_rule_with_fallbacks(golden) -> None:
    arrays, _ = golden
    for mask, expected in zip(arrays["rule_masks"], arrays["rule_patch"], strict=True):
        np.testing.assert_array_equal(head.patch_mask(mask, (16, 16)), expected)
    # at the original size, the mask is first resized (nearest) to the input size
    small = arrays["rule_masks"][0][::2, ::2]
    np.testing.assert_array_equal(
        head.patch_mask(small, (16, 16), (256, 256)), arrays["rule_patch"][0]
    )


def test_backend_mask_equals_official(golden, encoder) -> None:
    """The whole backend (refine=false, no negative filter) gives the official mask."""
    arrays, meta = golden
    options = {
        "input_size": 256,
        "debias_components": meta["svd_components"],
        "tau": meta["tau"],
        "refine": False,
        "negative_filter": False,
    }
    config = build_config(Insid3Config, options, owner="dinov3-insid3")
    backend = Insid3Backend(encoder, config, PositionalDebias(encoder, "golden", on_disk=False))
    images = [
        np.repeat(np.repeat(i, 2, 0), 2, 1).astype(np.float32) / 255 for i in arrays["images"]
    ]
    masks = [np.repeat(np.repeat(m, 2, 0), 2, 1) for m in arrays["masks"]]
    feats = [backend.compute_features(i) for i in images]
    backend.fit([Example(i, feats[i], masks[i].astype(np.int32)) for i in range(2)])
    labels, confidence = backend.predict(feats[2], (256, 256))
    assert arrays["pred"].sum() > 0
    np.testing.assert_array_equal(labels == 1, arrays["pred"])
    assert confidence.min() >= 0 and confidence.max() <= 1


def test_basis_of_a_bf16_encoder_is_computed_in_float32(encoder) -> None:
    """bf16 rounding of the black image's tokens would swamp their small positional part;
    the basis of a bf16 encoder stays close to the float32 one (weights rounded only)."""
    import copy

    half = PatchEncoder(copy.deepcopy(encoder.model), 256, torch.device("cpu"), torch.bfloat16)
    b16 = PositionalDebias(half, "golden-bf16", on_disk=False).basis((16, 16))[:, :10]
    b32 = PositionalDebias(encoder, "golden", on_disk=False).basis((16, 16))[:, :10]
    assert np.abs(projector(b16) - projector(b32)).max() < 0.02
    assert half.model.cls_token.dtype == torch.bfloat16  # the encoder itself stays bf16
