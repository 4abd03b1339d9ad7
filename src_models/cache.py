"""A content-keyed, size-capped in-memory cache of per-image features."""

from __future__ import annotations

import dataclasses
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from src_models.hashing import content_key


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


class FeatureCache:
    """LRU cache keyed by (feature extractor identity, image content).

    A re-run, a second object or a newly accepted example never recomputes the features of
    a slice whose pixels did not change. ``hits`` and ``misses`` count lookups.
    """

    def __init__(self, max_bytes: int = 4 * 2**30) -> None:
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[str, str], tuple[Any, int]] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._size

    def get_or_compute(
        self, feature_key: str, image: np.ndarray, compute: Callable[[np.ndarray], Any]
    ) -> tuple[Any, bool]:
        """Return (features, hit). ``compute(image)`` runs only on a miss."""
        key = (feature_key, content_key(image))
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key][0], True
        self.misses += 1
        value = compute(image)
        size = nbytes(value)
        self._items[key] = (value, size)
        self._size += size
        while self._size > self.max_bytes and len(self._items) > 1:
            _, (_, old) = self._items.popitem(last=False)
            self._size -= old
        return value, False

    def clear(self) -> None:
        self._items.clear()
        self._size = 0
