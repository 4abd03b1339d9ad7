"""SAM encoder/head split, embedding caches (memory and disk), prompt geometry, the SAM
refinement wrapper and the dinov2-sam backend end to end (tiny random-weight SAM)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from src_models import weights as W
from src_models.cache import FeatureCache
from src_models.disk_cache import DiskCache, make_key
from src_models.engine import propagate
from src_models.hashing import file_sha256
from src_models.matching import class_scores, patch_label_fractions
from src_models.sam.build import build_sam, build_sam_random
from src_models.sam.predictor import SamEncoder, SamHead, combine_objects
from tests.helpers import iou
from tests.models.tiny_backends import TEST_TINY_SAM

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, W.WeightsSpec]:
    """A tiny SAM saved like an official checkpoint (raw state dict) + a spec with its hash."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "tiny_sam.pth"
    torch.save(build_sam_random(TEST_TINY_SAM).state_dict(), path)
    spec = dataclasses.replace(
        W.get_spec("sam_vit_b"), file_name=path.name, sha256=file_sha256(path)
    )
    return path, spec


@pytest.fixture(scope="module")
def tiny(tiny_file: tuple[Path, W.WeightsSpec]) -> torch.nn.Module:
    return build_sam(TEST_TINY_SAM, *tiny_file)


def _image(h: int = 60, w: int = 90) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mask = np.zeros((h, w), bool)
    mask[15:45, 20:60] = True
    img = 0.2 + 0.6 * mask[..., None] + 0.05 * rng.standard_normal((h, w, 3))
    return img.astype(np.float32), mask


def test_encoder_embedding_shape_and_frame(tiny: torch.nn.Module) -> None:
    emb = SamEncoder(tiny, CPU)(_image(60, 90)[0])
    assert emb.embedding.shape == (32, 16, 16) and emb.embedding.dtype == np.float16
    assert emb.input_size == (171, 256) and emb.original_size == (60, 90)  # longest side → 256


def test_bf16_encoder_is_close_to_fp32(
    tiny: torch.nn.Module, tiny_file: tuple[Path, W.WeightsSpec]
) -> None:
    image = _image()[0]
    fp32 = SamEncoder(tiny, CPU, torch.float32)(image).embedding.astype(np.float32).ravel()
    bf16 = SamEncoder(build_sam(TEST_TINY_SAM, *tiny_file), CPU, torch.bfloat16)(image)
    b = bf16.embedding.astype(np.float32).ravel()
    cosine = float(fp32 @ b / np.linalg.norm(fp32) / np.linalg.norm(b))
    assert cosine > 0.99


def test_mask_prompt_and_grid_maps_keep_geometry(tiny: torch.nn.Module) -> None:
    """A mask → low-res mask logits → SAM's own postprocessing gives the mask back."""
    image, mask = _image(60, 90)
    head = SamHead(tiny)
    emb = SamEncoder(tiny, CPU)(image)
    low = head.mask_to_low_res(emb, mask)
    assert low.shape == (1, 64, 64)
    back = tiny.postprocess_masks(torch.from_numpy(low)[None], emb.input_size, emb.original_size)
    assert iou(back[0, 0].numpy() > 0, mask) >= 0.9
    grid = head.image_grid_map(emb, mask.astype(np.float32), fill=0.0)
    assert grid.shape == (16, 16) and grid[:, 12:].max() < 0.05  # padded area stays empty
    assert grid[3:7, 5:9].min() > 0.9  # rows 15-45 of 60 → cells ~4-7 of the 171-px band


@pytest.mark.usefixtures("test_tiny_sam")
def test_feature_cache_second_run_never_reencodes(tiny_file: tuple[Path, W.WeightsSpec]) -> None:
    from src_models.registry import build_backend

    stack = np.stack([_image()[0].mean(-1)] * 3)
    labels = np.zeros(stack.shape, np.int32)
    labels[0][_image()[1]] = 1
    backend = build_backend(
        "dinov2-sam",
        device="cpu",
        weights="random",
        sam_weights=str(tiny_file[0]),
        sam_model="test_tiny",
        input_size=56,
        dtype="float32",
        correspondence="sam",
    )
    cache = FeatureCache()
    first = list(propagate(stack, labels, backend, cache=cache))
    encodes = backend.encoder.encode_count
    assert encodes == 1  # three identical slices: one content key, one encoder forward
    second = list(propagate(stack, labels, backend, cache=cache))
    assert backend.encoder.encode_count == encodes and cache.misses == 1 and cache.hits == 5
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(first, second, strict=True))


