"""Features ⇄ one flat uint8 array, so the disk tier of the feature cache can store them in
:class:`~src_models.disk_cache.DiskCache` (``.npy`` files, never pickle).

Supported: numpy arrays (not object dtype), CPU or GPU torch tensors of numpy-compatible
dtypes, ``None``, bool/int/float/str, and tuples, lists, str-keyed dicts and dataclass
instances of them. The layout is ``[8-byte header length][JSON header][array bytes]``; the
header describes the structure and holds a checksum of the array bytes, so a truncated or
altered entry is refused on decode (the caller recomputes it). A dataclass is rebuilt only
from a class already imported (looked up in ``sys.modules``, never imported from the file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from typing import Any

import numpy as np

_SCALARS = (bool, int, float, str)


class Unsupported(TypeError):
    """A feature value the disk tier cannot store safely."""


def encode(value: Any) -> np.ndarray:
    """(n,) uint8 bytes of ``value``; raises :class:`Unsupported` for other types."""
    blobs: list[np.ndarray] = []
    tree = _describe(value, blobs)
    flat = [np.ascontiguousarray(b).reshape(-1).view(np.uint8) for b in blobs]
    body = np.empty(sum(f.size for f in flat), np.uint8)
    at = 0
    for part in flat:
        body[at : at + part.size] = part
        at += part.size
    header = json.dumps({"tree": tree, "sum": hashlib.blake2b(body.data).hexdigest()}).encode()
    return np.concatenate(
        [np.frombuffer(len(header).to_bytes(8, "little") + header, np.uint8), body]
    )


def decode(data: np.ndarray) -> Any:
    """The value :func:`encode` stored; raises ``ValueError`` for a damaged entry."""
    if data.dtype != np.uint8 or data.ndim != 1 or data.size < 8:
        raise ValueError("not an encoded feature")
    size = int.from_bytes(data[:8].tobytes(), "little")
    if size > data.size - 8:
        raise ValueError("truncated header")
    header = json.loads(data[8 : 8 + size].tobytes())
    body = data[8 + size :]
    if hashlib.blake2b(np.ascontiguousarray(body).data).hexdigest() != header["sum"]:
        raise ValueError("checksum mismatch")
    return _build(header["tree"], body)


def _describe(value: Any, blobs: list[np.ndarray]) -> Any:
    if value is None or isinstance(value, _SCALARS):
        return {"t": "scalar", "v": value}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject or value.dtype.names is not None:
            raise Unsupported(f"numpy dtype {value.dtype}")
        blobs.append(value)
        return {"t": "nd", "dtype": value.dtype.str, "shape": list(value.shape)}
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        try:
            array = value.detach().cpu().numpy()
        except TypeError as error:  # bfloat16 and other dtypes numpy lacks
            raise Unsupported(str(error)) from error
        return {"t": "torch", "device": str(value.device), "nd": _describe(array, blobs)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        names = [f.name for f in dataclasses.fields(value)]
        fields = {name: _describe(getattr(value, name), blobs) for name in names}
        return {"t": "dc", "module": cls.__module__, "name": cls.__qualname__, "fields": fields}
    if isinstance(value, (tuple, list)):
        return {"t": type(value).__name__, "v": [_describe(v, blobs) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"t": "dict", "v": {k: _describe(v, blobs) for k, v in value.items()}}
    raise Unsupported(f"feature type {type(value).__name__}")


def _build(tree: Any, body: np.ndarray, at: list[int] | None = None) -> Any:
    at = [0] if at is None else at  # read position in ``body``, shared by the recursion
    kind = tree["t"]
    if kind == "scalar":
        return tree["v"]
    if kind == "nd":
        dtype, shape = np.dtype(tree["dtype"]), tuple(tree["shape"])
        count = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if at[0] + count > body.size:
            raise ValueError("truncated data")
        array = body[at[0] : at[0] + count].view(dtype).reshape(shape).copy()
        at[0] += count
        return array
    if kind == "torch":
        import torch

        tensor = torch.from_numpy(_build(tree["nd"], body, at))
        device = torch.device(tree["device"])
        missing = device.type == "cuda" and not torch.cuda.is_available()
        return tensor if missing else tensor.to(device)
    if kind in ("tuple", "list"):
        items = [_build(v, body, at) for v in tree["v"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: _build(v, body, at) for k, v in tree["v"].items()}
    if kind == "dc":
        return _dataclass(tree)(**{k: _build(v, body, at) for k, v in tree["fields"].items()})
    raise ValueError(f"unknown entry kind {kind!r}")


def _dataclass(tree: dict[str, Any]) -> Any:
    """The already imported dataclass named in ``tree``."""
    found: Any = sys.modules.get(tree["module"])
    for part in str(tree["name"]).split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and dataclasses.is_dataclass(found)):
        raise ValueError(f"feature class {tree['module']}.{tree['name']} is not loaded")
    return found
