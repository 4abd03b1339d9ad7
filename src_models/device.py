"""Device and dtype choice for every torch backend (one place, imported by all of them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# What the CLI, the API and the widget offer; "auto" = CUDA when visible, else CPU.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda``/``cuda:N``/``mps``
    are checked for availability.

    Raises:
        RuntimeError: the asked-for device is not available here.
        ValueError: an unknown device name.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.split(":")[0] not in DEVICES:
        raise ValueError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} asked for but no CUDA GPU is visible: use cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device mps asked for but Metal is not available here: use cpu")
    return torch.device(device)


def cpu_has_bf16() -> bool:
    """True when this CPU has native bf16 matmuls (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` → bf16 on CUDA or on a CPU with native bf16, else fp32.

    Raises:
        ValueError: an unknown dtype name.
    """
    import torch

    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" or cpu_has_bf16() else torch.float32
    if dtype not in choices:
        raise ValueError(f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    return choices[dtype]


CUDA_BATCH_SIZE = 8
"""Default slices per backbone forward on a GPU: ViT-L at 896² in bf16 fits 8 in well under
16 GB, and a GPU's throughput keeps growing with the batch well past 1."""


def default_batch_size(device_types: Sequence[str]) -> int:
    """The default ``batch_size`` of a backend whose models run on ``device_types`` (e.g.
    ``["cuda"]``): :data:`CUDA_BATCH_SIZE` when one is a GPU, else 1 (a CPU gains little from
    batching, see docs/scale.md "Batching", and a batch holds more memory)."""
    return CUDA_BATCH_SIZE if any(t.split(":")[0] == "cuda" for t in device_types) else 1


def synchronize(device: torch.device | None) -> None:
    """Wait for queued CUDA work on ``device`` so a timer measures the real duration."""
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