def test_disk_cache_survives_a_new_model_instance(
    tmp_path: Path, tiny_file: tuple[Path, W.WeightsSpec]
) -> None:
    image = _image()[0]
    first = SamEncoder(
        build_sam(TEST_TINY_SAM, *tiny_file), CPU, disk_cache=DiskCache("sam", tmp_path)
    )
    a = first(image)
    again = SamEncoder(
        build_sam(TEST_TINY_SAM, *tiny_file), CPU, disk_cache=DiskCache("sam", tmp_path)
    )
    b = again(image)
    assert first.encode_count == 1 and again.encode_count == 0 and again.disk_cache.hits == 1
    assert np.array_equal(a.embedding, b.embedding) and a.input_size == b.input_size


def test_disk_cache_size_cap_evicts_oldest(tmp_path: Path) -> None:
    cache = DiskCache("sam", tmp_path, max_bytes=2500)
    keys = [make_key(f"k{i}") for i in range(4)]
    for i, key in enumerate(keys):
        cache.put(key, np.full(256, i, np.float32))  # ~1.1 kB per file
    assert cache.get(keys[0]) is None and cache.get(keys[3]) is not None
    assert sum(p.stat().st_size for p in (tmp_path / "sam").glob("*.npy")) <= 2500


def test_combine_objects_picks_highest_positive_logit() -> None:
    a = np.array([[5.0, -1.0, 2.0]], np.float32)
    b = np.array([[1.0, -3.0, 4.0]], np.float32)
    labels, conf = combine_objects([3, 7], [a, b], (1, 3))
    assert labels.tolist() == [[3, 0, 7]]
    assert np.allclose(conf, [1 / (1 + np.exp(-5)), 1 - 1 / (1 + np.exp(1)), 1 / (1 + np.exp(-4))])
    empty, _ = combine_objects([1], [None], (2, 2))
    assert not empty.any()


def test_sam_refine_prompts_are_box_and_mask_of_the_proposal(tiny: torch.nn.Module) -> None:
    """The wrapper hands SAM the proposal's box and the proposal itself (in SAM's frame)."""
    from src_models.backends.sam_refine import refine_labels

    image, mask = _image(60, 90)
    emb = SamEncoder(tiny, CPU)(image)
    head = SamHead(tiny)
    calls = []
    real = head.predict
    head.predict = lambda **kw: calls.append(kw) or real(**kw)  # type: ignore[method-assign]
    labels = np.where(mask, 4, 0).astype(np.int32)
    out, conf = refine_labels(head, emb, labels)
    assert len(calls) == 1
    assert calls[0]["box"].tolist() == [20, 15, 59, 44]
    back = tiny.postprocess_masks(
        torch.from_numpy(calls[0]["mask_input"])[None], emb.input_size, emb.original_size
    )
    assert iou(back[0, 0].numpy() > 0, mask) >= 0.9
    assert set(np.unique(out)) <= {0, 4} and out.shape == mask.shape and conf.dtype == np.float32


@pytest.mark.usefixtures("test_tiny_sam")
def test_sam_refine_wraps_any_backend_through_the_registry() -> None:
    from src_models.registry import build_backend

    image, mask = _image(48, 64)
    noise = np.random.default_rng(1).normal(0, 0.02, (3, 48, 64))
    stack = (image.mean(-1) + noise).astype(np.float32)  # three different slices
    labels = np.zeros(stack.shape, np.int32)
    labels[0][mask] = 2
    backend = build_backend(
        "classic",
        sam_refine="test_tiny",
        sam_weights="random",
        sam_refine_dtype="float32",
        texture=False,
        n_estimators=10,
    )
    assert backend.name == "classic+sam"
    results = list(propagate(stack, labels, backend, targets=[2]))  # refine a chosen slice only
    assert [r.index for r in results] == [2]
    assert set(np.unique(results[0].labels)) <= {0, 2} and results[0].labels.shape == (48, 64)
    assert backend.encoder.encode_count == 2  # the example and the chosen slice, nothing else


