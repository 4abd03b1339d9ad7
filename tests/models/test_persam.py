"""PerSAM / PerSAM-F mechanics: point selection, target-guided attention, target-semantic
prompting, the cascaded refinement order, the SAM-feature prior, PerSAM-F training."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from segment_anything.modeling.transformer import Attention

from src_models.sam.build import build_sam
from src_models.sam.persam import (
    PersamConfig,
    attention_bias,
    mask_box,
    persam_predict,
    point_selection,
    similarity_map,
    target_embedding,
)
from src_models.sam.persam_decoder import (
    GuidedAttention,
    SemanticBlock,
    guided_softmax,
    install_persam,
    persam_prompts,
)
from src_models.sam.persam_f import PersamFConfig, blend, persam_f_predict, train_weights
from src_models.sam.predictor import Prediction, SamEmbedding, SamHead
from tests.helpers import iou
from tests.models.tiny_backends import TEST_TINY_SAM


@pytest.fixture
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_sam(TEST_TINY_SAM, "random")


def _object_embedding(shape: tuple[int, int] = (60, 90)) -> tuple[SamEmbedding, np.ndarray]:
    """A synthetic embedding for a 60×90 image: feature a on the object's cells, b elsewhere."""
    rng = np.random.default_rng(0)
    mask = np.zeros(shape, bool)
    mask[17:45, 22:62] = True  # ×256/90 → rows 48-128, cols 63-176 of the 171×256 input
    a, b = rng.standard_normal(32), rng.standard_normal(32)
    emb = np.tile(b[:, None, None], (1, 16, 16))
    emb[:, 3:8, 4:11] = a[:, None, None]  # the 16-px cells under the object
    emb += 0.05 * rng.standard_normal(emb.shape)
    return SamEmbedding(emb.astype(np.float16), (171, 256), shape), mask


def test_point_selection_positive_at_argmax_negative_at_argmin() -> None:
    sim = np.zeros((5, 7), np.float32)
    sim[3, 6], sim[1, 2] = 2.0, -1.0
    pos, neg = point_selection(sim)
    assert pos.tolist() == [[6, 3]] and neg.tolist() == [[2, 1]]  # (x, y)


def test_guided_softmax_shifts_weight_towards_biased_keys() -> None:
    logits = torch.zeros(1, 2, 3, 4)
    bias = torch.tensor([0.0, 0.0, 1.0, 0.0]).reshape(1, 1, 1, 4)
    plain, guided = guided_softmax(logits, None), guided_softmax(logits, bias)
    assert torch.allclose(plain, torch.full_like(plain, 0.25))
    assert torch.allclose(guided.sum(-1), torch.ones(1, 2, 3))
    assert (guided[..., 2] > plain[..., 2]).all()
    expected = torch.softmax(torch.softmax(logits, -1) + bias, -1)  # PerSAM: bias after softmax
    assert torch.allclose(guided, expected)


def test_install_persam_keeps_weights_and_stock_output_when_off(tiny: torch.nn.Module) -> None:
    stock = copy.deepcopy(tiny)
    keys = list(tiny.state_dict())
    context = install_persam(tiny)
    assert install_persam(tiny) is context and list(tiny.state_dict()) == keys
    blocks = tiny.mask_decoder.transformer.layers
    assert all(isinstance(b, SemanticBlock) for b in blocks)
    assert all(isinstance(b.cross_attn_token_to_image, GuidedAttention) for b in blocks)
    image, pe, tokens = (
        torch.randn(1, 32, 16, 16),
        torch.randn(1, 32, 16, 16),
        torch.randn(1, 7, 32),
    )
    out = tiny.mask_decoder.transformer(image, pe, tokens)
    ref = stock.mask_decoder.transformer(image, pe, tokens)
    assert all(torch.allclose(o, r, atol=1e-6) for o, r in zip(out, ref, strict=True))
    with persam_prompts(context, torch.rand(1, 1, 1, 256) * 4, None):
        guided = tiny.mask_decoder.transformer(image, pe, tokens)
    assert not torch.allclose(guided[0], ref[0], atol=1e-4)
    assert context.attn_sim is None  # prompts are cleared after the block


