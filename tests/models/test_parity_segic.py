"""SEGIC against the official code (golden file of scripts/parity/segic_parity.py): the
preprocessing, the image path (``SEGIC.forward``) and the video path (``forward_vos``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from src_models.backbones.dinov2 import create_dinov2, load_dinov2_weights
from src_models.backends.configs import SegicConfig
from src_models.backends.segic import SegicBackend, SegicEncoder
from src_models.config import build_config
from src_models.engine import propagate
from src_models.heads.segic import build_segic_decoder
from src_models.heads.segic_infer import (
    decode,
    encode_tokens,
    mask_to_input,
    preprocess,
    prototypes,
)
from tests.parity import load_golden, rel_err, seeded_array, seeded_state

TOL = 1e-5
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, np.ndarray], dict]:
    return load_golden("segic")


@pytest.fixture(scope="module")
def models(golden) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The golden's one-block DINOv2 and SEGIC decoder, from the same seeded weights."""
    _, meta = golden
    dino = create_dinov2("vitb14", depth=meta["depth"], embed_dim=meta["width"], num_heads=12)
    load_dinov2_weights(dino, seeded_state(meta["dinov2_shapes"]), "golden")
    decoder = build_segic_decoder(feat_dim=meta["width"], input_size=meta["size"])
    own = decoder.state_dict()
    assert {k: list(v.shape) for k, v in own.items()} == meta["decoder_shapes"]  # same keys
    decoder.load_state_dict(
        {k: torch.from_numpy(seeded_array(k, s)) for k, s in meta["decoder_shapes"].items()}
    )
    return dino.eval(), decoder.eval()


def as_input(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0


def test_preprocessing_truncates_like_the_official_resize(golden) -> None:
    arrays, meta = golden
    _, valid = preprocess(as_input(arrays["image_target"]), meta["size"])
    assert valid == tuple(arrays["image_valid"])  # 90 × 67 → 224 × 166 (rounding gave 167)
    _, valid = preprocess(as_input(arrays["image_ref"]), meta["size"])
    assert valid == tuple(arrays["image_valid_ref"])
    masks = mask_to_input(arrays["image_ref_instances"], meta["size"]) > 0.5
    np.testing.assert_array_equal(masks.numpy(), arrays["image_ref_label_resized"])


def test_image_path_matches_official(golden, models) -> None:
    arrays, meta = golden
    dino, decoder = models
    size = meta["size"]
    with torch.inference_mode():
        target = encode_tokens(dino, preprocess(as_input(arrays["image_target"]), size)[0])
        ref = encode_tokens(dino, preprocess(as_input(arrays["image_ref"]), size)[0])
        protos = prototypes(ref, mask_to_input(arrays["image_ref_instances"], size))
        text = torch.from_numpy(arrays["text_image"])[None].expand(2, -1)
        logits, _ = decode(decoder, target, protos, protos, torch.eye(2).long(), text)
        up = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
    h, w = arrays["image_valid"]
    up = up[:, 0, :h, :w].numpy()
    assert rel_err(up[:, ::4, ::4], arrays["image_logits_sub4"]) <= TOL
    np.testing.assert_array_equal(up > 0, arrays["image_mask"])


def test_video_path_matches_official_forward_vos(golden, models) -> None:
    """A stack through the engine: the backend follows forward_vos frame by frame."""
    arrays, meta = golden
    dino, decoder = models
    config = build_config(SegicConfig, {"input_size": meta["size"]}, owner="dinov2-segic")
    assert config.video
    encoder = SegicEncoder(dino, meta["size"], CPU, torch.float32)
    texts = {"image": torch.from_numpy(arrays["text_image"])}
    texts["video"] = torch.from_numpy(arrays["text_video"])
    backend = SegicBackend(encoder, decoder, config, texts)
    frames = arrays["video_frames"]
    first = arrays["video_first_instances"]
    labels = np.zeros(frames.shape[:3], np.int32)
    labels[0] = first[0] + 2 * first[1]
    results = {r.index: r.labels for r in propagate(frames, labels, backend)}
    expected = arrays["video_labels"]
    for index in range(1, len(frames)):
        assert (results[index] > 0).any()
        np.testing.assert_array_equal(results[index], expected[index], err_msg=f"frame {index}")
