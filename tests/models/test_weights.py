"""Weights manager: SAM specs, loading by path and by env-var directory with hash checks,
tampered and code-carrying files rejected, explicit atomic downloads, the `weights` CLI."""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from src_models import weights as W
from src_models.hashing import file_sha256
from src_models.sam.build import build_sam, build_sam_random
from src_models.weights_download import OFFLINE_ENV, download
from tests.models.tiny_backends import TEST_TINY_SAM


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees an empty user cache dir and no env dir."""
    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "user_cache")
    monkeypatch.delenv(W.ENV_DIR, raising=False)
    monkeypatch.delenv(OFFLINE_ENV, raising=False)


def _save_tiny(path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = build_sam_random(TEST_TINY_SAM).state_dict()
    torch.save(state, path)
    return state


def _spec_for(path: Path, name: str = "sam_vit_b") -> W.WeightsSpec:
    return dataclasses.replace(W.get_spec(name), file_name=path.name, sha256=file_sha256(path))


def test_sam_specs_are_official() -> None:
    for arch, tag in [("vit_b", "01ec64"), ("vit_l", "0b3195"), ("vit_h", "4b8939")]:
        spec = W.get_spec(f"sam_{arch}")
        assert spec.file_name == f"sam_{arch}_{tag}.pth"
        assert spec.url == f"https://dl.fbaipublicfiles.com/segment_anything/sam_{arch}_{tag}.pth"
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256 or "")
        assert spec.size and spec.size > 300e6 and "Apache-2.0" in spec.license


@pytest.mark.slow
def test_official_vit_b_roundtrip_by_path_and_env_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """segment-anything's own vit_b builder → raw state dict via torch.save → our loader."""
    from segment_anything import build_sam_vit_b

    torch.manual_seed(1)
    original = build_sam_vit_b(checkpoint=None)
    folder = tmp_path / "weights_dir"
    folder.mkdir()
    path = folder / "sam_vit_b_01ec64.pth"
    torch.save(original.state_dict(), path)
    spec = _spec_for(path)

    by_path = build_sam("vit_b", path, spec)
    monkeypatch.setenv(W.ENV_DIR, str(folder))
    by_env = build_sam("vit_b", None, spec)
    for model in (by_path, by_env):
        for key, value in original.state_dict().items():
            assert torch.equal(model.state_dict()[key], value), key
    assert by_env.weights_tag.startswith("vit_b:sam_vit_b_01ec64.pth")


def test_tiny_sam_by_env_dir_matches_saved_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "env"
    folder.mkdir()
    path = folder / "tiny.pth"
    state = _save_tiny(path)
    monkeypatch.setenv(W.ENV_DIR, str(folder))
    spec = _spec_for(path)
    model = build_sam(TEST_TINY_SAM, None, spec)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_tampered_file_is_rejected_naming_file_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    _save_tiny(path)
    spec = _spec_for(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeError) as error:
        build_sam(TEST_TINY_SAM, path, spec)
    assert str(path) in str(error.value) and spec.sha256 in str(error.value)


class _Payload:
    """Unpickling this runs code (writes a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "pwned"))


def test_checkpoint_with_pickled_code_is_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pth"
    torch.save({"model": _Payload(marker)}, path)
    with pytest.raises(RuntimeError, match="contains code"):
        build_sam(TEST_TINY_SAM, path, _spec_for(path))
    assert not marker.exists()


def test_wrong_architecture_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    state = _save_tiny(path)
    state.pop(next(iter(state)))
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="does not fit Sam: .*SAM checkpoint of the same size"):
        build_sam(TEST_TINY_SAM, path, _spec_for(path))


def test_missing_official_weights_say_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="napari-incontext weights download sam_vit_b"):
        build_sam("vit_b")


class _FakeResponse(io.BytesIO):
    headers: ClassVar[dict[str, str]] = {}


def test_download_is_atomic_and_verified(tmp_path: Path) -> None:
    good = tmp_path / "src.bin"
    _save_tiny(good)
    payload = good.read_bytes()
    spec = dataclasses.replace(W.get_spec("sam_vit_b"), sha256=file_sha256(good), size=len(payload))
    out = download(spec, tmp_path / "dl", opener=lambda url: _FakeResponse(payload), progress=False)
    assert out.read_bytes() == payload and out.name == spec.file_name
    assert not list((tmp_path / "dl").glob("*.part"))

    bad = dataclasses.replace(spec, sha256="0" * 64)
    target = tmp_path / "dl2"
    with pytest.raises(RuntimeError, match="expected 0000"):
        download(bad, target, opener=lambda url: _FakeResponse(payload), progress=False)
    assert not any(target.iterdir())  # neither the file nor its .part stays behind


def test_offline_env_forbids_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFLINE_ENV, "1")
    with pytest.raises(RuntimeError, match="downloads are disabled"):
        download("sam_vit_b", tmp_path, opener=lambda url: pytest.fail("no network call"))


def test_weights_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from src_models.cli import main

    # hermetic: no weights from this machine's caches (timm's DINOv2 may be in the HF cache)
    monkeypatch.delenv(W.ENV_DIR, raising=False)
    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(W, "_hf_cached", lambda spec: None)
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    for name in ("sam_vit_b", "sam_vit_l", "sam_vit_h", "dinov2_vits14"):
        assert re.search(rf"^{name}\s.*missing", listing, re.MULTILINE)

    folder = tmp_path / "env"
    folder.mkdir()
    (folder / W.get_spec("sam_vit_b").file_name).write_bytes(b"not the real file")
    (folder / W.get_spec("dinov2_vits14").file_name).write_bytes(b"no published hash")
    monkeypatch.setenv(W.ENV_DIR, str(folder))
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert re.search(r"^sam_vit_b\s.*BAD \(wrong size", listing, re.MULTILINE)  # never "ready"
    assert re.search(r"^dinov2_vits14\s.*ready", listing, re.MULTILINE)
    assert main(["weights", "path", "sam_vit_b"]) == 0
    assert capsys.readouterr().out.strip() == str(folder / "sam_vit_b_01ec64.pth")
    assert main(["weights", "verify", "sam_vit_b"]) == 1  # wrong bytes → BAD, exit 1
    assert "BAD" in capsys.readouterr().out
    assert main(["weights", "path", "sam_vit_h"]) == 2  # missing → one-line instruction
    err = capsys.readouterr().err
    assert "weights download sam_vit_h" in err and len(err.strip().splitlines()) == 1


def test_list_status_checks_the_hash_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of the right size but wrong bytes is BAD; a good file is hashed only once."""
    import hashlib

    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "cache")
    payload = b"weights" * 100
    good = tmp_path / "good.pth"
    good.write_bytes(payload)
    spec = W.WeightsSpec("x", "good.pth", sha256=hashlib.sha256(payload).hexdigest(), size=700)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"x" * 700)
    assert W.check_status(bad, spec).startswith("sha256 mismatch")
    assert W.check_status(good, spec) == "ok"
    monkeypatch.setattr(W, "verify", lambda *a: pytest.fail("hashed twice"))
    assert W.check_status(good, spec) == "ok"  # remembered in verified.json
