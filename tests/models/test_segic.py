"""SEGIC decoder: released-checkpoint compatibility, loading, inference steps, backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from src_models.heads.segic import (
    PE_KEY,
    build_segic_decoder,
    load_segic_decoder,
    load_segic_weights,
    save_segic_weights,
)
from src_models.heads.segic_infer import (
    decode,
    geometric_maps,
    mask_to_input,
    postprocess,
    preprocess,
    prototypes,
    top1_points,
)
from src_models.heads.segic_text import TEXT_DIM, load_text_embedding, save_text_embedding
from tests.models.segic_helpers import SIZE, tiny_backend, tiny_decoder, wide_stack

REFERENCE = Path(__file__).parent / "data" / "segic_dinov2_l_state_dict.txt"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread: None) -> None:
    """Tiny SEGIC models: thread start-up costs more than the work."""


def reference_keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in REFERENCE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape = line.split()
            rows.append((key, tuple(int(s) for s in shape.split("x"))))
    return rows


@pytest.fixture(scope="module")
def full_decoder():
    torch.manual_seed(0)
    return build_segic_decoder()


def test_state_dict_equals_released_key_list(full_decoder) -> None:
    ours = [(k, tuple(v.shape)) for k, v in full_decoder.state_dict().items()]
    assert ours == reference_keys()
    assert sum(v.numel() for v in full_decoder.state_dict().values()) == 5_377_764


def test_save_load_round_trip_in_released_format(full_decoder, tmp_path: Path) -> None:
    path = save_segic_weights(full_decoder, tmp_path / "segic_dinov2_l_80kx12e.pth")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert [
        (k, tuple(v.shape)) for k, v in raw.items()
    ] == reference_keys()  # a raw dict, no prefix
    torch.manual_seed(1)
    other = build_segic_decoder()
    assert not torch.equal(other.state_dict()[PE_KEY], raw[PE_KEY])  # a fresh draw differs...
    load_segic_weights(other, path)
    for key, value in full_decoder.state_dict().items():
        assert torch.equal(other.state_dict()[key], value), key  # ...and the file's matrix wins
    loaded = load_segic_decoder(path)  # the public loader, explicit path
    assert torch.equal(loaded.state_dict()[PE_KEY], raw[PE_KEY])
    half = load_segic_decoder(path, input_size=448)  # no weight depends on the input size
    assert half.prompt_encoder.image_embedding_size == (32, 32)


def test_loading_rejects_other_files_and_reports_extra_keys(full_decoder, tmp_path: Path) -> None:
    state = full_decoder.state_dict()
    ddp = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, ddp)
    load_segic_weights(build_segic_decoder(), ddp)  # a DDP prefix is accepted
    extra = tmp_path / "extra.pth"
    torch.save({**state, "encoder.dinov2.cls_token": torch.zeros(1)}, extra)
    other = build_segic_decoder()
    with pytest.warns(UserWarning, match=r"ignored 1 keys .*encoder\.dinov2\.cls_token"):
        assert load_segic_weights(other, extra) == ["encoder.dinov2.cls_token"]
    assert torch.equal(other.state_dict()[PE_KEY], state[PE_KEY])  # the rest is loaded
    cases = {
        "missing": {k: v for k, v in state.items() if k != "inst_proj.bias"},
        "shape": {**state, "inst_proj.weight": torch.zeros(256, 768)},
    }
    for name, bad in cases.items():
        torch.save(bad, tmp_path / f"{name}.pth")
        with pytest.raises(RuntimeError, match="not a SEGIC decoder checkpoint"):
            load_segic_weights(build_segic_decoder(), tmp_path / f"{name}.pth")


def test_missing_checkpoint_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAPARI_INCONTEXT_WEIGHTS", str(tmp_path))
    monkeypatch.setattr("src_models.weights.cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr("src_models.weights._hf_cached", lambda spec: None)
    with pytest.raises(RuntimeError, match="segic_dinov2_l_80kx12e"):
        load_segic_decoder()
    with pytest.raises(ValueError, match="choose one of"):
        load_segic_decoder(checkpoint="segic_vit_b")
    from src_models.backends.configs import SegicConfig
    from src_models.backends.segic import build_segic_backend, local_checkpoint

    with pytest.raises(RuntimeError, match="weights download segic_dinov2_l_80kx12e"):
        build_segic_backend(
            SegicConfig(), device="cpu"
        )  # fails on the decoder before loading DINOv2-L
    (tmp_path / "segic_dinov2_l_160kx12e.pth").write_bytes(b"")
    assert local_checkpoint() == "segic_dinov2_l_160kx12e"  # only the 160k file is here


def test_full_size_forward_shapes(full_decoder) -> None:
    torch.manual_seed(0)
    feats = torch.randn(1, 1024, 64, 64)
    protos = torch.randn(3, 1024)
    types = torch.eye(3, dtype=torch.long)[:2]  # 2 queries, 3 instance tokens
    with torch.inference_mode():
        logits, maps = decode(
            full_decoder, feats, protos[:2], protos, types, torch.zeros(2, TEXT_DIM)
        )
    assert logits.shape == (2, 1, 256, 256)
    assert maps.shape == (2, 1, 896, 896)
    out = postprocess(logits, 896, (896, 504), (480, 270))
    assert out.shape == (2, 480, 270)
    sparse = full_decoder.sparse_tokens(top1_points(maps), protos, types, torch.zeros(2, TEXT_DIM))
    assert sparse.shape == (2, 2 + 1 + 3, 256)  # point + pad, text, 3 instances
    own = full_decoder.sparse_tokens(top1_points(maps), protos[:2], None, None)
    assert own.shape == (2, 2 + 1, 256)  # no text token; only each query's own prototype
    boxed = full_decoder.sparse_tokens(top1_points(maps), protos[:2], None, None, torch.ones(2, 4))
    assert boxed.shape == (2, 1 + 2 + 1, 256)  # a box replaces the padding point


def test_preprocess_resizes_longest_side_and_zeroes_padding() -> None:
    image = np.full((60, 30, 3), 0.485, np.float32)
    image[..., 1], image[..., 2] = 0.9, 0.1
    x, valid = preprocess(image, SIZE)
    assert valid == (112, 56) and x.shape == (1, 3, 112, 112)
    assert torch.allclose(x[0, 0, :, :56], torch.zeros(112, 56), atol=1e-5)  # mean → 0
    assert bool((x[0, 1, :, :56] > 1).all())
    assert bool((x[:, :, :, 56:] == 0).all())
    mask = mask_to_input(np.ones((60, 30)), SIZE)
    assert mask.shape == (1, 112, 112) and mask[0, :, :56].min() == 1 and mask[0, :, 56:].max() == 0


def test_prototype_geometric_map_and_point_find_the_object() -> None:
    """Two feature clusters: the prototype of the mask, its cosine map and its top-1 point."""
    torch.manual_seed(0)
    a, b = torch.randn(16), torch.randn(16)
    feats = b[:, None, None].repeat(1, 8, 8) + 0.05 * torch.randn(16, 8, 8)
    feats[:, 2:4, 5:7] = a[:, None, None] + 0.05 * torch.randn(16, 2, 2)
    mask = torch.zeros(1, SIZE, SIZE)
    mask[0, 28:56, 70:98] = 1  # patches rows 2-3, cols 5-6
    proto = prototypes(feats[None], mask)
    assert torch.allclose(proto[0], feats[:, 2:4, 5:7].mean((1, 2)), atol=1e-5)
    maps = geometric_maps(feats[None], proto, SIZE)
    x, y = top1_points(maps)[0, 0].tolist()
    assert 28 <= y < 56 and 70 <= x < 98
    assert maps[0, 0, 40, 84] > 0.9 and maps[0, 0, 100, 10] < maps[0, 0, 40, 84] - 0.3
    tiny = torch.zeros(1, SIZE, SIZE)
    tiny[0, 30:33, 72:75] = 1  # smaller than half a patch: soft fallback, no NaN
    assert torch.isfinite(prototypes(feats[None], tiny)).all()
    with pytest.raises(ValueError, match="empty"):
        prototypes(feats[None], torch.zeros(1, SIZE, SIZE))


def test_backend_end_to_end_shapes_and_identity_point() -> None:
    """Target = example: every object's top-1 point lands on that object (random weights).

    This proves the geometric instruction is aligned with the image through preprocessing,
    features and resizing; with untrained weights it says nothing about mask quality.
    """
    image, labels = wide_stack(4)
    backend = tiny_backend()
    feats = [backend.compute_features(im[..., None].astype(np.float32) / 65535) for im in image]
    from src_models.types import Example

    backend.fit([Example(1, feats[1], labels[1])])
    assert list(backend._ids) == [1, 2] and backend._inst.shape == (2, 32)
    tokens = torch.from_numpy(feats[1].tokens).float()[None]
    maps = geometric_maps(tokens, backend._query, SIZE)
    points = top1_points(maps)[:, 0]
    scale = 64 / SIZE
    for k, (x, y) in zip([1, 2], points.tolist(), strict=True):
        assert labels[1][int(y * scale), int(x * scale)] == k
    lab, conf = backend.predict(feats[2], (64, 48))
    assert lab.shape == (64, 48) and lab.dtype == np.int32 and set(np.unique(lab)) <= {0, 1, 2}
    assert conf.dtype == np.float32 and conf.min() >= 0.5 and conf.max() <= 1


def test_several_examples_become_extra_instance_tokens() -> None:
    image, labels = wide_stack(4)
    backend = tiny_backend(max_examples=2)
    feats = [backend.compute_features(im[..., None].astype(np.float32) / 65535) for im in image]
    from src_models.types import Example

    backend.fit([Example(i, feats[i], labels[i]) for i in (0, 1, 3)])
    assert backend._inst.shape[0] == 4  # 2 objects × 2 of the 3 example slices
    assert backend._owner.tolist() == [1, 1, 2, 2]


def test_text_embedding_file_and_empty_text_paths(tmp_path: Path) -> None:
    path = save_text_embedding(tmp_path / "emb.pt", torch.randn(TEXT_DIM), "a photo of a cell")
    assert load_text_embedding(path).shape == (TEXT_DIM,)
    torch.save(torch.zeros(5), tmp_path / "bad.pt")
    with pytest.raises(RuntimeError, match="segic-text"):
        load_text_embedding(tmp_path / "bad.pt")
    image, labels = wide_stack(3)
    outs = {}
    for name, options in {
        "zero": {},
        "omit": {"no_text": "omit"},
        "file": {"text_embedding": str(path)},
    }.items():
        backend = tiny_backend(tiny_decoder(), **options)
        feats = [backend.compute_features(im[..., None].astype(np.float32) / 65535) for im in image]
        from src_models.types import Example

        backend.fit([Example(0, feats[0], labels[0])])
        outs[name] = backend.object_logits(feats[1], (64, 48))
    assert not torch.allclose(outs["zero"], outs["omit"])  # the text token takes part
    assert not torch.allclose(outs["zero"], outs["file"])


def test_text_command_explains_missing_transformers(tmp_path: Path) -> None:
    try:  # transformers is deliberately not a dependency
        import transformers  # noqa: F401
    except ImportError:
        from src_models.cli import main

        assert main(["segic-text", "a photo of a cell", "--out", str(tmp_path / "e.pt")]) == 2
        assert not (tmp_path / "e.pt").exists()
    else:
        pytest.skip("transformers is installed here")


def test_registered_backend_builds_with_random_weights() -> None:
    from src_models.registry import BACKENDS, build_backend

    info = BACKENDS["dinov2-segic"]
    assert info.gpu_recommended
    backend = build_backend(
        "dinov2-segic",
        device="cpu",
        weights="random",
        backbone="vits14",
        input_size=SIZE,
        dtype="float32",
    )
    from src_models.engine import propagate

    image, labels = wide_stack(3)
    examples = np.zeros_like(labels)
    examples[1] = labels[1]
    results = list(propagate(image, examples, backend))
    assert [r.index for r in results] == [0, 2]
    assert results[0].labels.shape == (64, 48) and "backbone" in results[0].timings


def test_default_texts_are_computed_once_then_cached_or_warn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    from src_models.backends.configs import SegicConfig
    from src_models.backends.segic import default_texts
    from src_models.heads import segic_text

    monkeypatch.setattr("src_models.weights.cache_dir", lambda: tmp_path / "weights")

    def no_clip(*args: object, **kwargs: object) -> torch.Tensor:
        raise RuntimeError("no CLIP here")

    monkeypatch.setattr(segic_text, "compute_text_embedding", no_clip)
    with pytest.warns(UserWarning, match="weights download clip_vit_l14_text"):
        assert default_texts(SegicConfig()) == {}
    calls: list[str] = []

    def fake_clip(text: str, *args: object, **kwargs: object) -> torch.Tensor:
        calls.append(text)
        return torch.full((TEXT_DIM,), float(len(text)))

    monkeypatch.setattr(segic_text, "compute_text_embedding", fake_clip)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        texts = default_texts(SegicConfig())
        again = default_texts(SegicConfig())
    assert calls == ["", "please segment the instances"]  # computed once, then from the cache
    assert torch.equal(again["video"], texts["video"]) and texts["image"].abs().sum() == 0
    assert segic_text.default_embedding_path("").is_file()
