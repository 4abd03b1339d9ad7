"""The CLI's outputs record their run: backend, options and classic's automatic choices
(issue 16 point 3), without weakening the ownership checks of docs/safety.md."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import zarr

from src_models.atomic import MANIFEST
from src_models.cli import main
from src_models.outputs import check_output, file_problem, folder_problem
from src_models.provenance import automatic_choices, describe_choices
from src_models.sample_data import example_labels, synthetic_stack


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    image, truth = synthetic_stack(n_slices=5, size=40)
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "labels.tif", example_labels(truth, 2))
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, plane in enumerate(image):
        iio.imwrite(tmp_path / "images" / f"img_{i}.png", plane)
    iio.imwrite(tmp_path / "masks" / "img_1.png", truth[1].astype(np.uint8))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _propagate(image: str, labels: str, out: str, *more: str) -> None:
    args = ["propagate", image, "--labels", labels, "--out", out, "--quiet", *more]
    assert main([*args, "--option", "n_estimators=10"]) == 0


def _check_run(run: dict, link_auto: bool = True) -> None:
    assert run["backend"] == "classic"
    assert run["options"]["n_estimators"] == 10 and run["options"]["per_slice"] is None
    chosen = run["automatic_choices"]
    assert {"per_slice", "position", "drift"} <= set(chosen)
    assert ("link" in chosen) == link_auto


def test_the_tiff_records_the_run_and_stays_ours(work: Path, capsys) -> None:  # noqa: ANN001
    _propagate("image.tif", "labels.tif", "o.tif")
    with tifffile.TiffFile(work / "o.tif") as tif:
        meta = json.loads(tif.pages[0].description)
    _check_run(meta["run"])
    assert f"classic chose {describe_choices(meta['run']['automatic_choices'], '=')}" in (
        capsys.readouterr().err
    )
    assert file_problem(work / "o.tif") is None  # replaceable with --overwrite
    _propagate("image.tif", "labels.tif", "o.tif", "--overwrite", "--no-link")
    with tifffile.TiffFile(work / "o.tif") as tif:
        _check_run(json.loads(tif.pages[0].description)["run"], link_auto=False)
    data = tifffile.imread(work / "o.tif")
    tifffile.imwrite(work / "o.tif", data, description=tif_description_of(work))
    assert file_problem(work / "o.tif") is None
    data[0, 0, 0] += 1  # changed pixels under our description: no longer ours
    tifffile.imwrite(work / "o.tif", data, description=tif_description_of(work))
    assert file_problem(work / "o.tif") == "it was changed since napari-incontext wrote it"


def tif_description_of(work: Path) -> str:
    with tifffile.TiffFile(work / "o.tif") as tif:
        return str(tif.pages[0].description)


def test_the_folder_manifest_records_the_run_and_stays_ours(work: Path) -> None:
    _propagate("images", "masks", "out")
    manifest = json.loads((work / "out" / MANIFEST).read_text())
    _check_run(manifest["run"], link_auto=True)
    assert folder_problem(work / "out") is None
    (work / "out" / "mine.txt").write_text("user file")
    with pytest.raises(ValueError, match="did not write"):
        check_output(work / "out", overwrite=True, kind="folder")


def test_the_zarr_store_records_the_run_through_a_resume(work: Path) -> None:
    _propagate("image.tif", "labels.tif", "o.zarr")
    attrs = dict(zarr.open_array(str(work / "o.zarr"), mode="r").attrs)
    _check_run(attrs["run"])
    assert attrs["done"] == [0, 1, 3, 4]  # the run's record did not cost the resume record


def test_automatic_choices_drop_a_link_the_run_was_told() -> None:
    timings = {"features": 0.1, "auto_link": 1.0, "auto_per_slice": 0.0, "auto_drift": 0.2}
    assert automatic_choices(timings) == {"link": 1.0, "per_slice": 0.0, "drift": 0.2}
    assert "link" not in automatic_choices(timings, link_auto=False)
    assert describe_choices(automatic_choices(timings)) == "link on, per_slice off"
