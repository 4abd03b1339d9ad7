"""What keeps a cached re-run fast: classic's forest summed without a thread pool per call,
and a disk tier that neither scans its folder nor fsyncs on every feature it writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from src_models import disk_cache
from src_models.backends import classic
from src_models.cache import FeatureCache
from src_models.disk_cache import DiskCache, make_key


@pytest.mark.parametrize("serial_work", [2**30, 0], ids=["one thread", "sklearn's path"])
def test_forest_proba_equals_sklearn(serial_work: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + 2 * (x[:, 4] > 1)
    forest = RandomForestClassifier(7, max_depth=6, random_state=0).fit(x, y)
    monkeypatch.setattr(classic, "SERIAL_WORK", serial_work)
    monkeypatch.setattr(classic, "BLOCK", 32)  # several blocks, the last one short
    expected = forest.predict_proba(x[:100])
    got = classic.forest_proba(forest, x[:100])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # the last columns given apart (a context stage's maps) read as if joined
    got = classic.forest_proba(forest, x[:100, :3], x[:100, 3:])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def _count_scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    scans: list[int] = []
    entries = DiskCache.entries

    def counted(self: DiskCache) -> list[Path]:
        scans.append(1)
        return entries(self)

    monkeypatch.setattr(DiskCache, "entries", counted)
    return scans


def test_writes_do_not_scan_the_folder_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DiskCache("test", tmp_path, max_bytes=10**7)
    scans = _count_scans(monkeypatch)
    for i in range(40):
        assert cache.put(make_key(str(i)), np.full(100, i, np.float32))
    assert len(scans) == 1  # the first write only (40 × 528 bytes < 10% of the cap)
    assert len(cache.entries()) == 40


def test_the_index_evicts_the_least_recently_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = 528  # a 100-float32 .npy
    cache = DiskCache("test", tmp_path, max_bytes=3 * entry)
    monkeypatch.setattr(disk_cache, "RESCAN", 10.0)  # no rescan: the index alone decides
    keys = [make_key(str(i)) for i in range(4)]
    for key in keys[:3]:
        cache.put(key, np.zeros(100, np.float32))
    assert cache.get(keys[0]) is not None  # used: now the most recent
    cache.put(keys[3], np.zeros(100, np.float32))
    kept = {p.name[:40] for p in cache.entries()}
    assert kept == {keys[0], keys[2], keys[3]}
    assert sum(p.stat().st_size for p in cache.entries()) <= cache.max_bytes


def test_feature_entries_skip_fsync_other_entries_keep_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    disk = DiskCache("features", tmp_path)
    FeatureCache(disk=disk).get_or_compute("k", np.zeros(3), lambda _: np.arange(10.0))
    assert len(disk.entries()) == 1 and synced == []  # checksummed: a crash costs a recompute
    DiskCache("sam", tmp_path).put(make_key("x"), np.zeros(3, np.float32))
    assert len(synced) == 1
