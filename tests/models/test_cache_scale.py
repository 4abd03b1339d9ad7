"""The feature cache at scale: scan resistance, pinned examples, the disk tier, the warning."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from src_models.backends.classic import ClassicBackend
from src_models.cache import CacheTooSmallWarning, FeatureCache
from src_models.cli import main
from src_models.disk_cache import DiskCache
from src_models.engine import propagate
from src_models.feature_store import encode
from src_models.memory import human
from src_models.sample_data import example_labels, synthetic_stack
from tests.models.test_engine import CountingBackend


@dataclass(frozen=True)
class Tokens:
    """A feature dataclass like the backends' (arrays, a tuple, an optional field)."""

    tokens: np.ndarray
    shape: tuple[int, int]
    guide: np.ndarray | None


def one_slice_bytes(size: int) -> int:
    return int(ClassicBackend().compute_features(np.zeros((size, size, 1), np.float32)).nbytes)


def images(n: int) -> list[np.ndarray]:
    return [np.full((4, 4), i, np.float32) for i in range(n)]


def test_a_rerun_larger_than_the_cap_still_hits_the_caps_worth() -> None:
    """Plain LRU: a scan of 12 slices through a 4-slice cache leaves 0 hits for a re-run."""
    image, truth = synthetic_stack(n_slices=12, size=32)
    labels = example_labels(truth, 5)
    backend, cache = CountingBackend(), FeatureCache(max_bytes=4 * one_slice_bytes(32))
    with pytest.warns(CacheTooSmallWarning):
        list(propagate(image, labels, backend, cache=cache))
    assert backend.feature_calls == 12 and cache.size_bytes <= cache.max_bytes
    with pytest.warns(CacheTooSmallWarning):
        again = list(propagate(image, labels, backend, cache=cache))
    assert cache.hits >= 4  # the example and the three slices nearest to it
    assert backend.feature_calls == 12 + 12 - cache.hits
    assert sum(r.timings["cached"] for r in again) == cache.hits - 1  # + the example's


def test_examples_are_pinned_and_the_runs_slices_are_not_evicted() -> None:
    cache = FeatureCache(max_bytes=2 * 64)  # two 4×4 float32 entries
    x, y, a, b, c = images(5)
    computed: list[float] = []

    def compute(im: np.ndarray) -> np.ndarray:
        computed.append(float(im[0, 0]))
        return im.copy()

    cache.get_or_compute("k", x, compute)
    cache.get_or_compute("k", y, compute)  # outside a run: plain LRU, both kept
    with cache.running():
        cache.get_or_compute("k", a, compute, pin=True)  # evicts x (not used by this run)
        cache.get_or_compute("k", b, compute)  # evicts y
        cache.get_or_compute("k", c, compute)  # full of this run's: c is not kept
        cache.get_or_compute("k", x, compute)  # nor x
        assert cache.get_or_compute("k", a, compute)[1] and cache.get_or_compute("k", b, compute)[1]
    assert computed == [0, 1, 2, 3, 4, 0] and len(cache) == 2
    with cache.running():
        cache.get_or_compute("k", c, compute)  # evicts a, not used by this run
        with cache.running():  # a second run on the same cache joins the first
            cache.get_or_compute("k", b, compute)
            cache.get_or_compute("k", y, compute)  # full of this run's: y is not kept
    assert len(cache) == 2 and computed[-2:] == [4, 1]
    assert cache.get_or_compute("k", c, compute)[1] and cache.get_or_compute("k", b, compute)[1]
    tiny = FeatureCache(max_bytes=64)
    with tiny.running():
        tiny.get_or_compute("k", b, compute)
        tiny.get_or_compute("k", a, compute, pin=True)  # an example: kept beyond the cap
        tiny.get_or_compute("k", c, compute)
        assert tiny.get_or_compute("k", a, compute)[1] and tiny.get_or_compute("k", b, compute)[1]


@pytest.mark.parametrize(
    "value",
    [
        np.arange(12, dtype=np.float16).reshape(3, 4),
        torch.arange(6, dtype=torch.float32).reshape(2, 3),
        Tokens(np.ones((2, 2, 3), np.float32), (16, 16), None),
        {"a": [np.zeros(3, np.int64), 2.5], "b": (True, "x")},
    ],
    ids=["numpy", "torch", "dataclass", "dict"],
)
def test_disk_tier_round_trip(value: object, tmp_path: Path) -> None:
    image = np.zeros((4, 4), np.float32)
    FeatureCache(disk=DiskCache("features", tmp_path)).get_or_compute("k", image, lambda _: value)
    fresh = FeatureCache(disk=DiskCache("features", tmp_path))  # another session

    def fail(_: np.ndarray) -> object:
        raise AssertionError("recomputed")

    got, hit = fresh.get_or_compute("k", image, fail)
    assert hit and fresh.disk_hits == 1 and type(got) is type(value)
    if isinstance(value, torch.Tensor):
        assert torch.equal(got, value)
    elif isinstance(value, Tokens):
        assert np.array_equal(got.tokens, value.tokens) and got.tokens.dtype == np.float32
        assert got.shape == (16, 16) and got.guide is None
    elif isinstance(value, dict):
        assert np.array_equal(got["a"][0], value["a"][0]) and got["a"][1] == 2.5
        assert got["b"] == (True, "x")
    else:
        assert np.array_equal(got, value) and got.dtype == np.float16


