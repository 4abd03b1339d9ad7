"""Golden parity files: seeded weights both sides can rebuild, and how outputs are compared.

The scripts in ``scripts/parity/`` run the *official* code on tiny models whose weights come
from :func:`seeded_state` and save inputs + intermediate outputs to
``tests/models/golden/<name>.npz``; the ``tests/models/test_parity_*.py`` tests rebuild the
same weights from the parameter names and shapes stored in the file (never from torch's
RNG, whose streams are not promised stable) and compare the project's outputs.

Weights come from ``numpy.random.RandomState`` (its streams are frozen by NumPy policy), one
stream per parameter seeded by ``seed + crc32(name)``, so they do not depend on the order in
which a model lists its parameters.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN = Path(__file__).resolve().parent / "models" / "golden"

# Parameters that are embeddings added to tokens get a larger scale than the 0.02 of the
# official inits, so that a position-embedding resampling difference is visible in features.
_EMBEDDINGS = ("pos_embed", "cls_token", "register_tokens", "reg_token", "storage_tokens")


def seeded_array(name: str, shape: Iterable[int], seed: int = 0) -> np.ndarray:
    """A float32 array for parameter ``name``, reproducible from (name, shape, seed).

    Matrices and kernels: N(0, 1/fan_in); norm and layer-scale weights: 1 + 0.1·N(0, 1);
    biases: 0.1·N(0, 1); token/position embeddings: 0.5·N(0, 1).
    """
    shape = tuple(int(s) for s in shape)
    rng = np.random.RandomState((seed + zlib.crc32(name.encode())) % (2**32))
    noise = rng.standard_normal(shape)
    leaf = name.rsplit(".", 1)[-1]
    if any(key in name for key in _EMBEDDINGS):
        values = 0.5 * noise
    elif len(shape) >= 2:
        values = noise / np.sqrt(max(1, int(np.prod(shape[1:]))))
    elif leaf in ("weight", "gamma") or leaf.startswith("gamma"):
        values = 1.0 + 0.1 * noise
    else:
        values = 0.1 * noise
    return values.astype(np.float32)


def seeded_state(shapes: dict[str, Iterable[int]], seed: int = 0) -> dict[str, Any]:
    """{name: torch float32 tensor} for every (name, shape) in ``shapes``."""
    import torch

    return {k: torch.from_numpy(seeded_array(k, s, seed)) for k, s in shapes.items()}


def fill_seeded(module: Any, seed: int = 0, extra_buffers: Iterable[str] = ()) -> dict[str, Any]:
    """Overwrite every parameter of ``module`` (and the named buffers) with seeded values.

    Returns:
        {name: shape} of what was filled (what a golden file stores as ``param_shapes``).
    """
    import torch

    names = [n for n, _ in module.named_parameters()] + list(extra_buffers)
    own = module.state_dict()
    shapes = {n: tuple(own[n].shape) for n in names}
    with torch.no_grad():
        for name, value in seeded_state(shapes, seed).items():
            own[name].copy_(value)
    return shapes


def save_golden(name: str, arrays: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``tests/models/golden/<name>.npz`` (compressed); ``meta`` is stored as JSON."""
    GOLDEN.mkdir(parents=True, exist_ok=True)
    path = GOLDEN / f"{name}.npz"
    out = {k: np.asarray(v) for k, v in arrays.items()}
    out["meta"] = np.array(json.dumps(meta, sort_keys=True))
    np.savez_compressed(path, **out)
    return path


def load_golden(name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, meta) of ``tests/models/golden/<name>.npz``."""
    with np.load(GOLDEN / f"{name}.npz") as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
        meta = json.loads(str(data["meta"]))
    return arrays, meta


def rel_err(actual: Any, expected: Any) -> float:
    """max |actual − expected| / max |expected| (0 when both are all zero)."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    assert a.shape == e.shape, f"shape {a.shape} != golden {e.shape}"
    scale = float(np.abs(e).max()) if e.size else 0.0
    diff = float(np.abs(a - e).max()) if e.size else 0.0
    return diff / scale if scale > 0 else diff
