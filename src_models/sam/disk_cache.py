"""An optional on-disk cache of SAM image embeddings, keyed by model and image content.

Each entry is one ``.npy`` file named by a hash of (model identity, image bytes); the oldest
files (by modification time) are removed when the directory grows past ``max_bytes``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


def default_dir() -> Path:
    """``<user cache dir>/napari-incontext/sam_embeddings``."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-incontext")) / "sam_embeddings"


class DiskEmbeddingCache:
    """Embeddings on disk: ``get(key)`` / ``put(key, array)`` with a size cap.

    Attributes:
        directory: where the ``.npy`` files live (created on first write).
        max_bytes: total size kept; older files are evicted first.
        hits, misses: lookup counters.
    """

    def __init__(self, directory: str | Path | None = None, max_bytes: int = 2 * 2**30) -> None:
        self.directory = Path(directory) if directory is not None else default_dir()
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model_tag: str, image: np.ndarray) -> str:
        """Hash of the model identity and the image's shape, dtype and bytes."""
        digest = hashlib.blake2b(digest_size=20)
        digest.update(f"{model_tag}|{image.shape}|{image.dtype}|".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            value = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            self.misses += 1
            return None
        os.utime(path)  # mark as recently used
        self.hits += 1
        return value

    def put(self, key: str, value: np.ndarray) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        part = path.with_name(path.name + ".part.npy")
        np.save(part, np.ascontiguousarray(value), allow_pickle=False)
        os.replace(part, path)
        self._evict()

    def _evict(self) -> None:
        files = sorted(self.directory.glob("*.npy"), key=lambda p: p.stat().st_mtime_ns)
        total = sum(p.stat().st_size for p in files)
        for path in files[:-1]:
            if total <= self.max_bytes:
                break
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
