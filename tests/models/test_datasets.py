"""Dataset readers on generated fixtures in every layout (and on ../shared/data if present)."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from PIL import Image

from src_models.evaluation.datasets import (
    AnnotatedImages,
    InstanceImage,
    Stack,
    Video,
    load_datasets,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _rgb(rng: np.random.Generator, h: int = 12, w: int = 16) -> np.ndarray:
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def _mask(h: int = 12, w: int = 16, value: int = 255) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[2:6, 3:9] = value
    return m


def test_class_subfolders_prefer_masks_bin(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cls in ("apple", "ball"):
        for sub in ("images", "masks", "masks_bin"):
            (tmp_path / sub / cls).mkdir(parents=True)
        for n in (1, 2):
            iio.imwrite(tmp_path / "images" / cls / f"{n}.jpg", _rgb(rng))
            iio.imwrite(tmp_path / "masks_bin" / cls / f"{n}.png", _mask())
            iio.imwrite(tmp_path / "masks" / cls / f"{n}.png", np.full((12, 16), 7, np.uint8))
    (ds,) = load_datasets(tmp_path)
    assert isinstance(ds, AnnotatedImages)
    assert ds.group_indices() == {"apple": [0, 1], "ball": [2, 3]}
    assert ds.names == ["apple/1", "apple/2", "ball/1", "ball/2"]
    np.testing.assert_array_equal(ds.masks[0], (_mask() > 0).astype(np.int32))
    assert ds.images[0].shape == (12, 16, 3)


def test_stem_groups_and_palette_masks(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for obj in ("cat", "duck_toy"):
        for n in range(3):
            iio.imwrite(tmp_path / "images" / f"{obj}_{n:02d}.png", _rgb(rng))
            pal = Image.fromarray(_mask(value=1), mode="P")
            pal.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
            pal.save(tmp_path / "masks" / f"{obj}_{n:02d}.png")
    (ds,) = load_datasets(tmp_path)
    assert isinstance(ds, AnnotatedImages)
    assert sorted(ds.group_indices()) == ["cat", "duck_toy"]
    assert set(np.unique(ds.masks[0])) == {0, 1}  # palette indices, not RGB colours
    assert ds.masks[0].sum() == 24


def test_flat_folder_is_one_class_and_max_side_shrinks(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for n in (1, 2):
        iio.imwrite(tmp_path / "images" / f"{n}.png", np.full((40, 20), 100, np.uint8))
        mask = np.pad(np.full((20, 10), 255, np.uint8), ((10, 10), (5, 5)))
        iio.imwrite(tmp_path / "masks" / f"{n}.png", mask)
    (ds,) = load_datasets(tmp_path, max_side=20)
    assert isinstance(ds, AnnotatedImages)
    assert ds.groups == [tmp_path.name] * 2
    assert ds.images[0].shape == (20, 10) and ds.masks[0].shape == (20, 10)
    assert ds.images[0].dtype == np.uint8 and set(np.unique(ds.masks[0])) == {0, 1}


def test_missing_mask_names_the_image(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    iio.imwrite(tmp_path / "images" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="no mask for a"):
        load_datasets(tmp_path)


def test_semantic_stack_pair_binarises_255(tmp_path: Path) -> None:
    image = np.random.default_rng(2).integers(0, 255, (5, 8, 8), dtype=np.uint8)
    labels = np.zeros((5, 8, 8), np.uint8)
    labels[:, 2:5, 2:5] = 255
    tifffile.imwrite(tmp_path / "images_stack_zyx.tif", image)
    tifffile.imwrite(tmp_path / "labels_stack_zyx.tif", labels)
    (ds,) = load_datasets(tmp_path)
    assert isinstance(ds, Stack) and not ds.instance
    assert ds.labels.dtype == np.int32 and set(np.unique(ds.labels)) == {0, 1}
    np.testing.assert_array_equal(ds.image, image)


def test_instance_stack_by_id_count_and_by_dataset_json(tmp_path: Path) -> None:
    labels = np.arange(5 * 6 * 6, dtype=np.uint16).reshape(5, 6, 6) % 20  # 19 nonzero ids
    np.save(tmp_path / "image.npy", labels.astype(np.float32))
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    (ds,) = load_datasets(tmp_path)
    assert isinstance(ds, Stack) and ds.instance
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": "semantic"}))
    (ds,) = load_datasets(tmp_path)
    assert not ds.instance


def test_two_dimensional_pair_is_an_instance_image(tmp_path: Path) -> None:
    labels = np.zeros((10, 10), np.uint16)
    labels[1:3, 1:3], labels[5:8, 5:8] = 1, 2
    tifffile.imwrite(tmp_path / "img2d.tif", np.ones((10, 10), np.uint16))
    tifffile.imwrite(tmp_path / "mask2d.tif", labels)
    tifffile.imwrite(tmp_path / "img3d.tif", np.ones((3, 4, 4), np.uint16))
    tifffile.imwrite(tmp_path / "mask3d.tif", np.ones((3, 4, 4), np.uint16))
    found = {d.kind: d for d in load_datasets(tmp_path)}
    assert set(found) == {"instances", "stack"}
    assert isinstance(found["instances"], InstanceImage)
    np.testing.assert_array_equal(found["instances"].labels, labels)


def test_stack_shape_mismatch_is_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "raw.tif", np.ones((3, 4, 4), np.uint16))
    tifffile.imwrite(tmp_path / "labels.tif", np.ones((3, 4, 5), np.uint16))
    with pytest.raises(ValueError, match="must match"):
        load_datasets(tmp_path)


def test_davis_layout_is_read_lazily(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for seq in ("a", "b"):
        (tmp_path / "JPEGImages" / seq).mkdir(parents=True)
        (tmp_path / "Annotations" / seq).mkdir(parents=True)
        for t in range(4):
            iio.imwrite(tmp_path / "JPEGImages" / seq / f"{t:05d}.jpg", _rgb(rng, 24, 32))
            iio.imwrite(tmp_path / "Annotations" / seq / f"{t:05d}.png", _mask(24, 32))
    (ds,) = load_datasets(tmp_path, max_side=16)
    assert isinstance(ds, Video)
    assert [s.name for s in ds.sequences] == ["a", "b"]
    stack = ds.sequences[0].load(max_frames=3, max_side=ds.max_side)
    assert stack.image.shape == (3, 12, 16, 3) and stack.labels.shape == (3, 12, 16)
    assert set(np.unique(stack.labels)) == {0, 1}


def test_unknown_layout_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing")
    with pytest.raises(ValueError, match="no known layout"):
        load_datasets(tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        load_datasets(tmp_path / "missing")


@pytest.mark.data
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")
def test_shared_data_layouts() -> None:
    (hippo,) = load_datasets(SHARED / "hippocampus_mri_3d_mmseg")
    assert isinstance(hippo, Stack) and not hippo.instance
    assert set(np.unique(hippo.labels)) == {0, 1, 2}
    kinds = {d.kind: d for d in load_datasets(SHARED / "stardist_nuclei")}
    assert kinds["stack"].instance and len(np.unique(kinds["instances"].labels)) == 126
    (davis,) = load_datasets(SHARED / "davis2016_val")
    assert isinstance(davis, Video) and len(davis.sequences) >= 1
