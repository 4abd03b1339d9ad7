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
    describe,
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


def _pair_folder(root: Path, images: list[str], masks: list[str], sub: str = "") -> None:
    """Write images/<sub>/<name> (RGB) and masks/<sub>/<name> (0/255) files."""
    rng = np.random.default_rng(4)
    (root / "images" / sub).mkdir(parents=True, exist_ok=True)
    (root / "masks" / sub).mkdir(parents=True, exist_ok=True)
    for name in images:
        iio.imwrite(root / "images" / sub / name, _rgb(rng))
    for name in masks:
        Image.fromarray(_mask()).save(root / "masks" / sub / name)


def test_multi_id_masks_keep_their_ids_across_the_set(tmp_path: Path) -> None:
    _pair_folder(tmp_path, ["a.png", "b.png"], [])
    two = _mask(value=1)
    two[8:10, 10:14] = 2
    only_two = _mask(value=2)  # binarising this mask alone would turn class 2 into 1
    iio.imwrite(tmp_path / "masks" / "a.png", two)
    iio.imwrite(tmp_path / "masks" / "b.png", only_two)
    (ds,) = load_datasets(tmp_path)
    assert isinstance(ds, AnnotatedImages) and ds.multiclass
    assert set(np.unique(ds.masks[0])) == {0, 1, 2}
    assert set(np.unique(ds.masks[1])) == {0, 2}
    assert "multi-class masks, scored per id" in describe(ds)


def test_single_value_masks_stay_binary(tmp_path: Path) -> None:
    _pair_folder(tmp_path, ["a.png", "b.png"], ["a.png", "b.png"])
    (ds,) = load_datasets(tmp_path)
    assert isinstance(ds, AnnotatedImages) and not ds.multiclass
    assert all(set(np.unique(m)) == {0, 1} for m in ds.masks)
    assert describe(ds).startswith("an image set of 2 images in 1 class (binary masks")


def test_jpeg_masks_are_thresholded_with_a_warning(tmp_path: Path) -> None:
    _pair_folder(tmp_path, ["a.png", "b.png"], [])
    for name in ("a", "b"):
        rgb = np.repeat(_mask()[..., None], 3, -1)
        iio.imwrite(tmp_path / "masks" / f"{name}.jpg", rgb, quality=30)
    raw = iio.imread(tmp_path / "masks" / "a.jpg")
    assert len(np.unique(raw)) > 2  # the artefacts the threshold must remove
    with pytest.warns(UserWarning) as caught:
        (ds,) = load_datasets(tmp_path)
    messages = sorted(str(w.message) for w in caught)
    assert [m.split(": ")[0][-5:] for m in messages] == ["a.jpg", "b.jpg"]
    assert "JPEG mask thresholded at 127.5" in messages[0]
    assert isinstance(ds, AnnotatedImages) and not ds.multiclass
    np.testing.assert_array_equal(ds.masks[0], (_mask() > 0).astype(np.int32))


def test_masks_with_other_stems_or_suffixes_are_paired(tmp_path: Path) -> None:
    _pair_folder(
        tmp_path,
        ["21_training.tif", "22_training.tif", "img.png"],
        ["22_manual1.gif", "21_manual1.gif", "img_mask.png", "img2_mask.png"],
    )
    (ds,) = load_datasets(tmp_path)
    assert isinstance(ds, AnnotatedImages)
    assert ds.names == ["21_training", "22_training", "img"]
    assert all(set(np.unique(m)) == {0, 1} for m in ds.masks)


def test_ambiguous_mask_names_are_refused(tmp_path: Path) -> None:
    _pair_folder(tmp_path / "tie", ["cell_1.png"], ["cell_x.png", "cell_y.png"])
    with pytest.raises(ValueError, match="several masks equally well"):
        load_datasets(tmp_path / "tie")
    _pair_folder(tmp_path / "shared", ["s_1.png", "s_2.png"], ["s_x.png"])
    with pytest.raises(ValueError, match="matches both 's_1' and 's_2'"):
        load_datasets(tmp_path / "shared")


def test_mmseg_img_dir_ann_dir_with_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for split in ("train", "val"):
        (tmp_path / "img_dir" / split).mkdir(parents=True)
        (tmp_path / "ann_dir" / split).mkdir(parents=True)
        for n in (1, 2):
            iio.imwrite(tmp_path / "img_dir" / split / f"{split}{n}.jpg", _rgb(rng))
            iio.imwrite(tmp_path / "ann_dir" / split / f"{split}{n}.png", _mask(value=1))
    (ds,) = load_datasets(tmp_path)
    assert isinstance(ds, AnnotatedImages) and ds.layout == "img_dir/ + ann_dir/"
    assert ds.groups == [tmp_path.name] * 4  # train/val are splits, not classes
    assert ds.names == ["train/train1", "train/train2", "val/val1", "val/val2"]


def test_flat_jpegimages_annotations(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    photos, frames = tmp_path / "voc", tmp_path / "frames"
    for root, stems in ((photos, ["2007_000032", "cat"]), (frames, ["00000", "00001"])):
        (root / "JPEGImages").mkdir(parents=True)
        (root / "Annotations").mkdir()
        for stem in stems:
            iio.imwrite(root / "JPEGImages" / f"{stem}.jpg", _rgb(rng))
            iio.imwrite(root / "Annotations" / f"{stem}.png", _mask())
    (ds,) = load_datasets(photos)
    assert isinstance(ds, AnnotatedImages) and ds.layout == "JPEGImages/ + Annotations/"
    assert ds.names == ["2007_000032", "cat"]
    (video,) = load_datasets(frames)  # numbered frames: one sequence
    assert isinstance(video, Video) and [s.name for s in video.sequences] == ["frames"]
    assert video.sequences[0].load().labels.shape == (2, 12, 16)
    assert describe(video) == "a video of 1 sequence"


def test_describe_says_what_a_stack_was_read_as(tmp_path: Path) -> None:
    labels = np.zeros((4, 6, 6), np.uint8)
    labels[:, 1:3, 1:3], labels[:, 4:, 4:] = 1, 2
    tifffile.imwrite(tmp_path / "image.tif", labels * 50)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    (ds,) = load_datasets(tmp_path)
    assert describe(ds) == "a semantic stack 4×6×6 (Z×Y×X) with 2 classes"


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
