"""The `napari-incontext` command line, end to end on generated files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from src_models.atomic import MANIFEST
from src_models.cli import main
from src_models.sample_data import example_labels, synthetic_stack
from tests.helpers import iou


@pytest.fixture
def stack_files(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    image, truth = synthetic_stack(n_slices=5, size=48)
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "labels.tif", example_labels(truth, 2))
    return tmp_path / "image.tif", tmp_path / "labels.tif", truth


@pytest.fixture
def folder_files(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    image, truth = synthetic_stack(n_slices=4, size=40)
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i, plane in enumerate(image):
        iio.imwrite(images / f"img_{i}.png", plane)  # 16-bit PNGs keep the bit depth
    iio.imwrite(masks / "img_1.png", truth[1].astype(np.uint8))
    return images, masks, truth


def test_propagate_a_stack_with_timings(stack_files, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    image, labels, truth = stack_files
    out, timings = tmp_path / "out.tif", tmp_path / "t.json"
    code = main(
        [
            "propagate",
            str(image),
            "--labels",
            str(labels),
            "--out",
            str(out),
            "--timings",
            str(timings),
            "--quiet",
        ]
    )
    assert code == 0
    result = tifffile.imread(out)
    assert result.shape == truth.shape
    np.testing.assert_array_equal(result[2], truth[2])  # the example is kept as it is
    assert np.mean([iou(result[i] == 1, truth[i] == 1) for i in (0, 1, 3, 4)]) > 0.8
    report = json.loads(timings.read_text())
    assert sorted(r["index"] for r in report["slices"]) == [0, 1, 3, 4]
    assert report["mean_seconds"]["features"] > 0
    # classic's automatic choices: one stderr line, and in the first slice's timings
    first = report["slices"][0]
    assert {"auto_link", "auto_per_slice", "auto_position"} <= set(first)
    assert report["automatic_choices"]["link"] == first["auto_link"]
    assert {"per_slice", "position", "drift", "continuity"} <= set(report["automatic_choices"])
    on = {True: "on", False: "off"}
    line = f"classic chose link={on[bool(first['auto_link'])]}"
    assert line in capsys.readouterr().err


def test_propagate_a_folder_mirrors_it(folder_files, tmp_path: Path) -> None:
    images, masks, truth = folder_files
    out = tmp_path / "out"
    assert (
        main(["propagate", str(images), "--labels", str(masks), "--out", str(out), "--quiet"]) == 0
    )
    written = sorted(p.name for p in out.iterdir())
    assert written == [MANIFEST] + [f"img_{i}.png" for i in range(4)]
    assert iou(iio.imread(out / "img_3.png") == 1, truth[3] == 1) > 0.7


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "src_models.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_existing_output_is_refused_unless_overwrite(stack_files, tmp_path: Path) -> None:
    image, labels, _ = stack_files
    out = tmp_path / "exists.tif"
    out.write_bytes(b"keep me")
    done = _run("propagate", str(image), "--labels", str(labels), "--out", str(out))
    assert done.returncode == 2 and "--overwrite" in done.stderr
    assert "Traceback" not in done.stderr and out.read_bytes() == b"keep me"
    args = ["propagate", str(image), "--labels", str(labels), "--out", str(out), "--quiet"]
    assert main([*args, "--overwrite"]) == 2  # not ours: --overwrite does not replace it
    assert out.read_bytes() == b"keep me"
    out.unlink()
    assert main(args) == 0
    first = out.stat().st_mtime_ns
    assert main(args) == 2  # ours now, but still only with --overwrite
    assert main([*args, "--overwrite"]) == 0 and out.stat().st_mtime_ns != first
    assert tifffile.imread(out).shape == (5, 48, 48)


@pytest.mark.parametrize(
    "case",
    ["no_examples", "shape", "whole", "nan", "ndim", "unreadable", "empty_mask", "unknown_backend"],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case: str, tmp_path: Path) -> None:
    image = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    labels = np.zeros((3, 16, 16), np.uint8)
    labels[0, 2:6, 2:6] = 1
    src, lab, args = tmp_path / "image.tif", tmp_path / "labels.tif", []
    if case == "no_examples":
        labels[:] = 0
    elif case == "shape":
        labels = labels[:, :8]
    elif case == "whole":
        labels[0] = 1
    elif case == "nan":
        image[1, 0, 0] = np.nan
    elif case == "ndim":
        image = image[None, None]
    elif case == "unknown_backend":
        args = ["--backend", "nope"]
    tifffile.imwrite(src, image)
    tifffile.imwrite(lab, labels)
    if case in ("unreadable", "empty_mask"):
        src, lab = tmp_path / "images", tmp_path / "masks"
        src.mkdir()
        lab.mkdir()
        iio.imwrite(src / "a.png", (image[0] * 255).astype(np.uint8))
        (src / "b.png").write_bytes(b"\x89PNG broken") if case == "unreadable" else iio.imwrite(
            src / "b.png", (image[1] * 255).astype(np.uint8)
        )
        iio.imwrite(lab / "a.png", labels[0] * (case != "empty_mask"))
    out = tmp_path / "out"
    done = _run("propagate", str(src), "--labels", str(lab), "--out", str(out), *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("napari-incontext propagate: error:"), lines
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_backends_lists_the_registry() -> None:
    done = _run("backends", "--json")
    rows = json.loads(done.stdout)
    names = [r["name"] for r in rows]
    assert done.returncode == 0 and names[:2] == ["classic", "dinov2"]
    assert rows[0]["weights_available"] is True


def test_demo_runs_offline(tmp_path: Path) -> None:
    done = _run("demo", "--slices", "5", "--size", "48", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "mean IoU" in done.stdout
    assert tifffile.imread(tmp_path / "proposals.tif").shape == (5, 48, 48)
