"""Weights manager: where checkpoints come from, where they live, how they are loaded safely.

Resolution order for a checkpoint: an explicit path → ``$NAPARI_INCONTEXT_WEIGHTS/<file>`` →
the user cache dir → the Hugging Face cache (timm models) → a download, only when asked for
(``napari-incontext weights download NAME``). Nothing is ever downloaded implicitly, so an
offline machine gets a one-line instruction instead of a hang or a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from src_models.hashing import file_sha256

if TYPE_CHECKING:
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


def _sam(arch: str, tag: str, sha256: str, nbytes: int) -> WeightsSpec:
    """Official SAM checkpoint. The hex tag in the file name is an MD5 prefix, not a sha256
    prefix; the full sha256 and the sizes are the values published by several independent
    projects (e.g. micro-sam's checksum table) for the files at these URLs."""
    file_name = f"sam_{arch}_{tag}.pth"
    return WeightsSpec(
        name=f"sam_{arch}",
        file_name=file_name,
        url=f"https://dl.fbaipublicfiles.com/segment_anything/{file_name}",
        sha256=sha256,
        size=nbytes,
        license=f"Apache-2.0 (Segment Anything ViT-{arch[-1].upper()})",
    )


def _dinov3(size: str, params: str, sha_prefix: str) -> WeightsSpec:
    """Official DINOv3 LVD-1689M checkpoint (gated); the hex tag in its name is a sha256 prefix."""
    arch = {"s": "small", "b": "base", "l": "large"}[size]
    hf_id = f"timm/vit_{arch}_patch16_dinov3.lvd1689m"
    file_name = f"dinov3_vit{size}16_pretrain_lvd1689m-{sha_prefix}.pth"
    return WeightsSpec(
        name=f"dinov3_vit{size}16",
        file_name=file_name,
        hf_id=hf_id,
        sha256=sha_prefix,
        license=f"DINOv3 License (DINOv3 ViT-{size.upper()}/16, {params} params)",
        gated=True,
        how_to_get=(
            "DINOv3 weights are gated: request access at "
            "https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/ (the e-mailed "
            f"links include {file_name}), or accept the licence at huggingface.co/{hf_id} and "
            "download its model.safetensors (pass that path with --weights)."
        ),
    )


def _segic(tag: str) -> WeightsSpec:
    """A released SEGIC decoder checkpoint (DINOv2-L); its sha256 is not published."""
    return WeightsSpec(
        name=f"segic_dinov2_l_{tag}",
        file_name=f"segic_dinov2_l_{tag}.pth",
        hf_id="menglc/SEGIC",
        hf_file=f"segic_dinov2_l_{tag}.pth",
        license="MIT (SEGIC decoder for DINOv2-L, 5.38M params; needs dinov2_vitl14 too)",
    )


WEIGHTS: dict[str, WeightsSpec] = {
    "dinov2_vits14": _dinov2("s", "21M", None),
    "dinov2_vitb14": _dinov2("b", "86M", None),
    "dinov2_vitl14": _dinov2("l", "300M", 1_217_586_395),
    "dinov2_vitg14": _dinov2("g", "1.1B", None),
    "sam_vit_b": _sam(
        "vit_b",
        "01ec64",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        375_042_383,
    ),
    "sam_vit_l": _sam(
        "vit_l",
        "0b3195",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        1_249_524_607,
    ),
    "sam_vit_h": _sam(
        "vit_h",
        "4b8939",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        2_564_550_879,
    ),
    "segic_dinov2_l_80kx12e": _segic("80kx12e"),
    "segic_dinov2_l_160kx12e": _segic("160kx12e"),
    "clip_vit_l14_text": WeightsSpec(
        name="clip_vit_l14_text",
        file_name="clip-vit-large-patch14.safetensors",
        hf_id="openai/clip-vit-large-patch14",
        hf_file="model.safetensors",
        license="MIT (OpenAI CLIP ViT-L/14; its text tower gives SEGIC's meta instruction)",
        how_to_get=(
            "`napari-incontext weights download clip_vit_l14_text` fetches it into the Hugging "
            "Face cache and computes SEGIC's two default text embeddings (needs transformers)"
        ),
    ),
    "dinov3_vits16": _dinov3("s", "21M", "08c60483"),
    "dinov3_vitb16": _dinov3("b", "86M", "73cec8be"),
    "dinov3_vitl16": _dinov3("l", "300M", "8aa4cbdd"),
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


def available(*names: str) -> bool:
    """True when every named checkpoint is on this machine (file checks only, no torch import)."""
    return all(find_local(get_spec(name)) is not None for name in names)


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


def resolve_checked(spec: WeightsSpec | str, path: str | Path | None = None) -> Path:
    """:func:`resolve`, plus the sha256 check for a file under its official name.

    An explicit path to a file of another name (a fine-tuned or converted checkpoint) is not
    compared with the official hash: the loader's strict state-dict load checks it instead
    (every key and shape must match the model).
    """
    spec = get_spec(spec) if isinstance(spec, str) else spec
    found = resolve(spec, path)
    if path is None or found.name == spec.file_name:
        verify_once(found, spec)
    return found


def verify(path: str | Path, spec: WeightsSpec) -> None:
    """Check a file against the spec's sha256 (or sha256 prefix); RuntimeError on mismatch."""
    if spec.sha256 is None:
        return
    actual = file_sha256(path)
    if not actual.startswith(spec.sha256):
        raise RuntimeError(
            f"{path} does not match {spec.name}: sha256 {actual[:16]}…, expected "
            f"{spec.sha256}. The file is corrupted or not {spec.file_name}: "
            "download it again."
        )


_VERIFIED: set[tuple[str, int, int, str]] = set()


def verify_once(path: str | Path, spec: WeightsSpec) -> None:
    """:func:`verify`, remembered per (file, size, mtime) so a process hashes a file once."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, spec.sha256 or "")
    if key not in _VERIFIED:
        verify(path, spec)
        _VERIFIED.add(key)


def _verified_record() -> Path:
    return cache_dir() / "verified.json"


def check_status(path: str | Path, spec: WeightsSpec) -> str:
    """``ok`` when the file matches the spec's size and sha256 (or has nothing to check),
    else why not. A passed hash is remembered per (file, size, mtime) in
    ``<cache>/verified.json``, so listing the weights hashes each file once."""
    import json

    path = Path(path)
    stat = path.stat()
    if spec.size is not None and stat.st_size != spec.size:
        return f"wrong size ({stat.st_size:,} bytes, expected {spec.size:,})"
    if spec.sha256 is None:
        return "ok"
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{spec.sha256}"
    record = _verified_record()
    try:
        passed = set(json.loads(record.read_text()))
    except (OSError, ValueError):
        passed = set()
    if key in passed:
        return "ok"
    try:
        verify(path, spec)
    except RuntimeError:
        return "sha256 mismatch: download it again"
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(sorted(passed | {key})))
        os.replace(tmp, record)
    except OSError:
        pass  # not remembered: hashed again next time
    return "ok"


def load_strict(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path, hint: str
) -> None:
    """``model.load_state_dict(state, strict=True)``, but a file for another model gives one
    line (wrong shapes, missing and unexpected keys, with counts) ending with ``hint``."""
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if wrong or missing or unexpected:
        raise RuntimeError(
            f"{source} does not fit {type(model).__name__}: wrong shapes {wrong[:2]} "
            f"({len(wrong)}), missing {missing[:2]} ({len(missing)}), unexpected "
            f"{unexpected[:2]} ({len(unexpected)}); {hint}"
        )
    model.load_state_dict(state, strict=True)


def load_failure(error: Exception) -> str:
    """Why a weights-only load failed, in a few words (never torch's advice to turn
    ``weights_only`` off: that would run whatever code the file carries)."""
    text = str(error).strip()
    if "weights_only" in text or "Weights only" in text:
        return f"{type(error).__name__}: it holds pickled Python objects, not only tensors"
    first = text.splitlines()[0][:200] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def probe_checkpoint(path: str | Path, kind: str | None = None) -> None:
    """Open a checkpoint weights-only without reading its tensors into memory (safetensors
    header, or a memory-mapped ``torch.load``); RuntimeError when it is no such file.

    Args:
        path: the file.
        kind: a file name whose suffix tells the format (default: ``path``'s own).
    """
    import torch

    path = Path(path)
    try:
        if Path(kind or path.name).suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                if not list(handle.keys()):
                    raise ValueError("it holds no tensors")
            return
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # legacy format
        if not isinstance(state, dict) or not state:
            raise ValueError(f"it holds a {type(state).__name__}, not a state dict")
    except Exception as error:  # pickle, zip and safetensors errors all mean "bad file"
        raise RuntimeError(
            f"{kind or path.name} is not a weights-only checkpoint ({load_failure(error)}); "
            "it is damaged, not a checkpoint, or contains code, so it was not kept"
        ) from error


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a checkpoint without executing pickled code.

    Accepts ``.safetensors`` and torch files (``weights_only=True``, mapped to the CPU);
    unwraps a ``{"model": ...}`` / ``{"state_dict": ...}`` wrapper.
    """
    import torch

    path = Path(path)
    state: object  # checked to be a dict below
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and safetensors errors all mean "bad file"
        raise RuntimeError(
            f"cannot load {path} as a weights-only checkpoint ({load_failure(error)}); "
            "it is corrupted or contains code"
        ) from error
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise RuntimeError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state
