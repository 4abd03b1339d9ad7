"""A content-keyed, size-capped cache of per-image features: memory, optionally disk."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from src_models.disk_cache import DiskCache, make_key
from src_models.feature_store import Unsupported, decode, encode
from src_models.hashing import content_key

_NPY_HEADER = 128  # bytes of a .npy file besides its data (numpy pads the header to 64)


class CacheTooSmallWarning(UserWarning):
    """A run's features will not all fit the feature cache: a re-run recomputes some."""


def model_tag(model: Any) -> str:
    """A tag naming this model object in feature keys; unlike ``id()`` it is never reused.

    Two backends built from the same weights get different tags, so a cache can never serve
    features computed by a model that was replaced (other weights, other random init).
    """
    tag = getattr(model, "_incontext_tag", None)
    if tag is None:
        tag = uuid.uuid4().hex[:12]
        object.__setattr__(model, "_incontext_tag", tag)
    return tag


def nbytes(value: Any) -> int:
    """Approximate memory of a cached value: arrays, tensors, and tuples, dicts and
    dataclass instances of them (other fields count 0)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if hasattr(value, "element_size") and hasattr(value, "nelement"):
        return int(value.element_size() * value.nelement())
    return 0


@dataclasses.dataclass
class _Entry:
    value: Any
    size: int
    run: int  # the run that last used it (0: none)


class FeatureCache:
    """Features keyed by (feature extractor identity, image content), in memory and
    optionally on disk.

    A re-run, a second object or a newly accepted example never recomputes the features of
    a slice whose pixels did not change. Outside a run the memory tier is a plain LRU. During
    a run (:meth:`running`, entered by the engine) it resists scans: entries this run used are
    never evicted for this run's new ones, and once they fill ``max_bytes`` new features are
    not kept (a re-run then hits at least the cap's worth instead of 0); features fetched with
    ``pin=True`` (the examples) are kept whatever the cap. The disk tier (``disk``: a
    :class:`~src_models.disk_cache.DiskCache`) follows the same rule with its own cap and is
    read on a memory miss; values it cannot store (:mod:`src_models.feature_store`) stay in
    memory only.

    Attributes:
        hits, misses: lookups (``disk_hits``: hits read from the disk tier).
    """

    def __init__(self, max_bytes: int = 4 * 2**30, disk: DiskCache | None = None) -> None:
        self.max_bytes = max_bytes
        self.disk = disk
        self.hits = 0
        self.misses = 0
        self.disk_hits = 0
        self._items: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._size = 0
        self._runs = 0
        self._run = 0
        self._run_bytes = 0  # memory held by entries the current run used
        self._disk_run_bytes = 0
        self._pinned: set[tuple[str, str]] = set()
        self._last: tuple[tuple[str, str], Any] | None = None  # one not kept, used twice

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._size

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """One run: scan resistance and pins apply inside, pins are released after. A run
        started while one is going (a second generator on the same cache) joins it."""
        if self._run:
            yield
            return
        self._runs += 1
        self._run = self._runs
        self._run_bytes = self._disk_run_bytes = 0
        try:
            yield
        finally:
            self._pinned.clear()
            self._run = 0

    def get_or_compute(
        self,
        feature_key: str,
        image: np.ndarray,
        compute: Callable[[np.ndarray], Any],
        pin: bool = False,
    ) -> tuple[Any, bool]:
        """Return (features, hit). ``compute(image)`` runs only on a miss of both tiers.

        Args:
            pin: keep these features for the rest of the run, whatever the cap (examples).
        """
        return self.get_or_compute_many(feature_key, [image], lambda ims: [compute(ims[0])], pin)[0]

    def get_or_compute_many(
        self,
        feature_key: str,
        images: Sequence[np.ndarray],
        compute: Callable[[list[np.ndarray]], list[Any]],
        pin: bool = False,
    ) -> list[tuple[Any, bool]]:
        """:meth:`get_or_compute` of several images: ``compute`` runs once, on the images
        (each content once) that missed both tiers; each result is stored like one of
        :meth:`get_or_compute`. Returns (features, hit) per image, in order."""
        keys = [(feature_key, content_key(image)) for image in images]
        found: dict[tuple[str, str], tuple[Any, bool]] = {}
        todo: dict[tuple[str, str], np.ndarray] = {}
        for key, image in zip(keys, images, strict=True):
            if self._run and pin:
                self._pinned.add(key)
            if key in found or key in todo:
                continue
            value = self._lookup(key)
            if value is None:
                todo[key] = image
            else:
                found[key] = (value, True)
        for key, value in zip(todo, compute(list(todo.values())) if todo else [], strict=True):
            self._disk_put(key, value)
            self.misses += 1
            self._insert(key, value)
            found[key] = (value, False)
        return [found[key] for key in keys]

    def _lookup(self, key: tuple[str, str]) -> Any:
        """The value of ``key`` from memory or disk (counted as a hit), else None."""
        entry = self._items.get(key)
        if entry is not None:
            self._items.move_to_end(key)
            self._use(entry)
            self.hits += 1
            return entry.value
        if self._last is not None and self._last[0] == key:
            self.hits += 1
            return self._last[1]
        value = self._disk_get(key)
        if value is not None:
            self.hits += 1
            self.disk_hits += 1
            self._insert(key, value)
        return value

    def _use(self, entry: _Entry) -> None:
        if self._run and entry.run != self._run:
            entry.run = self._run
            self._run_bytes += entry.size

    def _insert(self, key: tuple[str, str], value: Any) -> None:
        size = nbytes(value)
        full = self._run_bytes + size > self.max_bytes
        if self._run and full and key not in self._pinned:
            self._last = (key, value)  # full of this run's features: keep those
            return
        self._items[key] = _Entry(value, size, 0)
        self._size += size
        self._use(self._items[key])
        for old in list(self._items):  # least recently used first
            if self._size <= self.max_bytes:
                break
            entry = self._items[old]
            if old == key or old in self._pinned or (self._run and entry.run == self._run):
                continue
            del self._items[old]
            self._size -= entry.size

    def _disk_key(self, key: tuple[str, str]) -> str:
        return make_key("features", *key)

    def _disk_get(self, key: tuple[str, str]) -> Any:
        if self.disk is None:
            return None
        found: list[Any] = []

        def check(data: np.ndarray) -> bool:
            found.append(decode(data))  # raises on a damaged entry: deleted, a miss
            return True

        data = self.disk.get(self._disk_key(key), check)
        if data is None:
            return None
        self._disk_run_bytes += data.nbytes + _NPY_HEADER
        return found[0]

    def _disk_put(self, key: tuple[str, str], value: Any) -> None:
        if self.disk is None:
            return
        try:
            data = encode(value)
        except Unsupported:
            return  # kept in memory only
        size = data.nbytes + _NPY_HEADER
        if self._run and self._disk_run_bytes + size > self.disk.max_bytes:
            return  # the disk tier is full of this run's features
        # no fsync: the entry's checksum (feature_store) catches what a crash left behind
        if self.disk.put(self._disk_key(key), data, sync=False):
            self._disk_run_bytes += size

    def clear(self) -> None:
        """Empty the memory tier (the disk tier is left as it is)."""
        self._items.clear()
        self._size = self._run_bytes = 0
        self._last = None
