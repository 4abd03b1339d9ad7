"""DINOv2 / DINOv3 features against the official code (scripts/parity/dino_parity.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from src_models.backbones.dinov2 import create_dinov2, has_registers, load_dinov2_weights
from src_models.backbones.dinov3 import create_dinov3, has_qkv_bias, load_dinov3_weights
from tests.parity import load_golden, rel_err, seeded_state

TOL = 1e-5
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def golden_input(image: np.ndarray, grid: tuple[int, int], patch: int) -> torch.Tensor:
    """The script's input: each pixel of the stored image repeated patch × patch, normalised."""
    x = image[: grid[0], : grid[1]].astype(np.float32) / 255.0
    x = np.repeat(np.repeat(x, patch, 0), patch, 1)
    x = (x - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def official_state(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, torch.Tensor]:
    """The official-layout state dict: seeded parameters + the stored buffers."""
    state = seeded_state(meta["param_shapes"])
    for key, value in arrays.items():
        if key.startswith("buffer/"):
            state[key[len("buffer/") :]] = torch.from_numpy(value)
    return state


def project_tokens(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        out = model.forward_features(x)[0, model.num_prefix_tokens :]
    return out.numpy()


@pytest.mark.parametrize("variant", ["plain", "reg4"])
def test_dinov2_matches_official_at_native_and_other_grids(variant: str) -> None:
    arrays, meta = load_golden(f"dinov2_{variant}")
    state = official_state(arrays, meta)
    assert has_registers(state) == (variant == "reg4")
    model = create_dinov2(
        "vits14", registers=has_registers(state), depth=2, embed_dim=32, num_heads=2
    )
    load_dinov2_weights(model, state, f"golden {variant}")
    model.eval()
    for rows, cols in meta["grids"]:
        expected = arrays[f"tokens_{rows}x{cols}"]
        got = project_tokens(model, golden_input(arrays["image"], (rows, cols), meta["patch"]))
        assert rel_err(got, expected) <= TOL, (variant, rows, cols, rel_err(got, expected))


def test_dinov2_timm_resampling_differs_from_official_off_grid() -> None:
    """The golden test is sensitive: timm's own resampling misses it off the native grid."""
    arrays, meta = load_golden("dinov2_plain")
    model = create_dinov2("vits14", depth=2, embed_dim=32, num_heads=2)
    load_dinov2_weights(model, official_state(arrays, meta), "golden")
    del model._pos_embed  # back to timm's method
    x = golden_input(arrays["image"], (16, 22), meta["patch"])
    assert rel_err(project_tokens(model.eval(), x), arrays["tokens_16x22"]) > 1e-3


def test_dinov3_matches_official() -> None:
    arrays, meta = load_golden("dinov3_vits16")
    state = official_state(arrays, meta)
    model = create_dinov3(
        "vits16", qkv_bias=has_qkv_bias(state), depth=2, embed_dim=64, num_heads=2
    )
    load_dinov3_weights(model, state, "golden")
    model.eval()
    for rows, cols in meta["grids"]:
        expected = arrays[f"tokens_{rows}x{cols}"]
        got = project_tokens(model, golden_input(arrays["image"], (rows, cols), meta["patch"]))
        assert rel_err(got, expected) <= TOL, (rows, cols, rel_err(got, expected))


def test_official_reg4_file_loads_through_build_dinov2(tmp_path) -> None:
    """An official dinov2_vits14_reg4_pretrain.pth (register tokens) builds the _reg4 ViT."""
    from src_models.backbones.dinov2 import build_dinov2

    official = create_dinov2("vits14", registers=True).state_dict()
    state = {k: v for k, v in official.items() if k not in ("reg_token", "cls_token")}
    state["register_tokens"] = official["reg_token"]
    state["cls_token"] = official["cls_token"]
    state["pos_embed"] = torch.cat([torch.zeros(1, 1, 384), official["pos_embed"]], dim=1)
    state["mask_token"] = torch.zeros(1, 384)
    path = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save(state, path)
    model = build_dinov2("vits14", path)
    assert model.reg_token is not None and model.num_prefix_tokens == 5
    assert torch.equal(model.reg_token, official["reg_token"])


@pytest.mark.parametrize("what", ["vitb14", "dinov3"])
def test_wrong_architecture_file_is_one_clear_line(what: str) -> None:
    arrays, meta = load_golden("dinov3_vits16" if what == "dinov3" else "dinov2_plain")
    state = official_state(arrays, meta)
    model = create_dinov2("vits14", depth=2, embed_dim=48 if what == "vitb14" else 64, num_heads=2)
    with pytest.raises(RuntimeError) as error:
        load_dinov2_weights(model, state, "file.pth")
    message = str(error.value)
    assert len(message.splitlines()) == 1 and "file.pth" in message
    assert ("DINOv3" in message) if what == "dinov3" else ("width 32" in message)


@pytest.mark.parametrize("what", ["dinov2", "vitb16"])
def test_wrong_dinov3_file_is_one_clear_line(what: str) -> None:
    arrays, meta = load_golden("dinov2_plain" if what == "dinov2" else "dinov3_vits16")
    state = official_state(arrays, meta)
    width = 96 if what == "vitb16" else 32
    model = create_dinov3("vits16", qkv_bias=True, depth=2, embed_dim=width, num_heads=2)
    with pytest.raises(RuntimeError) as error:
        load_dinov3_weights(model, state, "file.pth")
    message = str(error.value)
    assert len(message.splitlines()) == 1 and "file.pth" in message
    assert ("not DINOv3" in message) if what == "dinov2" else ("wrong shapes" in message)
