"""Lazy, per-slice input: memmap, zarr and dask stacks give the numpy results, reading only
the slices a run works on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from src_models.backends.classic import ClassicBackend
from src_models.engine import propagate
from src_models.fitting import auto_window
from src_models.lazy import LazySlices, is_lazy, open_zarr, prepare_lazy, sample_indices
from src_models.memory import estimate
from src_models.sample_data import example_labels, synthetic_stack

da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")
delayed = pytest.importorskip("dask").delayed


@pytest.fixture(scope="module")
def stack() -> tuple[np.ndarray, np.ndarray]:
    image, truth = synthetic_stack(n_slices=8, size=48)
    return image, example_labels(truth, 3)


def _run(images: object, labels: object, **kwargs: object) -> dict[int, np.ndarray]:
    return {r.index: r.labels for r in propagate(images, labels, ClassicBackend(), **kwargs)}  # type: ignore[arg-type]


def _same(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].dtype == b[k].dtype


def _zarr(path: Path, data: np.ndarray, fmt: int) -> object:
    arr = zarr.create_array(
        str(path), shape=data.shape, dtype=data.dtype, chunks=(1, *data.shape[1:]), zarr_format=fmt
    )
    arr[:] = data
    return zarr.open_array(str(path), mode="r")


def test_memmap_zarr_and_dask_give_the_numpy_proposals(
    stack: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, labels = stack
    expected = _run(image, labels)
    np.save(tmp_path / "im.npy", image)
    np.save(tmp_path / "lab.npy", labels)
    memmap = np.load(tmp_path / "im.npy", mmap_mode="r")
    assert is_lazy(memmap) and not is_lazy(image) and not is_lazy(list(image))
    _same(_run(memmap, np.load(tmp_path / "lab.npy", mmap_mode="r")), expected)
    for fmt in (2, 3):
        z_image = _zarr(tmp_path / f"im{fmt}.zarr", image, fmt)
        z_labels = _zarr(tmp_path / f"lab{fmt}.zarr", labels, fmt)
        _same(_run(z_image, z_labels), expected)
    _same(_run(da.from_array(image, chunks=(1, 48, 48)), labels), expected)


def test_an_ome_zarr_group_is_read_at_level_zero(
    stack: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    image, labels = stack
    group = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w", zarr_format=2)
    level0 = group.create_array("s0", shape=image.shape, dtype=image.dtype, chunks=(1, 48, 48))
    level0[:] = image
    group.create_array("s1", shape=(8, 24, 24), dtype=image.dtype)  # a coarser level, unused
    group.attrs["multiscales"] = [{"datasets": [{"path": "s0"}, {"path": "s1"}]}]
    opened = open_zarr(tmp_path / "ome.zarr")
    assert opened.shape == image.shape
    _same(_run(opened, labels, targets=[2, 5]), _run(image, labels, targets=[2, 5]))


def test_a_run_reads_only_the_example_the_target_and_the_sample() -> None:
    image, truth = synthetic_stack(n_slices=40, size=32)
    labels = example_labels(truth, 10)
    reads: list[int] = []

    def read(i: int) -> np.ndarray:
        reads.append(i)
        return image[i]

    lazy = da.stack(
        [da.from_delayed(delayed(read)(i), image.shape[1:], image.dtype) for i in range(40)]
    )
    results = _run(lazy, labels, targets=[25])
    assert list(results) == [25]
    sampled = set(sample_indices(40))
    assert len(sampled) < 40
    window = set(auto_window(40, lazy=True))  # classic's automatic choices look at these
    assert len(sampled | window) < 40
    assert set(reads) == sampled | window | {10, 25}
    assert reads.count(25) <= 2 and reads.count(10) <= 2  # once for the sample, once to run


def test_slices_are_normalised_on_demand_and_few_are_kept(
    stack: tuple[np.ndarray, np.ndarray],
) -> None:
    image, labels = stack
    data = prepare_lazy(image.view(np.memmap), labels)
    images = data.images
    assert isinstance(images, LazySlices) and images.reads == 0
    first = images[3]
    assert first.dtype == np.float32 and first.shape == (48, 48, 1)
    assert images[3] is first and images.reads == 1
    for i in range(8):
        images[i]
    assert len(images._kept) <= 4
    assert data.examples == [3] and int(data.labels[0].max()) == 0
    assert data.labels[3].dtype == np.int32 and data.labels[3].max() == 2


def test_bad_lazy_input_is_refused_with_a_fix(stack: tuple[np.ndarray, np.ndarray]) -> None:
    image, labels = stack
    with pytest.raises(ValueError, match="slice 3 contains NaN"):
        prepare_lazy(da.from_array(np.where(labels == 1, np.nan, 1.0)), labels)  # sampled
    with pytest.raises(ValueError, match="no example"):
        prepare_lazy(da.from_array(image), np.zeros_like(labels))
    with pytest.raises(ValueError, match="do not match"):
        prepare_lazy(da.from_array(image), labels[:3])
    long = np.concatenate([image] * 4).astype(np.float32)
    unsampled = min(set(range(32)) - set(sample_indices(32)))
    long[unsampled, 0, 0] = np.nan
    data = prepare_lazy(da.from_array(long), np.concatenate([labels] * 4))  # not sampled...
    with pytest.raises(ValueError, match="NaN"):
        data.images[unsampled]  # ...and refused once read


def test_the_memory_estimate_of_a_lazy_stack_does_not_grow_with_its_length() -> None:
    backend = ClassicBackend()
    small = estimate([(512, 512)] * 30, backend, 10**6, lazy=True)
    large = estimate([(512, 512)] * 2000, backend, 10**6, lazy=True)
    assert small == large
    assert sum(estimate([(512, 512)] * 2000, backend, 10**6).values()) > 2 * sum(large.values())


def test_the_engine_keeps_only_the_proposals_a_later_slice_needs() -> None:
    from src_models.engine import _Finished
    from src_models.order import propagation_order

    order = propagation_order(200, [100])
    finished = _Finished({100: np.ones((2, 2), np.int32)}, order)
    most = 0
    for index in order:
        neighbour = index - int(np.sign(index - 100))
        assert neighbour in finished  # what linking and the video path look up is there
        finished.add(index, np.full((2, 2), index, np.int32))
        most = max(most, len(finished))
    assert most <= 3 and list(finished) == [100]
