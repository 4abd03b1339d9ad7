"""The one registry of backends: a literal dict of name → :class:`BackendInfo`.

Every backend is built the same way: options → its typed config (:mod:`src_models.config`)
→ its builder ``build(config, device=..., **weights)``. Weights have one name everywhere:
``weights`` = the backbone checkpoint, ``head_weights`` = a trained head (SEGIC decoder),
``sam_weights`` = SAM. ``"random"`` gives untrained weights (tests, smoke runs); ``weights=
"random"`` alone makes every part of a backend random.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from src_models.backends import configs
from src_models.backends.base import Backend
from src_models.config import build_config
from src_models.weights import available

WEIGHT_SLOTS: tuple[str, ...] = ("weights", "head_weights", "sam_weights")
WeightsArg = str | Path | None
# which checkpoints (:mod:`src_models.weights` names) a file given for a slot replaces
SLOT_CHECKPOINTS: dict[str, tuple[str, ...]] = {
    "weights": ("dinov2_", "dinov3_"),
    "head_weights": ("segic_",),
    "sam_weights": ("sam_",),
}


def slot_of(checkpoint: str) -> str | None:
    """The weight slot whose file replaces ``checkpoint`` (None: no slot, e.g. CLIP text)."""
    for slot, prefixes in SLOT_CHECKPOINTS.items():
        if checkpoint.startswith(prefixes):
            return slot
    return None


@dataclass(frozen=True)
class BackendInfo:
    """How to build a backend and what a user should know before choosing it.

    Attributes:
        name: registry key, also the CLI ``--backend`` value.
        description: one line for menus and ``napari-incontext backends``.
        config: the backend's config dataclass (options).
        builder: ``"module:function"`` (imported only when a backend is built, so torch stays
            unloaded until then) or the function itself; it takes ``(config, *, device,
            <weight slots>)``.
        weight_slots: which of ``weights``/``head_weights``/``sam_weights`` it takes.
        needs: config → names of the checkpoints (:mod:`src_models.weights`) a run needs when
            no path is given for them.
        uses_device: False for CPU-only backends (a GPU choice is then ignored, with a warning).
        gpu_recommended: True when a CPU run takes several seconds per slice.
    """

    name: str
    description: str
    config: type[Any]
    builder: str | Callable[..., Backend]
    weight_slots: tuple[str, ...] = ()
    needs: Callable[[Any], list[str]] = lambda config: []
    uses_device: bool = True
    gpu_recommended: bool = False

    def default_config(self) -> Any:
        return build_config(self.config, {}, owner=self.name)

    def weights_available(self, config: Any = None) -> bool:
        """True when every checkpoint the (default) config needs is on this machine."""
        return available(*self.needs(self.default_config() if config is None else config))


def _segic_needs(c: configs.SegicConfig) -> list[str]:
    decoders = [c.checkpoint] if c.checkpoint else list(configs.SEGIC_CHECKPOINTS)
    found = [d for d in decoders if available(d)]
    return [f"dinov2_{c.backbone}", (found or decoders)[0]]


BACKENDS: dict[str, BackendInfo] = {
    "classic": BackendInfo(
        name="classic",
        description="Multiscale filter features + random forest; no weights, fast on CPU.",
        config=configs.ClassicConfig,
        builder="src_models.backends.classic:build_classic_backend",
        uses_device=False,
    ),
    "dinov2": BackendInfo(
        name="dinov2",
        description="DINOv2 patch matching (prototype + nearest neighbour), training-free.",
        config=configs.Dinov2Config,
        builder="src_models.backends.dinov2:build_dinov2_backend",
        weight_slots=("weights",),
        needs=lambda c: [f"dinov2_{c.backbone}"],
    ),
    "dinov2-sam": BackendInfo(
        name="dinov2-sam",
        description="DINOv2 correspondence + SAM prompted PerSAM-style "
        "(options persam_f, correspondence=sam).",
        config=configs.DinoSamConfig,
        builder="src_models.backends.dinov2_sam:build_dinov2_sam_backend",
        weight_slots=("weights", "sam_weights"),
        needs=lambda c: (
            ([f"dinov2_{c.backbone}"] if c.correspondence == "dinov2" else [])
            + [f"sam_{c.sam_model}"]
        ),
        gpu_recommended=True,
    ),
    "dinov2-segic": BackendInfo(
        name="dinov2-segic",
        description="SEGIC in-context decoder on DINOv2-L (released checkpoint or fine-tuned).",
        config=configs.SegicConfig,
        builder="src_models.backends.segic:build_segic_backend",
        weight_slots=("weights", "head_weights"),
        needs=_segic_needs,
        gpu_recommended=True,
    ),
    "dinov3-insid3": BackendInfo(
        name="dinov3-insid3",
        description="INSID3: DINOv3 clustering + debiased matching, training-free (gated weights).",
        config=configs.Insid3Config,
        builder="src_models.backends.insid3:build_insid3_backend",
        weight_slots=("weights",),
        needs=lambda c: [c.backbone],
    ),
    "dinov2-insid3": BackendInfo(
        name="dinov2-insid3",
        description="INSID3 head on DINOv2 (ungated fallback of dinov3-insid3), training-free.",
        config=configs.Dinov2Insid3Config,
        builder="src_models.backends.insid3:build_insid3_backend",
        weight_slots=("weights",),
        needs=lambda c: [c.backbone],
    ),
}


def get_info(name: str) -> BackendInfo:
    """The registry entry ``name``; ``ValueError`` listing the backends otherwise."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name]