@pytest.mark.usefixtures("test_tiny_sam")
def test_dinov2_sam_identity_prior_and_prompts(disks: tuple[np.ndarray, np.ndarray]) -> None:
    """Target = example image. With random DINOv2 weights the tokens of identical images are
    identical, so the correspondence prior must reproduce the example: each object's points
    land on it (positive) and off it (negative), and the prior's winning class matches the
    labels (IoU ≥ 0.9). SAM's random decoder output itself is not judged."""
    from src_models.registry import build_backend

    image, labels = disks
    stack = np.stack([image, image])
    examples = np.stack([labels, np.zeros_like(labels)])
    backend = build_backend(
        "dinov2-sam",
        device="cpu",
        weights="random",
        sam_model="test_tiny",
        input_size=224,
        dtype="float32",
        topk=1,
    )
    first_calls = []
    real = backend.head.predict

    def record(*args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("multimask") is False:  # the first PerSAM decoding of each object
            first_calls.append(args[0])
        return real(*args, **kwargs)

    backend.head.predict = record  # type: ignore[method-assign]
    result = next(propagate(stack, examples, backend))
    assert result.labels.shape == labels.shape and result.labels.dtype == np.int32
    assert set(np.unique(result.labels)) <= {0, 1, 2}
    assert len(first_calls) == 2
    for k, pts in zip((1, 2), first_calls, strict=True):
        x, y = pts[0].astype(int)
        assert labels[y, x] == k, f"positive point of object {k} is not on it"
        x, y = pts[1].astype(int)
        assert labels[y, x] != k, f"negative point of object {k} is on it"
    features = backend.compute_features(stack[1][..., None])
    scores = class_scores(features.tokens, backend._bank, 0.2, 1)  # (3, 16, 16)
    expected = patch_label_fractions(labels, scores.shape[1:], np.array([1, 2])).argmax(0)
    for k in (1, 2):  # the prior recovers the example's labels at patch resolution
        assert iou(scores.argmax(0) == k, expected == k) >= 0.9


@pytest.mark.usefixtures("test_tiny_sam")
def test_cli_propagates_with_dinov2_sam(tmp_path: Path) -> None:
    from src_models.cli import main

    image, mask = _image(48, 64)
    stack = np.stack([image.mean(-1)] * 2 + [image.mean(-1)[:, ::-1]]).astype(np.float32)
    labels = np.zeros(stack.shape, np.int32)
    labels[0][mask] = 1
    np.save(tmp_path / "img.npy", stack)
    np.save(tmp_path / "lab.npy", labels)
    out = tmp_path / "out.tif"
    code = main(
        [
            "propagate",
            str(tmp_path / "img.npy"),
            "--labels",
            str(tmp_path / "lab.npy"),
            "--out",
            str(out),
            "--backend",
            "dinov2-sam",
            "--weights",
            "random",
            "--device",
            "cpu",
            "--option",
            "sam_model=test_tiny",
            "--option",
            "input_size=56",
            "--quiet",
        ]
    )
    assert code == 0
    import tifffile

    result = tifffile.imread(out)
    assert result.shape == stack.shape and np.array_equal(result[0], labels[0])


def test_cli_without_weights_prints_one_line_for_every_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from src_models.cli import main

    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "empty")
    monkeypatch.delenv(W.ENV_DIR, raising=False)
    monkeypatch.setattr(W, "_hf_cached", lambda spec: None)
    np.save(tmp_path / "img.npy", np.zeros((2, 8, 8), np.float32))
    lab = np.zeros((2, 8, 8), np.int32)
    lab[0, 2:5, 2:5] = 1
    np.save(tmp_path / "lab.npy", lab)
    code = main(
        [
            "propagate",
            str(tmp_path / "img.npy"),
            "--labels",
            str(tmp_path / "lab.npy"),
            "--out",
            str(tmp_path / "o.tif"),
            "--backend",
            "dinov2-sam",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "weights download dinov2_vits14" in err and "weights download sam_vit_b" in err
