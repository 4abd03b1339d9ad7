"""Process-level workarounds needed when torch runs inside napari (Qt-free)."""

from __future__ import annotations

import sys
from pathlib import Path


def llvm_is_loaded() -> bool:
    """True when a shared libLLVM is mapped into this process (Mesa's OpenGL drivers)."""
    maps = Path("/proc/self/maps")
    try:
        return "libLLVM" in maps.read_text()
    except OSError:  # not Linux, or /proc unavailable
        return False


def block_triton_if_unsafe() -> bool:
    """Stop ``import triton`` when it would crash the process; return True if blocked.

    Triton bundles its own LLVM. Loaded after Mesa's libLLVM (napari's OpenGL canvas on
    Linux with Mesa, e.g. Xvfb/llvmpipe or Intel/AMD drivers), ``import triton``
    segfaults. timm → torchvision → torch._dynamo imports triton only to probe for it, and
    treats an ImportError as "not installed", which no backend here needs.
    """
    if "triton" in sys.modules or not llvm_is_loaded():
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]  # makes `import triton` raise
    return True
