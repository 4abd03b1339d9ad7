"""Weights manager: where checkpoints come from, where they live, how they are loaded safely.

Resolution order for a checkpoint: an explicit path → ``$NAPARI_INCONTEXT_WEIGHTS/<file>`` →
the user cache dir → the Hugging Face cache (timm models) → a download, only when asked for
(``napari-incontext weights download NAME``). Nothing is ever downloaded implicitly, so an
offline machine gets a one-line instruction instead of a hang or a traceback.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

ENV_DIR = "NAPARI_INCONTEXT_WEIGHTS"


@dataclass(frozen=True)
class WeightsSpec:
    """One checkpoint.

    Attributes:
        name: registry key, e.g. ``dinov2_vits14``.
        file_name: the official file name (what the user downloads).
        url: the official download URL, if any.
        hf_id: Hugging Face repo id holding an equivalent file (e.g. timm's mirror).
        hf_file: file name inside ``hf_id``.
        sha256: the full sha256 when known, else the prefix that the official file name
            carries (torch.hub convention), else None.
        size: bytes, when known.
        license: licence of the weights.
        gated: True when the user must request access first.
        how_to_get: one sentence for gated or manual-only weights.
    """

    name: str
    file_name: str
    url: str | None = None
    hf_id: str | None = None
    hf_file: str = "model.safetensors"
    sha256: str | None = None
    size: int | None = None
    license: str = ""
    gated: bool = False
    how_to_get: str = ""


def _dinov2(size: str, params: str, nbytes: int | None) -> WeightsSpec:
    arch = {"s": "small", "b": "base", "l": "large", "g": "giant"}[size]
    return WeightsSpec(
        name=f"dinov2_vit{size}14",
        file_name=f"dinov2_vit{size}14_pretrain.pth",
        url=f"https://dl.fbaipublicfiles.com/dinov2/dinov2_vit{size}14/dinov2_vit{size}14_pretrain.pth",
        hf_id=f"timm/vit_{arch}_patch14_dinov2.lvd142m",
        size=nbytes,
        license=f"Apache-2.0 (DINOv2 ViT-{size.upper()}/14, {params} params)",
    )


WEIGHTS: dict[str, WeightsSpec] = {
    "dinov2_vits14": _dinov2("s", "21M", None),
    "dinov2_vitb14": _dinov2("b", "86M", None),
    "dinov2_vitl14": _dinov2("l", "300M", 1_217_586_395),
    "dinov2_vitg14": _dinov2("g", "1.1B", None),
}


def get_spec(name: str) -> WeightsSpec:
    if name not in WEIGHTS:
        raise ValueError(f"unknown weights {name!r}: choose one of {', '.join(WEIGHTS)}")
    return WEIGHTS[name]


def cache_dir() -> Path:
    """The user cache directory for checkpoints (created on demand)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-incontext")) / "weights"


def _hf_cached(spec: WeightsSpec) -> Path | None:
    if spec.hf_id is None:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(spec.hf_id, spec.hf_file)
    return Path(found) if isinstance(found, str) else None


def candidates(spec: WeightsSpec) -> list[Path]:
    """Local places searched for ``spec``, in order (they need not exist)."""
    places = []
    if os.environ.get(ENV_DIR):
        places.append(Path(os.environ[ENV_DIR]) / spec.file_name)
    places.append(cache_dir() / spec.file_name)
    return places


def find_local(spec: WeightsSpec) -> Path | None:
    """The first existing local file for ``spec`` (env dir, cache dir, HF cache), or None."""
    for place in candidates(spec):
        if place.is_file():
            return place
    return _hf_cached(spec)


def missing_message(spec: WeightsSpec) -> str:
    """What to do when ``spec`` is nowhere on this machine."""
    where = f"${ENV_DIR}/{spec.file_name} or {cache_dir() / spec.file_name}"
    if spec.gated:
        return f"{spec.name} weights not found. {spec.how_to_get} Then put the file at {where}."
    source = spec.url or (f"huggingface.co/{spec.hf_id}" if spec.hf_id else spec.how_to_get)
    return (
        f"{spec.name} weights not found. Run `napari-incontext weights download {spec.name}` "
        f"(needs internet), or download {source} yourself and pass its path (--weights) "
        f"or put it at {where}."
    )


def resolve(spec: WeightsSpec | str, path: str | Path | None = None) -> Path:
    """Path of a local checkpoint for ``spec``; raises RuntimeError saying how to get it."""
    spec = get_spec(spec) if isinstance(spec, str) else spec
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise RuntimeError(f"weights file {path} does not exist")
        return path
    found = find_local(spec)
    if found is None:
        raise RuntimeError(missing_message(spec))
    return found


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | Path, spec: WeightsSpec) -> None:
    """Check a file against the spec's sha256 (or sha256 prefix); RuntimeError on mismatch."""
    if spec.sha256 is None:
        return
    actual = sha256sum(path)
    if not actual.startswith(spec.sha256):
        raise RuntimeError(
            f"{path} does not match {spec.name}: sha256 {actual[:16]}…, expected "
            f"{spec.sha256[:16]}…. The file is corrupted or not {spec.file_name}: "
            "download it again."
        )


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint without executing pickled code.

    Accepts ``.safetensors`` and torch files (``weights_only=True``, mapped to the CPU);
    unwraps a ``{"model": ...}`` / ``{"state_dict": ...}`` wrapper.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and safetensors errors all mean "bad file"
        raise RuntimeError(
            f"cannot load {path} as a weights-only checkpoint ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}); it is corrupted or contains code"
        ) from error
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise RuntimeError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state
