"""Protocols, the speed benchmark and `napari-incontext eval`, on tiny generated data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import make_dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from src_models import cli
from src_models.backends.base import BackendBase
from src_models.evaluation import protocols
from src_models.evaluation.benchmark import speed_benchmark
from src_models.evaluation.datasets import AnnotatedImages, InstanceImage, Stack, load_datasets
from src_models.evaluation.protocols import RANDOM_NOTE, drain
from src_models.registry import BACKENDS, BackendInfo
from src_models.timing import NULL_TIMER, Timer
from src_models.types import Example


class ThresholdBackend(BackendBase):
    """Predicts label 1 where the first channel is > 0.5: perfect on the fixtures below.

    ``empty=True`` predicts nothing at all.
    """

    name = "threshold"
    feature_key = "threshold"

    def __init__(self, empty: bool = False) -> None:
        self.empty = empty
        self.config = None

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> np.ndarray:
        timer.add("backbone", 1e-6)
        return image[..., 0].copy()

    def fit(self, examples: Sequence[Example], timer: Timer = NULL_TIMER) -> None:
        self.fitted = len(examples)

    def predict(
        self, features: np.ndarray, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        labels = (features > 0.5).astype(np.int32) * (not self.empty)
        return labels, np.ones(shape, np.float32)


def _blob(h: int, w: int, y: int, x: int, r: int = 3) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - y) ** 2 + (xx - x) ** 2 <= r * r).astype(np.int32)


def _image_set() -> AnnotatedImages:
    masks = [_blob(16, 16, 4 + i, 5 + i) for i in range(6)]
    images = [(m * 255).astype(np.uint8) for m in masks]
    return AnnotatedImages("toy", images, masks, [f"{i}" for i in range(6)], ["a"] * 3 + ["b"] * 3)


def _stack(n: int = 6) -> Stack:
    labels = np.stack([_blob(16, 16, 5 + z, 6) + 2 * _blob(16, 16, 11, 11, 2) for z in range(n)])
    return Stack("toy", (labels > 0).astype(np.uint8) * 255, labels, instance=False)


def test_one_shot_counts_pairs_and_scores_a_perfect_backend() -> None:
    data = _image_set()
    res = drain(protocols.one_shot(data, ThresholdBackend()))
    assert res.summary["pairs"] == 2 * 3 * 2  # 2 classes × 3 references × 2 targets
    assert res.summary["mIoU"] == 1.0 and res.summary["FB-IoU"] == 1.0
    two = drain(protocols.one_shot(data, ThresholdBackend(), shots=2))
    assert two.summary["pairs"] == 2 * 3 * 1 and two.protocol == "2-shot"
    one = drain(protocols.one_shot(data, ThresholdBackend(), episodes=1))
    assert [i["reference"] for i in one.items] == [["0"], ["0"], ["3"], ["3"]]


def test_one_shot_with_an_empty_backend_scores_zero() -> None:
    data = _image_set()
    res = drain(protocols.one_shot(data, ThresholdBackend(empty=True), episodes=1))
    assert res.summary["mIoU"] == 0.0 and res.summary["Dice"] == 0.0
    fg = sum(int(data.masks[i].sum()) for i in (1, 2, 4, 5))
    bg_iou = (4 * 256 - fg) / (4 * 256)
    assert res.summary["FB-IoU"] == pytest.approx(bg_iou / 2)


class IdBackend(ThresholdBackend):
    """Predicts the id written in the image (0 → 0, 160 → 1, 255 → 2; the engine scales
    intensities to [0, 1]): perfect on :func:`_multi_id_set`."""

    def predict(
        self, features: np.ndarray, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        ids = (features > 0.3).astype(np.int32) + (features > 0.8)
        return ids, np.ones(shape, np.float32)


def _multi_id_set() -> AnnotatedImages:
    masks = [_blob(16, 16, 4, 4 + i) + 2 * _blob(16, 16, 11, 10 - i, 2) for i in range(3)]
    images = [np.array([0, 160, 255], np.uint8)[m] for m in masks]
    names = [f"{i}" for i in range(3)]
    return AnnotatedImages("ids", images, masks, names, ["a"] * 3, multiclass=True)


def test_one_shot_scores_multi_id_masks_per_id() -> None:
    data = _multi_id_set()
    perfect = drain(protocols.one_shot(data, IdBackend()))
    assert perfect.summary["mIoU"] == 1.0 and perfect.items[0]["ids"] == [1, 2]
    assert perfect.summary["IoU[a/1]"] == 1.0 and perfect.summary["IoU[a/2]"] == 1.0
    # one label for every object: perfect if binarised, wrong per id
    merged = drain(protocols.one_shot(data, ThresholdBackend()))
    targets = [data.masks[i] for i in (1, 2, 0, 2, 0, 1)]
    ones = sum(int((m == 1).sum()) for m in targets)
    both = sum(int((m > 0).sum()) for m in targets)
    assert merged.summary["IoU[a/1]"] == pytest.approx(ones / both)
    assert merged.summary["IoU[a/2]"] == 0.0
    assert merged.summary["mIoU"] == pytest.approx(ones / both / 2)
    assert merged.summary["FB-IoU"] == 1.0  # foreground vs background is still perfect


def test_summaries_publish_fit_seconds_next_to_seconds_per_slice() -> None:
    one = drain(protocols.one_shot(_image_set(), ThresholdBackend(), episodes=1))
    prop = drain(protocols.propagate_stack(_stack(), ThresholdBackend()))
    for res in (one, prop):
        keys = list(res.summary)
        assert keys.index("fit s") == keys.index("s/slice") + 1
        assert res.summary["fit s"] >= 0 and res.summary["s/slice"] > 0
    fits = [i["fit"] for i in one.items if "fit" in i]
    assert len(fits) == 2  # one fit per episode (two classes), on its first target only
    assert one.summary["fit s"] == pytest.approx(np.mean(fits))
    rows = [{"features": 1.0, "head": 0.5, "fit": 4.0}, {"features": 2.0, "head": 0.5}]
    rows.append({"features": 1.5, "head": 0.0, "fit": 0.0, "fit_reused": 1.0})
    assert protocols.timing_summary(rows) == {"s/slice": pytest.approx(5.5 / 3), "fit s": 4.0}


def test_episode_starts_keep_the_first_reference() -> None:
    assert protocols.episode_starts(5, None, 0) == [0, 1, 2, 3, 4]
    starts = protocols.episode_starts(10, 3, seed=1)
    assert starts[0] == 0 and len(set(starts)) == 3
    assert starts == protocols.episode_starts(10, 3, seed=1)


def test_propagate_semantic_stack_and_limit() -> None:
    stack = _stack()
    res = drain(protocols.propagate_stack(stack, ThresholdBackend()))
    assert res.summary["slices"] == 5
    # the threshold backend gives every object label 1: class 1 is over-segmented, class 2 missed
    assert set(np.unique(stack.labels)) == {0, 1, 2}
    scored = stack.labels[[0, 1, 2, 4, 5]]
    class_1 = (scored == 1).sum() / (scored > 0).sum()
    assert res.summary["mIoU"] == pytest.approx((class_1 + 0.0) / 2)
    assert {i["start"] for i in res.items} == {3}
    limited = drain(protocols.propagate_stack(stack, ThresholdBackend(), limit=2))
    assert sorted(i["slice"] for i in limited.items) == [2, 4]


def test_propagate_instance_stack_runs_per_object() -> None:
    labels = np.zeros((10, 20, 20), np.int32)
    labels[3:8, 2:6, 2:6] = 3
    labels[2:8, 10:15, 10:15] = 5
    labels[0, 18, 18] = 9  # a one-slice fragment is never chosen
    stack = Stack("cells", (labels > 0).astype(np.uint8) * 255, labels, instance=True)
    assert sorted(protocols.select_objects(labels, 3)) == [3, 5]
    res = drain(protocols.propagate_stack(stack, ThresholdBackend(), n_objects=1))
    assert {i["run"] for i in res.items} == {"object 3"}
    # slices are numbered in the whole stack: object 3 spans 3..7, scored on 1..9 (margin 2)
    assert sorted(i["slice"] for i in res.items) == [1, 2, 3, 4, 6, 7, 8, 9]
    assert {i["start"] for i in res.items} == {5}
    # the other cell is also > 0.5, so precision suffers while recall is complete
    scored = labels[[1, 2, 3, 4, 6, 7, 8, 9]]
    assert res.summary["mIoU"] == pytest.approx((scored == 3).sum() / (scored > 0).sum())


def test_instance_one_shot_matches_every_nucleus() -> None:
    labels = np.zeros((40, 40), np.int32)
    for k, (y, x) in enumerate([(5, 5), (5, 30), (30, 5), (30, 30), (18, 18)], start=1):
        labels += k * _blob(40, 40, y, x, 3)
    data = InstanceImage("nuclei", (labels > 0).astype(np.uint8) * 255, labels)
    res = drain(protocols.instance_one_shot(data, ThresholdBackend(), crop=16))
    assert res.summary["instance F1@0.5"] == 1.0 and res.summary["true instances"] == 5
    assert res.items[0]["tp"] == 5


def _write_davis(root: Path, frames: int = 5) -> None:
    for seq in ("s1", "s2"):
        (root / "JPEGImages" / seq).mkdir(parents=True)
        (root / "Annotations" / seq).mkdir(parents=True)
        for t in range(frames):
            mask = _blob(24, 32, 8 + t, 10 + 2 * t, 5).astype(np.uint8) * 255
            rgb = np.repeat(mask[..., None], 3, -1)
            iio.imwrite(root / "JPEGImages" / seq / f"{t:05d}.png", rgb)
            iio.imwrite(root / "Annotations" / seq / f"{t:05d}.png", mask)


def test_video_scores_j_and_f(tmp_path: Path) -> None:
    _write_davis(tmp_path)
    (video,) = load_datasets(tmp_path)
    res = drain(protocols.video(video, ThresholdBackend()))
    assert {k: res.summary[k] for k in ("J&F", "J", "F", "sequences")} == {
        "J&F": 1.0,
        "J": 1.0,
        "F": 1.0,
        "sequences": 2.0,
    }
    assert res.summary["fit s"] >= 0 and res.summary["s/slice"] > 0
    empty = drain(protocols.video(video, ThresholdBackend(empty=True), limit=1))
    assert empty.summary["J"] == 0.0 and empty.summary["sequences"] == 1.0


def test_video_scores_each_object_of_a_multi_object_sequence(tmp_path: Path) -> None:
    (tmp_path / "JPEGImages" / "s").mkdir(parents=True)
    (tmp_path / "Annotations" / "s").mkdir(parents=True)
    for t in range(4):
        mask = (_blob(24, 32, 8, 8 + t, 4) + 2 * _blob(24, 32, 16, 24 - t, 4)).astype(np.uint8)
        rgb = np.repeat((mask > 0)[..., None] * np.uint8(255), 3, -1)
        iio.imwrite(tmp_path / "JPEGImages" / "s" / f"{t:05d}.png", rgb)
        iio.imwrite(tmp_path / "Annotations" / "s" / f"{t:05d}.png", mask)
    (video,) = load_datasets(tmp_path)
    # one label for both objects: perfect if binarised; per object, object 2 is missed
    res = drain(protocols.video(video, ThresholdBackend()))
    assert res.items[0]["objects"] == 2
    truth = video.sequences[0].load().labels[1:3]
    j1 = (truth == 1).sum() / (truth > 0).sum()  # frames 1, 2 are scored, equal areas
    assert res.summary["J"] == pytest.approx((j1 + 0.0) / 2)


def test_speed_benchmark_reports_stages_and_cached_rerun() -> None:
    stack = _stack()
    labels = np.zeros_like(stack.labels)
    labels[0] = stack.labels[0]
    report = drain(speed_benchmark(stack.image, labels, ThresholdBackend()))
    assert report["slices"] == 5 and report["cache hits (re-run)"] == 6
    stages = {"features s/slice", "head s/slice", "backbone s/slice", "total / backbone"}
    assert stages <= set(report) and report["fit s"] >= 0
    assert not [k for k in report if k.startswith("fit_")]  # the fit is not a per-slice stage
    # peak ≳ current resident memory (read a moment later), both in MiB (not KiB or pages)
    assert report["RSS now MiB"] <= report["peak RSS MiB"] + 16 < 64 * 1024
    assert report["RSS now MiB"] > 20  # a Python process with numpy holds tens of MiB
    speed_up = report["cold run s"] / report["cached run s"]
    assert report["cached speed-up"] == pytest.approx(speed_up)


def _write_stack(root: Path) -> None:
    stack = _stack()
    rng = np.random.default_rng(0)
    noisy = np.clip(stack.image.astype(int) + rng.integers(-20, 20, stack.image.shape), 0, 255)
    tifffile.imwrite(root / "image.tif", noisy.astype(np.uint8))
    tifffile.imwrite(root / "labels.tif", stack.labels.astype(np.uint8))


def test_eval_command_is_registered_and_writes_json(tmp_path: Path, capsys) -> None:
    assert "eval" in cli.COMMANDS
    _write_stack(tmp_path)
    out = tmp_path / "results.json"
    rc = cli.main(
        [
            "eval",
            "--data",
            str(tmp_path),
            "--protocol",
            "propagate",
            "--backend",
            "classic",
            "--option",
            "n_estimators=16",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    printed, err = capsys.readouterr()
    assert "| dataset | backend | mIoU" in printed and "classic" in printed
    (result,) = json.loads(out.read_text())["results"]
    assert result["protocol"] == "propagate" and result["summary"]["slices"] == 5
    read_as = "a semantic stack 6×16×16 (Z×Y×X) with 2 classes"
    assert result["read_as"] == read_as
    assert f"read {tmp_path.name}/image as {read_as}" in err
    assert result["summary"]["mIoU"] > 0.5  # two clean blobs: the forest separates them


def test_eval_annotator_protocol(tmp_path: Path, capsys) -> None:
    _write_stack(tmp_path)
    rc = cli.main(
        [
            "eval",
            "--data",
            str(tmp_path),
            "--protocol",
            "annotator",
            "--backend",
            "classic",
            "--option",
            "n_estimators=5",
            "--target-iou",
            "0.5",
            "--quiet",
        ]
    )
    assert rc == 0
    assert "corrections" in capsys.readouterr().out


def test_eval_refuses_a_protocol_the_data_cannot_run(tmp_path: Path, capsys) -> None:
    _write_stack(tmp_path)
    rc = cli.main(["eval", "--data", str(tmp_path), "--protocol", "video", "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "'video' protocol can use (needs video)" in err
    assert "read " + tmp_path.name + "/image as a semantic stack" in err
    assert (
        cli.main(
            ["eval", "--data", str(tmp_path), "--protocol", "propagate", "--limit", "0", "--quiet"]
        )
        == 2
    )


def test_eval_says_what_an_image_folder_was_read_as(tmp_path: Path, capsys) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for n, mask in enumerate(_multi_id_set().masks[:2]):
        iio.imwrite(tmp_path / "images" / f"img{n}.png", (mask * 100).astype(np.uint8))
        iio.imwrite(tmp_path / "masks" / f"img{n}_mask.png", mask.astype(np.uint8))
    rc = cli.main(["eval", "--data", str(tmp_path), "--protocol", "propagate", "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"read {tmp_path.name} as an image set of 2 images in 1 class" in err
    assert "(multi-class masks, scored per id; images/ + masks/)" in err


def test_eval_takes_any_registry_name_and_labels_random_weights(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_dataclass("ThresholdConfig", [], frozen=True)
    info = BackendInfo(
        "threshold",
        "test",
        config,
        lambda config, device, weights: ThresholdBackend(),
        weight_slots=("weights",),
    )
    monkeypatch.setitem(BACKENDS, "threshold", info)
    _write_davis(tmp_path, frames=3)
    rc = cli.main(
        [
            "eval",
            "--data",
            str(tmp_path),
            "--protocol",
            "video",
            "--backend",
            "threshold",
            "--weights",
            "random",
            "--quiet",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert RANDOM_NOTE in printed and "| 1.000 |" in printed


def test_default_start_shows_every_class_near_the_middle() -> None:
    labels = np.zeros((7, 4, 4), np.int32)
    labels[1:6, 0, 0] = 1
    assert protocols.default_start(labels) == 3  # binary: the middle slice
    labels[3, 0, 0] = 0
    assert protocols.default_start(labels) == 2  # unlabelled middle: nearest labelled slice
    labels[5, 1, 1] = 2  # only slice 5 shows both classes
    assert protocols.default_start(labels) == 5
    with pytest.raises(ValueError, match="empty"):
        protocols.default_start(np.zeros((3, 2, 2), np.int32))
