"""Golden PerSAM and PerSAM-F steps from the official code (Personalize-SAM at a7e8724).

Usage::

    python scripts/parity/persam_parity.py --official /path/to/Personalize-SAM

Builds ``per_segment_anything``'s ``Sam`` with a one-block, 32-wide image encoder at the
official 1024 px (so the embedding is the 64×64 grid ``persam.py`` hard-codes) and a 32-wide
decoder, all weights from :func:`tests.parity.seeded_state`, and replays the bodies of
``persam.py: persam()`` and ``persam_f.py: persam_f()`` step by step (their ``main`` reads
folders, loads checkpoints by name and plots): the official ``SamPredictor``,
``point_selection``, the guided-attention / semantic-prompt decoder, ``Mask_Weights``, the
dice and focal losses, AdamW + cosine schedule, 1000 iterations. Inputs: the PerSeg cat
(reference ``cat_00`` with its palette mask, target ``cat_01``), 120 × 160 px.

Stubbed imports (never run here): cv2 and matplotlib (``show.py``, plotting). No CUDA:
``.cuda()`` returns the module/tensor.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, real_or_synthetic, stub_modules  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.parity import fill_seeded, save_golden  # noqa: E402

SIZE = (120, 160)
ARCH = {"embed_dim": 32, "depth": 1, "num_heads": 2, "prompt_dim": 32, "mlp": 64, "heads": 2}
ITERATIONS = 1000


def official_sam() -> nn.Module:
    from per_segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    a = ARCH
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=a["depth"],
            embed_dim=a["embed_dim"],
            img_size=1024,
            mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            num_heads=a["num_heads"],
            patch_size=16,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=(),
            window_size=14,
            out_chans=a["prompt_dim"],
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=a["prompt_dim"],
            image_embedding_size=(64, 64),
            input_image_size=(1024, 1024),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=a["prompt_dim"], mlp_dim=a["mlp"], num_heads=a["heads"]
            ),
            transformer_dim=a["prompt_dim"],
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def box_of(mask: np.ndarray) -> np.ndarray:
    y, x = np.nonzero(mask)
    return np.array([x.min(), y.min(), x.max(), y.max()])


def persam(predictor, point_selection, ref_image, ref_mask_rgb, test_image) -> dict:  # noqa: ANN001
    """The body of persam.py: persam() for one target, outputs of every step."""
    out = {}
    ref_mask = predictor.set_image(ref_image, ref_mask_rgb)
    ref_feat = predictor.features.squeeze().permute(1, 2, 0)
    out["ref_embedding"] = predictor.features[0].numpy()
    ref_mask = F.interpolate(ref_mask, size=ref_feat.shape[0:2], mode="bilinear")
    ref_mask = ref_mask.squeeze()[0]
    out["ref_grid"] = (ref_mask > 0).numpy()
    target_feat = ref_feat[ref_mask > 0]
    target_embedding = target_feat.mean(0).unsqueeze(0)
    target_feat = target_embedding / target_embedding.norm(dim=-1, keepdim=True)
    target_embedding = target_embedding.unsqueeze(0)
    out["target_embedding"] = target_embedding[0, 0].numpy()

    predictor.set_image(test_image)
    test_feat = predictor.features.squeeze()
    out["test_embedding"] = predictor.features[0].numpy()
    C, h, w = test_feat.shape
    test_feat = test_feat / test_feat.norm(dim=0, keepdim=True)
    test_feat = test_feat.reshape(C, h * w)
    sim = target_feat @ test_feat
    sim = sim.reshape(1, 1, h, w)
    sim = F.interpolate(sim, scale_factor=4, mode="bilinear")
    sim = predictor.model.postprocess_masks(
        sim, input_size=predictor.input_size, original_size=predictor.original_size
    ).squeeze()
    out["similarity"] = sim.numpy()
    topk_xy_i, topk_label_i, last_xy_i, last_label_i = point_selection(sim, topk=1)
    topk_xy = np.concatenate([topk_xy_i, last_xy_i], axis=0)
    topk_label = np.concatenate([topk_label_i, last_label_i], axis=0)
    out["points"] = topk_xy
    sim = (sim - sim.mean()) / torch.std(sim)
    sim = F.interpolate(sim.unsqueeze(0).unsqueeze(0), size=(64, 64), mode="bilinear")
    attn_sim = sim.sigmoid_().unsqueeze(0).flatten(3)
    out["attn_sim"] = attn_sim.numpy()

    masks, scores, logits, _ = predictor.predict(
        point_coords=topk_xy,
        point_labels=topk_label,
        multimask_output=False,
        attn_sim=attn_sim,
        target_embedding=target_embedding,
    )
    out["first_low_res"] = logits[0]
    out["first_mask"] = masks[0]
    best_idx = 0
    masks, scores, logits, _ = predictor.predict(
        point_coords=topk_xy,
        point_labels=topk_label,
        mask_input=logits[best_idx : best_idx + 1, :, :],
        multimask_output=True,
    )
    best_idx = np.argmax(scores)
    out["refine1_mask"] = masks[best_idx]
    masks, scores, logits, _ = predictor.predict(
        point_coords=topk_xy,
        point_labels=topk_label,
        box=box_of(masks[best_idx])[None, :],
        mask_input=logits[best_idx : best_idx + 1, :, :],
        multimask_output=True,
    )
    best_idx = np.argmax(scores)
    out["final_mask"] = masks[best_idx]
    out["final_score"] = np.float32(scores[best_idx])
    return out


def persam_f(module, predictor, ref_image, ref_mask_rgb, test_image) -> dict:  # noqa: ANN001
    """The body of persam_f.py: persam_f() for one target (outputs prefixed ``f_``)."""
    gt_mask = torch.tensor(ref_mask_rgb)[:, :, 0] > 0
    gt_mask = gt_mask.float().unsqueeze(0).flatten(1)
    ref_mask = predictor.set_image(ref_image, ref_mask_rgb)
    ref_feat = predictor.features.squeeze().permute(1, 2, 0)
    ref_mask = F.interpolate(ref_mask, size=ref_feat.shape[0:2], mode="bilinear")
    ref_mask = ref_mask.squeeze()[0]
    target_feat = ref_feat[ref_mask > 0]
    target_feat = (torch.max(target_feat, dim=0)[0] / 2 + target_feat.mean(0) / 2).unsqueeze(0)
    h, w, C = ref_feat.shape
    target_feat = target_feat / target_feat.norm(dim=-1, keepdim=True)
    ref_feat = ref_feat / ref_feat.norm(dim=-1, keepdim=True)
    ref_feat = ref_feat.permute(2, 0, 1).reshape(C, h * w)
    sim = (target_feat @ ref_feat).reshape(1, 1, h, w)
    sim = F.interpolate(sim, scale_factor=4, mode="bilinear")
    sim = predictor.model.postprocess_masks(
        sim, input_size=predictor.input_size, original_size=predictor.original_size
    ).squeeze()
    topk_xy, topk_label = module.point_selection(sim, topk=1)

    mask_weights = module.Mask_Weights()
    mask_weights.train()
    optimizer = torch.optim.AdamW(mask_weights.parameters(), lr=1e-3, eps=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, ITERATIONS)
    for _ in range(ITERATIONS):
        masks, scores, logits, logits_high = predictor.predict(
            point_coords=topk_xy, point_labels=topk_label, multimask_output=True
        )
        logits_high = logits_high.flatten(1)
        weights = torch.cat(
            (1 - mask_weights.weights.sum(0).unsqueeze(0), mask_weights.weights), dim=0
        )
        logits_high = (logits_high * weights).sum(0).unsqueeze(0)
        loss = module.calculate_dice_loss(
            logits_high, gt_mask
        ) + module.calculate_sigmoid_focal_loss(logits_high, gt_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    mask_weights.eval()
    weights = torch.cat((1 - mask_weights.weights.sum(0).unsqueeze(0), mask_weights.weights), 0)
    weights_np = weights.detach().cpu().numpy()

    predictor.set_image(test_image)
    test_feat = predictor.features.squeeze()
    C, h, w = test_feat.shape
    test_feat = (test_feat / test_feat.norm(dim=0, keepdim=True)).reshape(C, h * w)
    sim = (target_feat @ test_feat).reshape(1, 1, h, w)
    sim = F.interpolate(sim, scale_factor=4, mode="bilinear")
    sim = predictor.model.postprocess_masks(
        sim, input_size=predictor.input_size, original_size=predictor.original_size
    ).squeeze()
    topk_xy, topk_label = module.point_selection(sim, topk=1)
    masks, scores, logits, logits_high = predictor.predict(
        point_coords=topk_xy, point_labels=topk_label, multimask_output=True
    )
    mask = ((logits_high * weights.unsqueeze(-1)).sum(0) > 0).detach().cpu().numpy()
    logit = (logits * weights_np[..., None]).sum(0)
    masks, scores, logits, _ = predictor.predict(
        point_coords=topk_xy,
        point_labels=topk_label,
        box=box_of(mask)[None, :],
        mask_input=logit[None, :, :],
        multimask_output=True,
    )
    best_idx = np.argmax(scores)
    masks, scores, logits, _ = predictor.predict(
        point_coords=topk_xy,
        point_labels=topk_label,
        box=box_of(masks[best_idx])[None, :],
        mask_input=logits[best_idx : best_idx + 1, :, :],
        multimask_output=True,
    )
    best_idx = np.argmax(scores)
    return {
        "f_weights": weights_np[:, 0],
        "f_point": topk_xy,
        "f_final_mask": masks[best_idx],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--official", type=Path, required=True, help="Personalize-SAM checkout")
    args = parser.parse_args()
    sys.path.insert(0, str(args.official.resolve()))
    stub_modules("cv2", "matplotlib")
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    import persam as official_persam
    import persam_f as official_persam_f
    from per_segment_anything import SamPredictor

    torch.manual_seed(0)
    sam = official_sam()
    shapes = fill_seeded(
        sam, extra_buffers=["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
    )
    sam.requires_grad_(False)
    predictor = SamPredictor(sam)
    ref, ref_mask, src = real_or_synthetic(
        "perseg_examples/images/cat_00.jpg", "perseg_examples/masks/cat_00.png", SIZE, 0
    )
    test, test_mask, _ = real_or_synthetic(
        "perseg_examples/images/cat_01.jpg", "perseg_examples/masks/cat_01.png", SIZE, 1
    )
    mask_rgb = np.zeros((*SIZE, 3), np.uint8)
    mask_rgb[ref_mask, 0] = 128  # PerSeg's palette PNG read as RGB: the object is (128, 0, 0)
    with torch.no_grad():
        out = persam(predictor, official_persam.point_selection, ref, mask_rgb, test)
    out |= persam_f(official_persam_f, predictor, ref, mask_rgb, test)
    out["first_low_res"] = out["first_low_res"][::4, ::4]  # a subsample keeps the file small
    arrays = {"ref_image": ref, "ref_mask": ref_mask, "test_image": test, **out}
    meta = {
        "param_shapes": {k: list(v) for k, v in shapes.items()},
        "arch": ARCH,
        "iterations": ITERATIONS,
        "input": src,
        "torch": torch.__version__,
    }
    path = save_golden("persam", arrays, meta)
    print(
        f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB); ref cells {out['ref_grid'].sum()}, "
        f"final area {out['final_mask'].sum()}, PerSAM-F weights {out['f_weights']}, "
        f"area {out['f_final_mask'].sum()}"
    )


if __name__ == "__main__":
    main()
