"""Golden SEGIC outputs from the official code (MengLcool/SEGIC at 73bbcc3), tiny and seeded.

Usage::

    python scripts/parity/segic_parity.py --official /path/to/SEGIC --dinov2 /path/to/dinov2

Builds the official ``SEGIC`` through ``model.segic.build_model`` (``--encoder_model dinov2``,
the flags of ``scripts/segic_dist.sh``: ``use_inst_proj``, ``use_cross_inst_prompt``) at a
224 px input (a 16×16 grid) on a one-block, 768-wide official DINOv2 (the ``dinov2_b`` entry
with ``img_size`` 224); every weight comes from :func:`tests.parity.seeded_state` and the CLIP
text features are seeded 768-vectors per prompt. Then runs

* the image path, ``SEGIC.forward(data, inference=True)``, on an official ``Resize``d real
  reference (two instances: the object's left and right halves) and target of odd sizes;
* the video path, ``SEGIC.forward_vos``, on four DAVIS frames after ``ResizeVOS``.

Stubbed imports (never run here): cv2, detectron2, transformers, open_clip, diffusers,
xformers, matplotlib; ``torch.Tensor.cuda`` returns the tensor (CPU run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, SHARED, read_mask, read_rgb, real_or_synthetic, stub_modules  # noqa: E402

sys.path.insert(0, str(REPO))
from tests.parity import fill_seeded, save_golden, seeded_array  # noqa: E402

SIZE = 224
WIDTH = 768  # the dinov2_b entry of MODEL_CONFIG (its vision_dim is fixed in build_encoder)
DEPTH = 1
IMAGE_TEXT = ""
VIDEO_TEXT = "please segment the instances"
VIDEO = "davis2016_val/JPEGImages/blackswan", "davis2016_val/Annotations/blackswan"


def text_vector(prompt: str) -> torch.Tensor:
    """The stand-in CLIP pooler output of ``prompt`` (768 floats, seeded)."""
    return torch.from_numpy(seeded_array(f"text/{prompt}", (768,)))


def official_dinov2() -> nn.Module:
    from dinov2.models.vision_transformer import DinoVisionTransformer

    return DinoVisionTransformer(
        img_size=518,
        patch_size=14,
        embed_dim=WIDTH,
        depth=DEPTH,
        num_heads=12,
        init_values=1.0,
        block_chunks=0,
        interpolate_antialias=False,
        interpolate_offset=0.1,
    )


def build(official: Path) -> tuple[nn.Module, dict, dict]:
    import model.backbone as backbone
    import model.segic as segic

    dino = official_dinov2().eval()
    dino_shapes = fill_seeded(dino)

    class Encoder(backbone.CustomDINOv2):  # the official forward; CLIP replaced by seeds
        def __init__(self, _: str) -> None:
            nn.Module.__init__(self)
            self.dinov2 = dino

        def get_prompt_features(self, prompt: list[str]) -> torch.Tensor:
            return torch.stack([text_vector(p) for p in prompt])

    backbone.CustomDINOv2 = Encoder
    backbone.MODEL_CONFIG["dinov2_b"]["img_size"] = SIZE
    args = argparse.Namespace(
        encoder_model="dinov2",
        dinov2_model="b",
        force_input_size=SIZE,
        input_size=[SIZE, SIZE],
        reverse_context=True,
        use_cross_inst_prompt=True,
        use_inst_proj=True,
        diff_text_prompt_ratio=0.75,
        no_sim_prompt=False,
        no_text=False,
        no_text_eval=False,
        use_keypoint=False,
        num_keypoint=1,
        add_neg_prompt=False,
        use_aug_inst=False,
        use_neg_aug_inst=False,
        que_len=10,
        max_inst_used=1,
        use_task_indicator=False,
        inst_for_simm=0,
        tau_simm=1.0,
        n_point=1,
    )
    model = segic.build_model(args)
    model.eval()  # (SEGIC.train returns None, so no chaining)
    decoder_keys = list(model.state_dict())  # SEGIC.state_dict: the released checkpoint's keys
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with torch.no_grad():
        own = dict(model.named_parameters()) | dict(model.named_buffers())
        for k in decoder_keys:
            own[k].copy_(torch.from_numpy(seeded_array(k, shapes[k])))
    return model, shapes, dino_shapes


def image_episode(model: nn.Module) -> dict[str, np.ndarray]:
    from utils.dataloader import Resize

    ref, ref_mask, _ = real_or_synthetic(
        "perseg_examples/images/cat_00.jpg", "perseg_examples/masks/cat_00.png", (75, 101), 1
    )
    tgt, _, _ = real_or_synthetic(
        "perseg_examples/images/cat_01.jpg", "perseg_examples/masks/cat_01.png", (90, 67), 2
    )
    cols = np.nonzero(ref_mask.any(0))[0]
    half = (cols.min() + cols.max()) // 2
    inst = np.stack([ref_mask & (np.arange(101) <= half), ref_mask & (np.arange(101) > half)])

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, dtype=torch.float32)

    sample = {
        "imidx": torch.tensor([0]),
        "image": tensor(tgt).permute(2, 0, 1),
        "label": torch.zeros(2, *tgt.shape[:2]),
        "shape": torch.tensor(tgt.shape[:2]),
        "image_dual": tensor(ref).permute(2, 0, 1),
        "label_dual": tensor(inst) * 255,
    }
    sample = Resize([SIZE, SIZE])(sample)
    data = {
        "image": sample["image"][None],
        "ori_size": sample["ori_size"][None],
        "image_dual": sample["image_dual"][None],
        "ori_size_dual": sample["ori_size_dual"][None],
        "label": [sample["label"]],
        "label_dual": [sample["label_dual"]],
        "is_inst": torch.tensor([False]),
    }
    with torch.no_grad():
        logits, *_ = model(data, inference=True)
    return {
        "image_ref": ref,
        "image_ref_instances": inst,
        "image_target": tgt,
        "image_valid": sample["ori_size"].numpy(),
        "image_valid_ref": sample["ori_size_dual"].numpy(),
        "image_ref_label_resized": (sample["label_dual"] / 255 > 0.5).numpy(),
        "image_mask": (logits[:, 0] > 0).numpy(),
        "image_logits_sub4": logits[:, 0, ::4, ::4].numpy(),
    }


def video_episode(model: nn.Module) -> dict[str, np.ndarray]:
    from utils.dataloader import ResizeVOS

    frames_dir, masks_dir = SHARED / VIDEO[0], SHARED / VIDEO[1]
    size = (54, 96)
    if frames_dir.is_dir():
        names = sorted(p.name for p in frames_dir.glob("*.jpg"))[:4]
        frames = np.stack([read_rgb(frames_dir / n, size) for n in names])
        first = read_mask(masks_dir / names[0].replace(".jpg", ".png"), size)
    else:
        frames = np.stack([real_or_synthetic("-", "-", size, i)[0] for i in range(4)])
        first = real_or_synthetic("-", "-", size, 0)[1]
    cols = np.nonzero(first.any(0))[0]
    half = (cols.min() + cols.max()) // 2
    inst = np.stack([first & (np.arange(size[1]) <= half), first & (np.arange(size[1]) > half)])
    sample = {
        "images": torch.tensor(frames, dtype=torch.float32).permute(0, 3, 1, 2),
        "inst_masks": torch.tensor(inst) * 255,
    }
    sample = ResizeVOS([SIZE, SIZE])(sample)
    data = {
        "images": sample["images"][None],
        "inst_masks": sample["inst_masks"][None],
        "inst_ids": torch.tensor([[1, 2]]),
        "ori_size": sample["ori_size"][None],
        "ori_inst_masks": torch.tensor(inst)[None] * 255,
    }
    with torch.no_grad():
        seg = model.forward_vos(data, inference=True)
    return {
        "video_frames": frames,
        "video_first_instances": inst,
        "video_valid": sample["ori_size"].numpy(),
        "video_labels": seg.numpy().astype(np.int8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--official", type=Path, required=True, help="SEGIC checkout")
    parser.add_argument("--dinov2", type=Path, required=True, help="dinov2 checkout")
    args = parser.parse_args()
    sys.path.insert(0, str(args.dinov2.resolve()))
    sys.path.insert(0, str(args.official.resolve()))
    stub_modules(
        "cv2", "detectron2", "transformers", "open_clip", "diffusers", "xformers", "matplotlib"
    )
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    torch.cuda.empty_cache = lambda: None  # type: ignore[assignment]
    torch.manual_seed(0)
    model, shapes, dino_shapes = build(args.official)
    arrays = image_episode(model) | video_episode(model)
    arrays["text_image"] = text_vector(IMAGE_TEXT).numpy()
    arrays["text_video"] = text_vector(VIDEO_TEXT).numpy()
    meta = {
        "decoder_shapes": {k: list(v) for k, v in shapes.items()},
        "dinov2_shapes": {k: list(v) for k, v in dino_shapes.items()},
        "size": SIZE,
        "width": WIDTH,
        "depth": DEPTH,
        "texts": [IMAGE_TEXT, VIDEO_TEXT],
        "torch": torch.__version__,
    }
    path = save_golden("segic", arrays, meta)
    print(
        f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB); image mask areas "
        f"{arrays['image_mask'].reshape(2, -1).sum(1)}, video labels "
        f"{np.bincount(arrays['video_labels'].ravel().astype(np.int64))}"
    )


if __name__ == "__main__":
    main()