def test_guided_attention_matches_manual_computation(tiny: torch.nn.Module) -> None:
    context = install_persam(tiny)
    attn = tiny.mask_decoder.transformer.layers[0].cross_attn_token_to_image
    q, k = torch.randn(1, 5, 32), torch.randn(1, 256, 32)
    bias = torch.rand(1, 1, 1, 256)
    with persam_prompts(context, bias, None):
        out = attn(q=q, k=k, v=k)
    heads = attn.num_heads
    qh = attn._separate_heads(attn.q_proj(q), heads)
    kh = attn._separate_heads(attn.k_proj(k), heads)
    vh = attn._separate_heads(attn.v_proj(k), heads)
    w = torch.softmax(
        torch.softmax(qh @ kh.transpose(-1, -2) / (qh.shape[-1] ** 0.5), -1) + bias, -1
    )
    assert torch.allclose(out, attn.out_proj(attn._recombine_heads(w @ vh)), atol=1e-5)


def test_semantic_prompt_follows_the_official_in_place_addition(tiny: torch.nn.Module) -> None:
    """t reaches the block tokens and their positional embedding; the final query gets 2t."""
    stock = copy.deepcopy(tiny).mask_decoder.transformer
    context = install_persam(tiny)
    transformer = tiny.mask_decoder.transformer
    target = torch.randn(1, 1, 32)
    q, k, qpe, kpe = (
        torch.randn(1, 7, 32),
        torch.randn(1, 256, 32),
        torch.randn(1, 7, 32),
        torch.randn(1, 256, 32),
    )
    with persam_prompts(context, None, target):
        block_out = transformer.layers[1](q, k, qpe, kpe)
        final_out = transformer.final_attn_token_to_image(q=q, k=k, v=k)
    block_ref = stock.layers[1](q + target, k, qpe + target, kpe)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(block_out, block_ref, strict=True))
    final_ref = Attention.forward(stock.final_attn_token_to_image, q + 2 * target, k, k)
    assert torch.allclose(final_out, final_ref, atol=1e-6)


def test_attention_bias_shape_and_placement(tiny: torch.nn.Module) -> None:
    emb, mask = _object_embedding()
    bias = attention_bias(SamHead(tiny), emb, mask.astype(np.float32), "aligned")
    assert bias.shape == (1, 1, 1, 256)
    grid = bias.reshape(16, 16)
    assert grid[3:8, 4:11].min() > 0.8  # object cells get a high bias
    assert grid[11:, :].max() <= grid[0, 0] + 1e-6 < 0.5  # padding no higher than background
    # the official frame stretches the 60×90 map over the whole 16×16 grid (rows 4.5–12)
    official = attention_bias(SamHead(tiny), emb, mask.astype(np.float32)).reshape(16, 16)
    assert official[5:12, 4:11].min() > 0.8 and official[13:, :].max() < 0.5
    assert official[3, 4:11].max() < 0.5 < grid[3, 4:11].min()  # the frames differ


def test_sam_prior_identity_on_the_example(tiny: torch.nn.Module) -> None:
    """Target = example: the SAM-feature similarity recovers the mask through the whole
    resize / pad / grid / postprocess chain of a non-square image."""
    head = SamHead(tiny)
    emb, mask = _object_embedding()
    target = target_embedding(head, [emb], [mask])
    cells = emb.embedding.astype(np.float32)[:, 3:8, 4:11].reshape(32, -1)
    assert np.allclose(target, cells.mean(1), atol=1e-3)  # raw mean of the object's cells
    sim = similarity_map(head, emb, target)
    assert sim.shape == mask.shape
    assert iou(sim > 0.5 * (sim.max() + sim.min()), mask) >= 0.9
    pos, neg = point_selection(sim)
    assert mask[int(pos[0, 1]), int(pos[0, 0])] and not mask[int(neg[0, 1]), int(neg[0, 0])]


