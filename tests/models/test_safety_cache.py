"""Safety suite, disk caches: a bad entry of any kind is deleted and recomputed, eviction
touches only the cache's own files, and processes sharing one cache never raise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src_models.disk_cache import DiskCache, make_key, shape_dtype
from tests.models.tiny_backends import TEST_TINY_SAM
from tests.safety_helpers import snapshot

ROOT = Path(__file__).resolve().parents[2]
GOOD = np.arange(12, dtype=np.float32).reshape(3, 4)
CHECK = shape_dtype((3, None), np.float32)


def _corrupt(path: Path, case: str) -> None:
    good = path.read_bytes()
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated":
        path.write_bytes(good[: len(good) - 7])
    elif case == "header_only":
        path.write_bytes(good[:60])
    elif case == "garbage":
        path.write_bytes(b"\x93NUMPY garbage garbage garbage")
    elif case == "wrong_shape":
        np.save(path, np.zeros((4, 4), np.float32))
    elif case == "wrong_dtype":
        np.save(path, GOOD.astype(np.float64))
    elif case == "nan":
        np.save(path, np.full((3, 4), np.nan, np.float32))
    elif case == "inf":
        np.save(path, np.full((3, 4), np.inf, np.float32))
    elif case == "pickled":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif case == "directory":
        path.unlink()
        path.mkdir()
        (path / "inside").write_text("x")


CASES = [
    "empty",
    "truncated",
    "header_only",
    "garbage",
    "wrong_shape",
    "wrong_dtype",
    "nan",
    "inf",
    "pickled",
    "directory",
]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_entry_is_deleted_and_recomputed(tmp_path: Path, case: str) -> None:
    cache = DiskCache("test", tmp_path)
    key = make_key("model", GOOD)
    assert cache.put(key, GOOD)
    _corrupt(cache.path(key), case)
    assert cache.get(key, CHECK) is None  # a miss, never an exception
    assert not cache.path(key).exists() and cache.repaired == 1
    assert cache.put(key, GOOD)  # recomputed and stored again
    np.testing.assert_array_equal(cache.get(key, CHECK), GOOD)


def test_eviction_and_repair_touch_only_the_caches_own_files(tmp_path: Path) -> None:
    (tmp_path / "mine.npy").write_bytes(b"user data beside the cache folder")
    cache = DiskCache("test", tmp_path, max_bytes=1500)
    cache.directory.mkdir()
    np.save(cache.directory / "user.npy", np.ones(1000))  # a user's file in the cache folder
    (cache.directory / "notes.txt").write_text("mine")
    np.save(cache.directory / ("f" * 40 + "-copy.npy"), np.ones(3))  # near miss of the pattern
    user_files = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("test/0")}
    keys = [make_key(str(i)) for i in range(6)]
    for i, key in enumerate(keys):
        cache.put(key, np.full(100, i, np.float32))  # ~530 bytes each: eviction runs
    assert len(cache.entries()) <= 2 and cache.get(keys[-1]) is not None
    after = snapshot(tmp_path)
    assert all(after[k] == v for k, v in user_files.items())


def test_caches_live_in_their_own_subfolders(tmp_path: Path) -> None:
    from src_models.backends.insid3 import debias_cache

    a, b = DiskCache("sam_embeddings", tmp_path), debias_cache(tmp_path)
    assert a.directory == tmp_path / "sam_embeddings" and b.directory == tmp_path / "insid3_debias"
    with pytest.raises(ValueError, match="lowercase"):
        DiskCache("../escape", tmp_path)
    with pytest.raises(ValueError, match="40 lowercase hex"):
        a.get("../../etc/passwd")


def test_an_unwritable_cache_only_costs_a_recomputation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DiskCache("test", tmp_path)

    def refuse(*args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    assert cache.put(make_key("x"), GOOD) is False
    assert [p.name for p in cache.directory.iterdir()] == []  # no temp file left behind


def test_sam_encoder_recomputes_a_damaged_embedding(tmp_path: Path) -> None:
    import torch

    from src_models.sam.build import build_sam
    from src_models.sam.predictor import SamEncoder

    image = np.random.default_rng(0).random((40, 30, 3), dtype=np.float32)
    cache = DiskCache("sam_embeddings", tmp_path)
    encoder = SamEncoder(build_sam(TEST_TINY_SAM, "random"), torch.device("cpu"), disk_cache=cache)
    first = encoder(image)
    (entry,) = cache.entries()
    entry.write_bytes(entry.read_bytes()[:100])  # cut short by a crash of another process
    again = encoder(image)
    assert encoder.encode_count == 2 and cache.repaired == 1
    np.testing.assert_array_equal(first.embedding, again.embedding)
    np.save(entry, first.embedding[:, :2])  # a stored embedding of another shape
    encoder(image)
    assert encoder.encode_count == 3 and cache.repaired == 2
    assert encoder(image) is not None and encoder.encode_count == 3  # now a clean hit


def test_insid3_recomputes_a_damaged_positional_basis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from src_models import weights
    from src_models.backends.insid3 import PositionalDebias
    from tests.models.tiny_backends import TINY

    monkeypatch.setattr(weights, "cache_dir", lambda: tmp_path / "weights")
    backend = TINY["dinov2-insid3"]({"input_size": 42})
    debias = PositionalDebias(backend.encoder, "tiny-test:56", on_disk=True)
    basis = debias.basis((4, 4))
    (entry,) = (tmp_path / "insid3_debias").glob("*.npy")
    entry.write_bytes(b"")
    fresh = PositionalDebias(backend.encoder, "tiny-test:56", on_disk=True)
    np.testing.assert_allclose(fresh.basis((4, 4)), basis, atol=1e-6)
    assert entry.stat().st_size > 0  # rewritten whole


_WORKER = """
import sys
import numpy as np
from src_models.disk_cache import DiskCache, make_key, shape_dtype
root, seed = sys.argv[1], int(sys.argv[2])
cache = DiskCache("shared", root, max_bytes=60_000)
rng = np.random.default_rng(seed)
check = shape_dtype((50, 50), np.float32)
for step in range(400):
    k = int(rng.integers(0, 12))
    key = make_key("value", str(k))
    want = np.full((50, 50), k, np.float32)
    got = cache.get(key, check)
    if got is None:
        cache.put(key, want)
    elif not np.array_equal(got, want):
        print("WRONG VALUE", k, flush=True)
        sys.exit(3)
    if step % 97 == 0:  # now and then, a crash of "another process" leaves a bad entry
        path = cache.path(make_key("value", str((k + 1) % 12)))
        try:
            path.write_bytes(b"")
        except OSError:
            pass
print("hits", cache.hits, "misses", cache.misses, "repaired", cache.repaired, flush=True)
"""


@pytest.mark.slow
def test_processes_sharing_one_cache_never_raise(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(tmp_path), str(seed)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0 and err == "", (out, err)
        assert out.startswith("hits")
    hits = sum(int(out.split()[1]) for out, _ in outs)
    assert hits > 100  # they did share entries
    names = [p.name for p in (tmp_path / "shared").iterdir()]
    assert all(len(n) == 44 and n.endswith(".npy") for n in names), names  # no temp left
