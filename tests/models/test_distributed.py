"""Distributed batch labelling: a dask.distributed run writes the local run's labels into the
zarr output, each slice recorded once, also when a worker is killed mid-run."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from src_models.backends.classic import ClassicBackend
from src_models.cli import main
from src_models.engine import propagate
from src_models.sample_data import example_labels, synthetic_stack
from src_models.zarr_out import ZarrProposals, open_proposals

distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

from src_models.distributed import check_shippable, propagate_distributed  # noqa: E402

N, EXAMPLE = 10, 4


@pytest.fixture(scope="module")
def stack() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, example labels, the local run's labels of every slice)."""
    image, truth = synthetic_stack(n_slices=N, size=40)
    labels = example_labels(truth, EXAMPLE)
    local = labels.copy()
    for res in propagate(image, labels, ClassicBackend(), link=False):  # workers do not link
        local[res.index] = res.labels
    return image, labels, local


def _die_soon() -> None:
    """Kill this worker's process just after answering (as a crash or the OOM killer would)."""
    threading.Timer(0.05, os._exit, args=(1,)).start()


def _run(
    client: distributed.Client,
    image: np.ndarray,
    labels: np.ndarray,
    out: Path,
    kill: bool,
    confidence: bool = False,
) -> list[int]:
    def store() -> ZarrProposals:
        return open_proposals(out, labels, labels.dtype, "key", False, confidence)

    seen = []
    run = propagate_distributed(image, labels, ClassicBackend(), client, store, in_flight=4)
    for res in run:
        seen.append(res.index)
        assert res.total == N - 1
        if kill and len(seen) == 1:  # the worker with the most tasks in hand dies
            busy = max(client.processing().items(), key=lambda kv: len(kv[1]))[0]
            client.run(_die_soon, workers=[busy])
    return seen


def test_a_local_cluster_writes_the_local_runs_labels(
    stack: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, labels, local = stack
    with distributed.Client(
        processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as client:
        seen = _run(client, image, labels, tmp_path / "out.zarr", kill=False, confidence=True)
    assert sorted(seen) == [i for i in range(N) if i != EXAMPLE]
    stored = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    np.testing.assert_array_equal(stored[:], local)
    assert stored.attrs["done"] == sorted(seen)
    conf = zarr.open_array(str(tmp_path / "out.zarr" / "confidence"), mode="r")[:]
    assert conf.dtype == np.float16 and conf.min() >= 0 and conf.max() <= 1
    assert all(conf[i].max() > 0 for i in seen) and conf[EXAMPLE].max() == 0


def test_a_killed_worker_loses_nothing(
    stack: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, labels, local = stack
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        before = set(client.scheduler_info()["workers"])
        seen = _run(client, image, labels, tmp_path / "out.zarr", kill=True)
        after = set(client.scheduler_info()["workers"])
    assert before - after, "no worker was killed"
    assert sorted(seen) == [i for i in range(N) if i != EXAMPLE]  # each slice once
    stored = zarr.open_array(str(tmp_path / "out.zarr"), mode="r")
    np.testing.assert_array_equal(stored[:], local)
    assert stored.attrs["done"] == sorted(seen)


def test_a_fitted_classic_backend_pickles(
    stack: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    image, labels, _ = stack
    backend = ClassicBackend()
    want = next(propagate(image, labels, backend, targets=[0])).labels
    copy = pickle.loads(pickle.dumps(backend))
    got = next(propagate(image, labels, copy, targets=[0], memo=None)).labels
    np.testing.assert_array_equal(got, want)


def test_cli_scheduler_local_and_its_refusals(
    stack: tuple[np.ndarray, np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image, labels, _ = stack
    np.save(tmp_path / "image.npy", image)
    np.save(tmp_path / "labels.npy", labels)
    base = ["propagate", str(tmp_path / "image.npy"), "--labels", str(tmp_path / "labels.npy")]
    assert main([*base, "--out", str(tmp_path / "local.zarr"), "--quiet", "--no-link"]) == 0
    local = zarr.open_array(str(tmp_path / "local.zarr"), mode="r")[:]  # the same input path
    capsys.readouterr()
    out = tmp_path / "out.zarr"
    assert (
        main([*base, "--out", str(out), "--quiet", "--scheduler", "local", "--workers", "1"]) == 0
    )
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], local)
    assert f"{N - 1} proposed, 0 resumed" in capsys.readouterr().err
    assert (
        main([*base, "--out", str(out), "--quiet", "--scheduler", "local", "--workers", "1"]) == 0
    )
    assert f"0 proposed, {N - 1} resumed" in capsys.readouterr().err  # a rerun resumes
    for extra in (["--out", str(tmp_path / "o.tif")], ["--out", str(out), "--link"]):
        assert main([*base, *extra, "--scheduler", "local"]) == 2
        err = capsys.readouterr().err.strip()
        assert "--scheduler" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.tif").exists()


def test_a_backend_that_does_not_pickle_is_refused_with_a_message() -> None:
    backend = ClassicBackend()
    backend.hook = lambda: None  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="cannot be sent to dask workers"):
        check_shippable(backend)
    check_shippable(ClassicBackend())