class _RecordingHead(SamHead):
    """Returns a fixed mask (rows 10-30, cols 20-50 of 40×60) and records every call."""

    def __init__(self, sam: torch.nn.Module) -> None:
        super().__init__(sam)
        self.calls: list[dict] = []
        self.context = install_persam(sam)

    def predict(self, points=None, point_labels=None, box=None, mask_input=None, multimask=True):  # type: ignore[no-untyped-def,override]
        n = 3 if multimask else 1
        logits = np.full((n, 40, 60), -5.0, np.float32)
        logits[:, 10:30, 20:50] = 5.0
        low = np.random.default_rng(len(self.calls)).standard_normal((n, 64, 64)).astype(np.float32)
        scores = np.array([0.1, 0.9, 0.3][:n], np.float32)
        self.calls.append(
            {
                "points": points,
                "box": box,
                "mask_input": mask_input,
                "multimask": multimask,
                "attn": self.context.attn_sim is not None,
                "semantic": self.context.target_embedding is not None,
                "low": low,
            }
        )
        return Prediction(logits, scores, low)


def test_cascaded_refinement_order(tiny: torch.nn.Module) -> None:
    head = _RecordingHead(tiny)
    emb = SamEmbedding(np.zeros((32, 16, 16), np.float16), (171, 256), (40, 60))
    prior = np.zeros((40, 60), np.float32)
    prior[20, 30], prior[0, 0] = 1.0, -1.0
    logits, score = persam_predict(
        head, head.context, emb, np.ones(32, np.float32) / 32**0.5, prior, PersamConfig()
    )
    first, second, third = head.calls
    assert first["multimask"] is False and first["attn"] and first["semantic"]
    assert first["mask_input"] is None and first["box"] is None
    assert first["points"].tolist() == [[30, 20], [0, 0]]
    assert second["multimask"] and not second["attn"] and second["box"] is None
    assert np.array_equal(second["mask_input"], first["low"][0:1])  # step 1 gets the first logits
    assert third["box"].tolist() == [20, 10, 49, 29]  # step 2 gets the box of the step-1 mask
    assert np.array_equal(third["mask_input"], second["low"][1:2])  # … and its best logits
    assert score == pytest.approx(0.9) and logits.shape == (40, 60)


def test_mask_box() -> None:
    mask = np.zeros((5, 6), bool)
    mask[1:3, 2:5] = True
    assert mask_box(mask).tolist() == [2, 1, 4, 2] and mask_box(np.zeros((2, 2), bool)) is None


def test_persam_f_blend_and_training_pick_the_right_mask(tiny: torch.nn.Module) -> None:
    """Three fixed candidate masks, the middle one correct: training moves the weight to it."""
    weights = torch.tensor([0.2, 0.5])
    logits = torch.stack([torch.full((2, 2), v) for v in (1.0, 2.0, 3.0)])
    assert torch.allclose(blend(weights, logits), torch.full((2, 2), 0.3 * 1 + 0.2 * 2 + 0.5 * 3))

    head = SamHead(tiny)
    emb, mask = _object_embedding()
    cands = np.full((3, 60, 90), -4.0, np.float32)
    cands[0, :30] = 4.0  # wrong: top half
    cands[1][mask] = 4.0  # right
    cands[2] = 4.0  # wrong: everything
    head.predict = lambda *a, **kw: Prediction(
        cands, np.ones(3, np.float32), np.zeros((3, 64, 64), np.float32)
    )  # type: ignore[method-assign]
    target = target_embedding(head, [emb], [mask], "max_mean")
    w, timings = train_weights(head, [emb], [mask], target, PersamFConfig(iterations=200, lr=1e-2))
    blended = blend(torch.from_numpy(w), torch.from_numpy(cands)).numpy()
    assert w[0] > 1 / 3 and iou(blended > 0, mask) >= 0.9
    assert set(timings) == {"persam_f_decode", "persam_f_train"}


def test_persam_f_inference_order(tiny: torch.nn.Module) -> None:
    head = _RecordingHead(tiny)
    prior = np.zeros((40, 60), np.float32)
    prior[20, 30] = 1.0
    persam_f_predict(head, prior, np.array([0.3, 0.3], np.float32))
    first, second, third = head.calls
    assert first["points"].tolist() == [[30, 20]] and first["multimask"] and first["box"] is None
    assert not first["attn"] and not first["semantic"]  # PerSAM-F: plain decoder
    blended_low = (0.4 * first["low"][0] + 0.3 * first["low"][1] + 0.3 * first["low"][2])[None]
    assert np.allclose(second["mask_input"], blended_low, atol=1e-5)
    assert second["box"].tolist() == [20, 10, 49, 29]
    assert np.array_equal(third["mask_input"], second["low"][1:2])
