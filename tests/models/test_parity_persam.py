"""PerSAM and PerSAM-F against the official code (scripts/parity/persam_parity.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src_models.sam.build import SamArch, build_sam_random
from src_models.sam.persam import (
    PersamConfig,
    attention_bias,
    persam_predict,
    point_selection,
    reference_grid_mask,
    similarity_map,
    target_embedding,
)
from src_models.sam.persam_decoder import install_persam
from src_models.sam.persam_f import PersamFConfig, persam_f_predict, train_weights
from src_models.sam.predictor import SamEmbedding, SamHead
from tests.parity import load_golden, rel_err, seeded_state

TOL = 1e-5


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, np.ndarray], dict]:
    return load_golden("persam")


@pytest.fixture(scope="module")
def head(golden) -> SamHead:
    """The golden's SAM (1-block 32-wide encoder at 1024 px) with the same seeded weights."""
    _, meta = golden
    a = meta["arch"]
    arch = SamArch(
        "parity", a["embed_dim"], a["depth"], a["num_heads"], (), 1024, a["prompt_dim"],
        a["mlp"], a["heads"], 14,
    )  # fmt: skip
    sam = build_sam_random(arch)
    assert {k: list(v.shape) for k, v in sam.state_dict().items()}.keys() >= meta[
        "param_shapes"
    ].keys()
    sam.load_state_dict(seeded_state(meta["param_shapes"]), strict=False)
    sam.eval().requires_grad_(False)
    return SamHead(sam)


def embeddings(arrays: dict[str, np.ndarray]) -> tuple[SamEmbedding, SamEmbedding]:
    shape = tuple(arrays["ref_image"].shape[:2])
    size = (768, 1024)  # ResizeLongestSide(1024) of 120 × 160
    ref = SamEmbedding(arrays["ref_embedding"], size, shape)
    return ref, SamEmbedding(arrays["test_embedding"], size, shape)


def test_persam_steps_match_official(golden, head: SamHead) -> None:
    arrays, _ = golden
    ref, test = embeddings(arrays)
    context = install_persam(head.sam)
    grid = reference_grid_mask(head, ref, arrays["ref_mask"])
    np.testing.assert_array_equal(grid, arrays["ref_grid"])
    target = target_embedding(head, [ref], [arrays["ref_mask"]])
    assert rel_err(target, arrays["target_embedding"]) <= TOL
    sim = similarity_map(head, test, target)
    assert rel_err(sim, arrays["similarity"]) <= TOL
    pos, neg = point_selection(sim)
    np.testing.assert_array_equal(np.concatenate([pos, neg]), arrays["points"])
    assert rel_err(attention_bias(head, test, sim), arrays["attn_sim"]) <= TOL
    head.set_embedding(test)
    logits, score = persam_predict(head, context, test, target, sim, PersamConfig())
    np.testing.assert_array_equal(logits > 0, arrays["final_mask"])
    assert abs(score - float(arrays["final_score"])) <= TOL * max(1.0, abs(score))


def test_persam_first_decode_matches_official(golden, head: SamHead) -> None:
    """Guided attention + semantic prompt (2t on the final query) on the first decoding."""
    from src_models.sam.persam_decoder import persam_prompts

    arrays, _ = golden
    ref, test = embeddings(arrays)
    context = install_persam(head.sam)
    target = target_embedding(head, [ref], [arrays["ref_mask"]])
    head.set_embedding(test)
    attn = torch.from_numpy(arrays["attn_sim"])
    semantic = torch.from_numpy(target).reshape(1, 1, -1)
    labels = np.array([1, 0])
    with persam_prompts(context, attn, semantic):
        first = head.predict(arrays["points"], labels, multimask=False)
    assert rel_err(first.low_res[0][::4, ::4], arrays["first_low_res"]) <= TOL
    np.testing.assert_array_equal(first.logits[0] > 0, arrays["first_mask"])


def test_persam_f_fit_and_inference_match_official(golden, head: SamHead) -> None:
    arrays, meta = golden
    ref, test = embeddings(arrays)
    mask = arrays["ref_mask"]
    proto = target_embedding(head, [ref], [mask], "max_mean")
    config = PersamFConfig(iterations=meta["iterations"], max_side=None)
    weights, _ = train_weights(head, [ref], [mask], proto, config)
    full = np.concatenate([[1 - weights.sum()], weights])
    assert rel_err(full, arrays["f_weights"]) <= TOL
    head.set_embedding(test)
    prior = similarity_map(head, test, proto)
    np.testing.assert_array_equal(point_selection(prior)[0], arrays["f_point"])
    logits, _ = persam_f_predict(head, prior, weights)
    np.testing.assert_array_equal(logits > 0, arrays["f_final_mask"])
