"""The project's hashes, in one place: files (sha256), array pixels (sha256) and content keys.

Arrays are hashed through their buffer (``ndarray.data``): no copy, and hashlib releases the GIL
on large buffers, so a 1 GB stack is hashed without stalling a GUI thread.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def array_sha256(array: np.ndarray) -> str:
    """Hex sha256 of an array's pixel bytes (C order; shape and dtype not included)."""
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def update_with_array(digest: Any, array: np.ndarray) -> None:
    """Feed an array's shape, dtype and bytes into a hashlib ``digest``."""
    digest.update(f"{array.shape}|{array.dtype}|".encode())
    digest.update(np.ascontiguousarray(array).data)


def content_key(array: np.ndarray) -> str:
    """A 32-hex-digit key of an array's shape, dtype and bytes (feature caches, baselines)."""
    digest = hashlib.blake2b(digest_size=16)
    update_with_array(digest, array)
    return digest.hexdigest()