def _weights_found(info: BackendInfo) -> bool:
    try:
        return info.weights_available()
    except Exception:  # a broken optional backend must not hide the others
        return False


def list_backends() -> list[dict[str, Any]]:
    """Every registered backend: name, description, weights_available, gpu_recommended."""
    return [
        {
            "name": info.name,
            "description": info.description,
            "weights_available": _weights_found(info),
            "gpu_recommended": info.gpu_recommended,
        }
        for info in BACKENDS.values()
    ]


def split_refine_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate ``sam_refine`` / ``sam_refine_<field>`` options from the backend's own.

    Returns:
        (backend options, SamRefineConfig options); the latter is empty when no refinement
        is asked for (``sam_refine`` unset, none or false).
    """
    refine = {k: options[k] for k in options if k.startswith("sam_refine")}
    rest = {k: v for k, v in options.items() if k not in refine}
    model = refine.pop("sam_refine", None)
    fields = {k.removeprefix("sam_refine_"): v for k, v in refine.items()}
    if model in (None, False, "", "none", "false"):
        if fields:
            raise ValueError(f"{', '.join(refine)} need sam_refine=vit_b (or vit_l, vit_h)")
        return rest, {}
    return rest, {"model": model, **fields}


def _check_slots(info: BackendInfo, given: dict[str, WeightsArg], refine: bool) -> None:
    """Refuse a checkpoint for a part the backend does not have (SAM refinement has SAM)."""
    allowed = set(info.weight_slots) | ({"sam_weights"} if refine else set())
    extra = [k for k, v in given.items() if v is not None and k not in allowed]
    if extra:
        takes = ", ".join(info.weight_slots) or "no weights file"
        raise ValueError(f"{info.name} takes {takes}: drop {', '.join(extra)}")


def _builder(info: BackendInfo) -> Callable[..., Backend]:
    if callable(info.builder):
        return info.builder
    module, _, function = info.builder.partition(":")
    builder: Callable[..., Backend] = getattr(import_module(module), function)
    return builder


def build_backend(
    name: str,
    *,
    device: str = "auto",
    weights: WeightsArg = None,
    head_weights: WeightsArg = None,
    sam_weights: WeightsArg = None,
    **options: Any,
) -> Backend:
    """Build a registered backend from user options (strings are converted by type).

    Args:
        name: registry key.
        device: ``auto``, ``cpu``, ``cuda`` or ``mps``.
        weights, head_weights, sam_weights: checkpoint paths (or ``"random"``), see the module
            docstring; a slot the backend does not have is a ``ValueError``.
        options: config fields of the backend, plus ``sam_refine=vit_b`` and
            ``sam_refine_<field>`` to refine any backend's proposals with SAM.

    Raises:
        ValueError: unknown backend/option, wrong value, or a weights slot it does not take.
    """
    info = get_info(name)
    own, refine = split_refine_options(options)
    config = build_config(info.config, own, owner=name)
    refine_config = (
        build_config(configs.SamRefineConfig, refine, owner="sam_refine") if refine else None
    )
    given = {"weights": weights, "head_weights": head_weights, "sam_weights": sam_weights}
    _check_slots(info, given, refine_config is not None)
    chosen = {k: given[k] for k in info.weight_slots}
    if not info.uses_device and device not in ("auto", "cpu"):
        warnings.warn(f"{name} runs on the CPU only: device {device} is ignored", stacklevel=2)
    backend = _builder(info)(config, device=device, **chosen)
    if refine_config is None:
        return backend
    from src_models.backends.sam_refine import wrap_with_sam

    random = "random" if weights == "random" and sam_weights is None else sam_weights
    return wrap_with_sam(backend, refine_config, device=device, sam_weights=random)
