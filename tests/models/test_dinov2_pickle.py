"""A dinov2 backend pickles (its ViT's official position-embedding resampling included), so
distributed runs can ship it to dask workers; the workers' labels equal the local run's."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from src_models.engine import propagate
from src_models.registry import build_backend
from src_models.sample_data import example_labels, synthetic_stack

N, EXAMPLE = 6, 2


def _tiny_dinov2():  # type: ignore[no-untyped-def]
    # input 56 px: a 4×4 grid, off the native 37×37, so the patched resampling runs
    return build_backend("dinov2", weights="random", device="cpu", dtype="float32", input_size=56)


@pytest.fixture(scope="module")
def stack() -> tuple[np.ndarray, np.ndarray]:
    image, truth = synthetic_stack(n_slices=N, size=48)
    return image, example_labels(truth, EXAMPLE)


def test_a_fitted_dinov2_backend_round_trips_through_pickle(
    stack: tuple[np.ndarray, np.ndarray],
) -> None:
    image, labels = stack
    backend = _tiny_dinov2()
    want = [r.labels for r in propagate(image, labels, backend, link=False)]
    copy = pickle.loads(pickle.dumps(backend))
    assert copy.encoder.model is not backend.encoder.model
    # the copy's own model runs the official resampling (not the original's, via a reference)
    assert copy.encoder.model._pos_embed.args[0] is copy.encoder.model
    got = [r.labels for r in propagate(image, labels, copy, link=False)]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    sample = image[0, ..., None].astype(np.float32) / 255
    np.testing.assert_allclose(
        copy.compute_features(sample).tokens, backend.compute_features(sample).tokens
    )


def test_a_distributed_dinov2_run_equals_the_local_run(
    stack: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    zarr = pytest.importorskip("zarr")
    from src_models.distributed import check_shippable, propagate_distributed
    from src_models.zarr_out import ZarrProposals, open_proposals

    image, labels = stack
    backend = _tiny_dinov2()
    check_shippable(backend)
    local = labels.copy()
    for res in propagate(image, labels, backend, link=False):
        local[res.index] = res.labels
    out = tmp_path / "out.zarr"

    def store() -> ZarrProposals:
        return open_proposals(out, labels, labels.dtype, "key", overwrite=False)

    with (  # a worker process: the backend really goes through pickle
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        seen = [r.index for r in propagate_distributed(image, labels, backend, client, store)]
    assert sorted(seen) == [i for i in range(N) if i != EXAMPLE]
    np.testing.assert_array_equal(zarr.open_array(str(out), mode="r")[:], local)
