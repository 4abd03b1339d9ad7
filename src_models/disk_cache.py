"""One on-disk array cache for every cache of the package (SAM embeddings, INSID3 debias bases).

Each cache lives in its own subfolder ``<root>/<name>`` (root: the user cache directory
``<user cache>/napari-incontext``, or a folder the user chose) and only ever touches files
named by its own pattern ``<40 hex digits>.npy``: eviction, cleanup and repair never delete
anything else, even a user's ``.npy`` put there by mistake. Any entry that fails to load or
does not match what the caller expects (empty or truncated file, wrong shape or dtype,
non-finite values, a folder in place of the file) is deleted and reported as a miss, so the
caller recomputes it. Writes go to a per-process temporary name, are fsynced (unless the
caller checks its entries itself), then renamed, so processes sharing a cache see whole
entries only and never raise. The size cap is kept with a running total: the folder is
scanned on the first write and after every tenth of the cap written, so a process may see
other processes' new entries late, and the folder can exceed the cap by up to about a
tenth of it per process writing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from src_models.hashing import update_with_array

_ENTRY = re.compile(r"^[0-9a-f]{40}\.npy$")
_TEMP = re.compile(r"^\.[0-9a-f]{40}\.(\d+)-[0-9a-f]{8}\.tmp$")
_STALE_SECONDS = 3600.0
RESCAN = 0.1  # share of max_bytes written between two scans of the folder
Check = Callable[[np.ndarray], bool]


def cache_root() -> Path:
    """``<user cache dir>/napari-incontext``: the parent of the weights folder
    (:func:`src_models.weights.cache_dir`), so one setting moves every cache."""
    from src_models.weights import cache_dir

    return cache_dir().parent


def make_key(*parts: str | bytes | np.ndarray) -> str:
    """A 40-hex-digit key from strings, bytes and arrays (shape, dtype and bytes)."""
    digest = hashlib.blake2b(digest_size=20)
    for part in parts:
        if isinstance(part, np.ndarray):
            update_with_array(digest, part)
        else:
            digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x00")
    return digest.hexdigest()


class DiskCache:
    """Arrays on disk under ``<root>/<name>``: ``get(key, check)`` / ``put(key, array)``.

    Attributes:
        directory: this cache's own folder (created on the first write).
        max_bytes: total size kept; the least recently used entries are evicted first.
        hits, misses, repaired: lookup counters (``repaired``: bad entries deleted).
    """

    def __init__(self, name: str, root: str | Path | None = None, max_bytes: int = 2**31) -> None:
        if not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError(f"cache name {name!r}: use lowercase letters, digits and _")
        self.directory = Path(root if root is not None else cache_root()).expanduser() / name
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.repaired = 0
        # entry name -> bytes, least recently used first, as of the last scan plus this
        # object's own reads and writes (None: not scanned yet)
        self._index: OrderedDict[str, int] | None = None
        self._total = 0
        self._since_scan = 0  # bytes written since that scan

    def path(self, key: str) -> Path:
        if not _ENTRY.match(f"{key}.npy"):
            raise ValueError(f"cache key {key!r} is not 40 lowercase hex digits (make_key)")
        return self.directory / f"{key}.npy"

    def get(self, key: str, check: Check | None = None) -> np.ndarray | None:
        """The stored array, or None (a miss) when absent or bad; bad entries are deleted.

        Args:
            key: from :func:`make_key`.
            check: ``array -> bool``, e.g. the expected shape and dtype; False = bad entry.
        """
        path = self.path(key)
        if not os.path.lexists(path):
            self.misses += 1
            return None
        try:
            value = np.load(path, allow_pickle=False)
            good = isinstance(value, np.ndarray) and _finite(value)
            good = good and (check is None or bool(check(value)))
        except Exception:  # any unreadable entry is a bad entry, whatever the reason
            good, value = False, None
        if not good:
            self._drop(path)
            self.misses += 1
            return None
        with contextlib.suppress(OSError):  # evicted meanwhile, or a read-only cache
            os.utime(path)  # recently used: evicted last
        if self._index is not None and path.name in self._index:
            self._index.move_to_end(path.name)
        self.hits += 1
        return value

    def put(self, key: str, value: np.ndarray, sync: bool = True) -> bool:
        """Store ``value``; False (and nothing raised) when the folder is not writable.

        Args:
            sync: fsync the entry before it is renamed into place. A caller whose entries
                carry their own checksum (the feature cache) may skip it: an entry a crash
                left incomplete fails that check on read and is recomputed.
        """
        path = self.path(key)
        temp = self.directory / f".{key}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(temp, "wb") as handle:
                np.save(handle, np.ascontiguousarray(value), allow_pickle=False)
                size = handle.tell()
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            if path.is_dir() and not path.is_symlink():
                self._drop(path)
            os.replace(temp, path)
        except OSError:
            temp.unlink(missing_ok=True)
            return False
        self._added(path.name, size)
        return True

    def _added(self, name: str, size: int) -> None:
        """Count a written entry; evict from the index, rescanning the folder only on the
        first write and after each :data:`RESCAN` share of ``max_bytes`` written (to see
        other processes' entries), not per write (that was quadratic in the entries)."""
        if self._index is None or self._since_scan + size > self.max_bytes * RESCAN:
            self.evict()
            return
        self._since_scan += size
        self._total += size - self._index.pop(name, 0)
        self._index[name] = size
        self._evict_indexed()

    def _drop(self, path: Path) -> None:
        self.repaired += 1
        if self._index is not None and path.name in self._index:
            self._total -= self._index.pop(path.name)
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            pass  # another process fixed or removed it first

    def entries(self) -> list[Path]:
        """This cache's entry files (its own name pattern only)."""
        if not self.directory.is_dir():
            return []
        return [p for p in self.directory.iterdir() if _ENTRY.match(p.name)]

    def evict(self) -> None:
        """Scan the folder, then delete the least recently used entries until the total fits
        ``max_bytes`` (the newest is kept), and temporary files of processes that died
        (older than an hour)."""
        sized = []
        for path in self.entries():
            try:
                stat = path.stat()
            except OSError:
                continue  # deleted by another process meanwhile
            sized.append((stat.st_mtime_ns, stat.st_size, path.name))
        sized.sort()
        self._index = OrderedDict((name, size) for _, size, name in sized)
        self._total = sum(self._index.values())
        self._since_scan = 0
        self._evict_indexed()
        self._clean_temps()

    def _evict_indexed(self) -> None:
        index = self._index if self._index is not None else OrderedDict()
        while self._total > self.max_bytes and len(index) > 1:
            name, size = index.popitem(last=False)
            with contextlib.suppress(OSError):  # gone already, or a read-only cache
                (self.directory / name).unlink()
            self._total -= size

    def _clean_temps(self) -> None:
        now = time.time()
        for path in self.directory.iterdir():
            match = _TEMP.match(path.name)
            if not match or int(match[1]) == os.getpid():
                continue
            try:
                if now - path.stat().st_mtime > _STALE_SECONDS:
                    path.unlink()
            except OSError:
                continue


def _finite(value: np.ndarray) -> bool:
    return value.dtype.kind not in "fc" or bool(np.isfinite(value).all())


def shape_dtype(shape: tuple[int | None, ...], dtype: np.dtype | type) -> Check:
    """A ``check`` accepting arrays of this dtype and shape (None = any size on that axis)."""

    def check(value: np.ndarray) -> bool:
        if value.dtype != np.dtype(dtype) or value.ndim != len(shape):
            return False
        pairs = zip(shape, value.shape, strict=True)
        return all(want is None or want == got for want, got in pairs)

    return check
