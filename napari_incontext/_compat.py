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


def release_memory() -> bool:
    """Hand freed heap memory back to the operating system; return True if it was tried.

    A run allocates one array per slice (a few MiB each); once glibc has raised its mmap
    threshold, such blocks come from the heap and stay mapped after numpy frees them, so a
    cancelled run would keep its stack's worth of resident memory. ``malloc_trim`` returns
    it (glibc only; elsewhere this does nothing).
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # musl or another libc
        return False
    return True