@pytest.mark.parametrize(
    "value",
    [{1: object()}, torch.zeros(2, dtype=torch.bfloat16), np.array([None])],
    ids=["object", "bfloat16", "object-dtype"],
)
def test_unsupported_features_stay_in_memory_only(value: object, tmp_path: Path) -> None:
    disk = DiskCache("features", tmp_path)
    cache = FeatureCache(disk=disk)
    got, hit = cache.get_or_compute("k", np.zeros(3), lambda _: value)
    assert not hit and got is value and disk.entries() == []
    assert cache.get_or_compute("k", np.zeros(3), lambda _: None)[0] is value


def test_a_corrupted_disk_entry_is_recomputed(tmp_path: Path) -> None:
    image = np.zeros((4, 4), np.float32)
    disk = DiskCache("features", tmp_path)
    FeatureCache(disk=disk).get_or_compute("k", image, lambda _: np.arange(100.0))
    (entry,) = disk.entries()
    data = bytearray(entry.read_bytes())
    data[-5] ^= 0xFF  # one bit pattern changed in the features: a valid .npy, wrong data
    entry.write_bytes(bytes(data))
    fresh = FeatureCache(disk=disk)
    got, hit = fresh.get_or_compute("k", image, lambda _: np.arange(100.0))
    assert not hit and disk.repaired == 1 and np.array_equal(got, np.arange(100.0))
    assert FeatureCache(disk=disk).get_or_compute("k", image, lambda _: None)[1]  # rewritten


def test_disk_tier_respects_its_cap_and_keeps_a_stable_subset(tmp_path: Path) -> None:
    values = [np.full(100, i, np.float32) for i in range(8)]
    entry = encode(values[0]).nbytes + 128  # + the .npy header
    disk = DiskCache("features", tmp_path, max_bytes=3 * entry)

    def run() -> int:
        cache = FeatureCache(max_bytes=0, disk=disk)
        with cache.running():
            for i, v in enumerate(values):
                cache.get_or_compute("k", np.full(2, i), lambda _, v=v: v)
        return cache.disk_hits

    assert run() == 0
    assert sum(p.stat().st_size for p in disk.entries()) <= disk.max_bytes
    assert run() == 3  # plain LRU on disk would have kept only the last ones: 0 hits


def test_the_warning_gives_the_numbers(tmp_path: Path) -> None:
    image, truth = synthetic_stack(n_slices=8, size=32)
    labels = example_labels(truth, 3)
    cache = FeatureCache(max_bytes=2 * one_slice_bytes(32))
    with pytest.warns(CacheTooSmallWarning) as caught:
        list(propagate(image, labels, ClassicBackend(), cache=cache))
    message = str(caught[0].message)
    one = one_slice_bytes(32)  # 32² × features × 4 bytes
    assert f"features of 8 slices need about {human(8 * one)}" in message
    assert f"holds {human(2 * one)} (memory)" in message
    assert human(8 * one) == f"{8 * one / 1e6:.1f} MB"  # the unit follows the size
    assert "recompute about 6 slices" in message
    disk = DiskCache("features", tmp_path, max_bytes=10**7)
    with warnings.catch_warnings():  # memory + disk hold them: no warning
        warnings.simplefilter("error", CacheTooSmallWarning)
        list(propagate(image, labels, ClassicBackend(), cache=FeatureCache(2, disk)))


def test_cli_feature_cache_dir_reuses_features_across_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, truth = synthetic_stack(n_slices=5, size=48)
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "labels.tif", example_labels(truth, 2))
    common = ["propagate", str(tmp_path / "image.tif"), "--labels", str(tmp_path / "labels.tif")]
    cache = ["--feature-cache-dir", str(tmp_path / "cache"), "--quiet", "--overwrite"]
    for run in ("first", "second"):
        out = ["--out", str(tmp_path / f"{run}.tif"), "--timings", str(tmp_path / f"{run}.json")]
        assert main([*common, *out, *cache]) == 0
    first, second = (json.loads((tmp_path / f"{r}.json").read_text()) for r in ("first", "second"))
    assert [s["cached"] for s in first["slices"]] == [0.0] * 4
    assert [s["cached"] for s in second["slices"]] == [1.0] * 4
    assert len(list((tmp_path / "cache" / "features").glob("*.npy"))) == 5
    capsys.readouterr()
    tiny = ["--feature-cache-gb", "0", "--feature-cache-disk-gb", "0"]
    assert main([*common, "--out", str(tmp_path / "third.tif"), *cache, *tiny]) == 0
    assert "warning: the features of 5 slices need about" in capsys.readouterr().err
