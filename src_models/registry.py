"""The one registry of backends: a literal dict of name → :class:`BackendInfo`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from src_models.backends.base import Backend
from src_models.weights import available


@dataclass(frozen=True)
class BackendInfo:
    """How to build a backend and what a user should know before choosing it.

    Attributes:
        name: registry key, also the CLI ``--backend`` value.
        description: one line for menus and ``napari-incontext backends``.
        build: ``build(device="auto", weights=None, **options) -> Backend``.
        weights_available: True when the backend can run offline right now.
        gpu_recommended: True when a CPU run takes several seconds per slice.
    """

    name: str
    description: str
    build: Callable[..., Backend]
    weights_available: Callable[[], bool]
    gpu_recommended: bool = False


def _lazy(module: str, builder: str, **defaults: Any) -> Callable[..., Backend]:
    """A builder that imports ``module`` only when a backend is built (torch stays unloaded
    until then); ``defaults`` are options the caller may override."""

    def build(device: str = "auto", weights: Any = None, **options: Any) -> Backend:
        make = getattr(import_module(module), builder)
        return make(device=device, weights=weights, **{**defaults, **options})

    return build


BACKENDS: dict[str, BackendInfo] = {
    "classic": BackendInfo(
        name="classic",
        description="Multiscale filter features + random forest; no weights, fast on CPU.",
        build=_lazy("src_models.backends.classic", "build_classic_backend"),
        weights_available=lambda: True,
    ),
    "dinov2": BackendInfo(
        name="dinov2",
        description="DINOv2 patch matching (prototype + nearest neighbour), training-free.",
        build=_lazy("src_models.backends.dinov2", "build_dinov2_backend"),
        weights_available=lambda: available("dinov2_vits14"),
    ),
    "dinov2-sam": BackendInfo(
        name="dinov2-sam",
        description="DINOv2 correspondence + SAM prompted PerSAM-style (option persam_f, correspondence=sam).",
        build=_lazy("src_models.backends.dinov2_sam", "build_dinov2_sam_backend"),
        weights_available=lambda: available("dinov2_vits14", "sam_vit_b"),
        gpu_recommended=True,
    ),
    "dinov2-segic": BackendInfo(
        name="dinov2-segic",
        description="SEGIC in-context decoder on DINOv2-L (released checkpoint or fine-tuned).",
        build=_lazy("src_models.backends.segic", "build_segic_backend"),
        weights_available=lambda: (
            available("dinov2_vitl14")
            and (available("segic_dinov2_l_80kx12e") or available("segic_dinov2_l_160kx12e"))
        ),
        gpu_recommended=True,
    ),
    "dinov3-insid3": BackendInfo(
        name="dinov3-insid3",
        description="INSID3: DINOv3 clustering + debiased matching, training-free (gated weights).",
        build=_lazy("src_models.backends.insid3", "build_insid3_backend"),
        weights_available=lambda: available("dinov3_vits16"),
    ),
    "dinov2-insid3": BackendInfo(
        name="dinov2-insid3",
        description="INSID3 head on DINOv2 (ungated fallback of dinov3-insid3), training-free.",
        build=_lazy("src_models.backends.insid3", "build_insid3_backend", backbone="dinov2_vits14"),
        weights_available=lambda: available("dinov2_vits14"),
    ),
}


def _weights_found(info: BackendInfo) -> bool:
    try:
        return bool(info.weights_available())
    except Exception:  # a broken optional backend must not hide the others
        return False


def list_backends() -> list[dict[str, Any]]:
    """Every registered backend as a dict: name, description, weights_available, gpu_recommended."""
    return [
        {
            "name": info.name,
            "description": info.description,
            "weights_available": _weights_found(info),
            "gpu_recommended": info.gpu_recommended,
        }
        for info in BACKENDS.values()
    ]


def build_backend(name: str, **options: Any) -> Backend:
    """Build a registered backend; options go to its builder (device, weights, config fields)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    refine = {k: options.pop(k) for k in list(options) if k.startswith("sam_refine")}
    backend = BACKENDS[name].build(**options)
    if refine.get("sam_refine"):  # SAM refinement of any backend's proposals
        from src_models.backends.sam_refine import wrap_with_sam

        return wrap_with_sam(backend, device=options.get("device", "auto"), **refine)
    return backend
