"""Safety suite, command line: every bad or edge input ends in exit 2 with one stderr line and
leaves the file system exactly as it was (tree, sizes and sha256 compared), or is a
documented success. The destructive cases come first. See docs/safety.md for the table."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from src_models.atomic import MANIFEST
from src_models.cli import main
from tests.safety_helpers import FAST, make_workspace, one_error_line, snapshot

P = ["propagate"]
STACK = [*P, "image.tif", "--labels", "labels.tif"]
FOLDER = [*P, "imgs", "--labels", "masks"]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's workspace as the current directory, with its own home folder."""
    root = make_workspace(tmp_path / "work")
    monkeypatch.chdir(root)
    monkeypatch.setenv("HOME", str(root / "home"))
    return root


def _earlier_folder(work: Path) -> None:
    assert main([*FOLDER, "--out", "out", *FAST]) == 0


def _earlier_stack(work: Path) -> None:
    assert main([*STACK, "--out", "out.tif", *FAST]) == 0


def _user_file_in_output(work: Path) -> None:
    _earlier_folder(work)
    (work / "out" / "my_edit.png").write_bytes(b"user file")


def _edited_output_mask(work: Path) -> None:
    _earlier_folder(work)
    mask = iio.imread(work / "out" / "b.png")
    mask[0, 0] = 7
    iio.imwrite(work / "out" / "b.png", mask)


def _edited_output_tiff(work: Path) -> None:
    _earlier_stack(work)
    with tifffile.TiffFile(work / "out.tif") as tif:
        description = tif.pages[0].description
        data = tif.asarray()
    data[0, 0, 0] = 9  # edited by hand, marker copied along
    tifffile.imwrite(work / "out.tif", data, metadata=None, description=description)


def _link(work: Path) -> None:
    (work / "link.tif").symlink_to(work / "theirs.tif")


def _folder_named_tif(work: Path) -> None:
    (work / "dir.tif").mkdir()
    (work / "dir.tif" / "x.txt").write_text("x")


def _bad_floats(work: Path) -> None:
    labels = tifffile.imread(work / "labels.tif").astype(np.float32)
    labels[1, 2, 2] = 0.5
    tifffile.imwrite(work / "float_labels.tif", labels)


def _nan_labels(work: Path) -> None:
    labels = tifffile.imread(work / "labels.tif").astype(np.float32)
    labels[1, 2, 2] = np.nan
    tifffile.imwrite(work / "nan_labels.tif", labels)


def _negative_labels(work: Path) -> None:
    labels = tifffile.imread(work / "labels.tif").astype(np.int16)
    labels[1, 2, 2] = -3
    tifffile.imwrite(work / "neg_labels.tif", labels)


def _same_stem(work: Path) -> None:
    (work / "imgs" / "a.jpg").write_bytes((work / "imgs" / "a.png").read_bytes())


def _same_stem_case(work: Path) -> None:
    (work / "imgs" / "A.png").write_bytes((work / "imgs" / "b.png").read_bytes())


def _pages_of_two_sizes(work: Path) -> None:
    with tifffile.TiffWriter(work / "pages.tif") as tif:
        tif.write(np.zeros((24, 24), np.uint8))
        tif.write(np.zeros((12, 30), np.uint8))


def _complex_image(work: Path) -> None:
    np.save(work / "complex.npy", np.ones((3, 8, 8), np.complex64))
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[0, 2:4, 2:4] = 1
    np.save(work / "complex_labels.npy", labels)


def _empty_folder(work: Path) -> None:
    (work / "empty").mkdir()


def _read_only(work: Path) -> None:
    (work / "locked").mkdir()
    (work / "locked").chmod(0o500)


Setup = Callable[[Path], None] | None
# (id, argv, fragment of the one-line error, setup)
REFUSED: list[tuple[str, list[str], str, Setup]] = [
    # --- destructive outputs first
    ("out_dot", [*FOLDER, "--out", ".", "--overwrite"], "current directory", None),
    ("out_empty", [*FOLDER, "--out", "", "--overwrite"], "--out is empty", None),
    ("out_empty_stack", [*STACK, "--out", ""], "--out is empty", None),
    ("out_root", [*FOLDER, "--out", "/", "--overwrite"], "filesystem root", None),
    ("out_home", [*FOLDER, "--out", "~", "--overwrite"], "home directory", None),
    ("out_parent", [*FOLDER, "--out", "..", "--overwrite"], "current directory", None),
    ("out_is_image_folder", [*FOLDER, "--out", "imgs", "--overwrite"], "is the input", None),
    ("out_is_labels_folder", [*FOLDER, "--out", "masks", "--overwrite"], "is the input", None),
    ("out_is_image", [*STACK, "--out", "image.tif", "--overwrite"], "is the input", None),
    ("out_is_labels", [*STACK, "--out", "labels.tif", "--overwrite"], "is the input", None),
    ("out_dot_slash_image", [*STACK, "--out", "./image.tif", "--overwrite"], "input", None),
    ("out_foreign_folder", [*FOLDER, "--out", "foreign", "--overwrite"], "not written", None),
    ("out_foreign_tiff", [*STACK, "--out", "theirs.tif", "--overwrite"], "not written", None),
    ("out_exists_no_flag", [*STACK, "--out", "theirs.tif"], "--overwrite", None),
    (
        "out_folder_for_stack",
        [*STACK, "--out", "dir.tif", "--overwrite"],
        "is a folder",
        _folder_named_tif,
    ),
    ("out_file_for_folder", [*FOLDER, "--out", "notes.txt", "--overwrite"], "is a file", None),
    (
        "out_user_file_added",
        [*FOLDER, "--out", "out", "--overwrite"],
        "my_edit.png",
        _user_file_in_output,
    ),
    (
        "out_mask_edited",
        [*FOLDER, "--out", "out", "--overwrite"],
        "b.png in it was changed",
        _edited_output_mask,
    ),
    (
        "out_tiff_edited",
        [*STACK, "--out", "out.tif", "--overwrite"],
        "was changed",
        _edited_output_tiff,
    ),
    ("out_ours_no_flag", [*FOLDER, "--out", "out"], "--overwrite", _earlier_folder),
    ("out_symlink", [*STACK, "--out", "link.tif", "--overwrite"], "symbolic link", _link),
    ("out_parent_is_file", [*STACK, "--out", "notes.txt/out.tif"], "not a folder", None),
    ("out_stack_as_png", [*STACK, "--out", "out.png"], "TIFF", None),
    ("timings_is_out", [*STACK, "--out", "o.tif", "--timings", "o.tif"], "two names", None),
    (
        "timings_is_image",
        [*STACK, "--out", "o.tif", "--timings", "image.tif", "--overwrite"],
        "input",
        None,
    ),
    ("timings_empty", [*STACK, "--out", "o.tif", "--timings", ""], "--timings is empty", None),
    (
        "timings_foreign",
        [*STACK, "--out", "o.tif", "--timings", "notes.txt", "--overwrite"],
        "not written",
        None,
    ),
    (
        "timings_folder",
        [*STACK, "--out", "o.tif", "--timings", "foreign", "--overwrite"],
        "is a folder",
        None,
    ),
    (
        "labels_is_image",
        [*P, "image.tif", "--labels", "image.tif", "--out", "o.tif"],
        "image itself",
        None,
    ),
    (
        "labels_is_image_folder",
        [*P, "imgs", "--labels", "imgs", "--out", "o"],
        "image itself",
        None,
    ),
    # --- the input contract
    (
        "labels_not_whole",
        [*P, "image.tif", "--labels", "float_labels.tif", "--out", "o.tif"],
        "not whole numbers",
        _bad_floats,
    ),
    (
        "labels_nan",
        [*P, "image.tif", "--labels", "nan_labels.tif", "--out", "o.tif"],
        "NaN",
        _nan_labels,
    ),
    (
        "labels_negative",
        [*P, "image.tif", "--labels", "neg_labels.tif", "--out", "o.tif"],
        "negative",
        _negative_labels,
    ),
    ("same_stem", [*FOLDER, "--out", "o"], "same name", _same_stem),
    ("same_stem_case", [*FOLDER, "--out", "o"], "same name", _same_stem_case),
    (
        "pages_differ",
        [*P, "pages.tif", "--labels", "labels.tif", "--out", "o.tif"],
        "12x30",
        _pages_of_two_sizes,
    ),
    (
        "complex_pixels",
        [*P, "complex.npy", "--labels", "complex_labels.npy", "--out", "o.tif"],
        "complex",
        _complex_image,
    ),
    (
        "empty_image_folder",
        [*P, "empty", "--labels", "masks", "--out", "o"],
        "holds no images",
        _empty_folder,
    ),
    (
        "missing_image",
        [*P, "nothere.tif", "--labels", "labels.tif", "--out", "o.tif"],
        "does not exist",
        None,
    ),
    (
        "labels_for_stack_is_folder",
        [*P, "image.tif", "--labels", "masks", "--out", "o.tif"],
        "label stack",
        None,
    ),
    # --- options (validated by src_models.config)
    ("option_unknown", [*STACK, "--out", "o.tif", "--option", "sigmaa=2"], "sigma_max", None),
    ("option_bad_bool", [*STACK, "--out", "o.tif", "--option", "texture=False2"], "texture", None),
    (
        "option_bad_bool_word",
        [*STACK, "--out", "o.tif", "--option", "texture=maybe"],
        "texture",
        None,
    ),
    (
        "option_out_of_range",
        [*STACK, "--out", "o.tif", "--option", "sigma_min=-1"],
        "sigma_min",
        None,
    ),
    ("option_no_value", [*STACK, "--out", "o.tif", "--option", "texture"], "key=value", None),
    (
        "option_not_a_number",
        [*STACK, "--out", "o.tif", "--option", "n_estimators=many"],
        "n_estimators",
        None,
    ),
    ("unknown_backend", [*STACK, "--out", "o.tif", "--backend", "nope"], "unknown backend", None),
    (
        "weights_for_classic",
        [*STACK, "--out", "o.tif", "--weights", "x.pth"],
        "takes no weights",
        None,
    ),
    # --- other commands that write
    ("demo_out_dot", ["demo", "--out", "."], "current directory", None),
    ("demo_out_foreign", ["demo", "--out", "foreign", "--overwrite"], "not written", None),
    ("demo_out_file", ["demo", "--out", "notes.txt"], "is a file", None),
    (
        "eval_out_is_data",
        ["eval", "--data", "imgs", "--protocol", "propagate", "--out", "imgs"],
        "is the input",
        None,
    ),
    (
        "eval_out_foreign",
        ["eval", "--data", "imgs", "--protocol", "propagate", "--out", "notes.txt", "--overwrite"],
        "not written",
        None,
    ),
    (
        "eval_out_empty",
        ["eval", "--data", "imgs", "--protocol", "propagate", "--out", ""],
        "empty",
        None,
    ),
    ("segic_text_out_empty", ["segic-text", "cell", "--out", ""], "empty", None),
    (
        "segic_text_out_foreign",
        ["segic-text", "cell", "--out", "theirs.tif", "--overwrite"],
        "not a napari-incontext",
        None,
    ),
    (
        "train_out_is_images",
        ["train-segic", "image.tif", "--labels", "labels.tif", "--out", "image.tif", "--overwrite"],
        "is the input",
        None,
    ),
    (
        "train_out_foreign",
        [
            "train-segic",
            "image.tif",
            "--labels",
            "labels.tif",
            "--out",
            "theirs.tif",
            "--overwrite",
        ],
        "not a train-segic output",
        None,
    ),
    (
        "train_out_home",
        ["train-segic", "image.tif", "--labels", "labels.tif", "--out", "~"],
        "home directory",
        None,
    ),
    ("weights_unknown", ["weights", "path", "nope"], "unknown weights", None),
]


@pytest.mark.parametrize(
    ("case", "argv", "fragment", "setup"), REFUSED, ids=[c[0] for c in REFUSED]
)
def test_refused_with_one_line_and_nothing_touched(
    work: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    argv: list[str],
    fragment: str,
    setup: Setup,
) -> None:
    if setup is not None:
        setup(work)
    capsys.readouterr()
    before = snapshot(work.parent)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    line = one_error_line(err, argv[0])
    assert fragment in line, line
    assert snapshot(work.parent) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_is_refused_before_computing(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _read_only(work)
    before = snapshot(work.parent)
    assert main([*STACK, "--out", "locked/o.tif", *FAST]) == 2
    line = one_error_line(capsys.readouterr().err, "propagate")
    assert "locked" in line and ".incontext" not in line
    assert snapshot(work.parent) == before


def test_unwritable_output_names_the_users_path(
    work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even as root: a folder where files cannot be created is named in the message."""
    import tempfile

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    before = snapshot(work.parent)
    assert main([*STACK, "--out", "sub/o.tif", *FAST]) == 2
    line = one_error_line(capsys.readouterr().err, "propagate")
    assert f"cannot write --out sub/o.tif: cannot create files in {work}" in line
    assert snapshot(work.parent) == before


# --------------------------------------------------------------------------- documented success
def test_overwrite_replaces_our_own_unchanged_output(work: Path) -> None:
    _earlier_folder(work)
    first = snapshot(work / "out")
    assert main([*FOLDER, "--out", "out", "--overwrite", "--link", *FAST]) == 0
    assert sorted(p.name for p in (work / "out").iterdir()) == [MANIFEST, "a.png", "b.png", "c.png"]
    assert snapshot(work / "out").keys() == first.keys()
    assert not [p for p in work.iterdir() if ".incontext-" in p.name]  # no temp left


def test_empty_existing_folder_is_used_without_overwrite(work: Path) -> None:
    (work / "results").mkdir()
    assert main([*FOLDER, "--out", "results", *FAST]) == 0
    assert (work / "results" / "b.png").is_file()


def test_ids_above_int32_are_kept_end_to_end(work: Path) -> None:
    labels = tifffile.imread(work / "labels.tif").astype(np.uint64)
    labels[labels == 1] = 2**63 + 11
    labels[labels == 2] = 3_000_000_000
    tifffile.imwrite(work / "big.tif", labels)
    assert main([*P, "image.tif", "--labels", "big.tif", "--out", "o.tif", *FAST]) == 0
    out = tifffile.imread(work / "o.tif")
    assert out.dtype == np.uint64
    assert set(np.unique(out)) <= {0, 2**63 + 11, 3_000_000_000}
    assert (out[0] == 2**63 + 11).any() and (out[0] == 3_000_000_000).any()


def test_whole_float_labels_are_accepted(work: Path) -> None:
    labels = tifffile.imread(work / "labels.tif").astype(np.float64)
    tifffile.imwrite(work / "f.tif", labels)
    assert main([*P, "image.tif", "--labels", "f.tif", "--out", "o.tif", *FAST]) == 0
    assert set(np.unique(tifffile.imread(work / "o.tif"))) <= {0, 1, 2}


def test_hidden_and_appledouble_files_are_skipped(work: Path) -> None:
    (work / "imgs" / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (work / "imgs" / ".DS_Store").write_bytes(b"Bud1")
    (work / "masks" / "._a.png").write_bytes(b"\x00\x05\x16\x07")
    assert main([*FOLDER, "--out", "o", *FAST]) == 0
    assert sorted(p.name for p in (work / "o").iterdir()) == [MANIFEST, "a.png", "b.png", "c.png"]


def test_single_rgb_tiff_is_one_colour_image(work: Path) -> None:
    rgb = np.zeros((20, 22, 3), np.uint8)
    rgb[5:12, 6:14] = (200, 30, 30)
    tifffile.imwrite(work / "rgb.tif", rgb, photometric="rgb")
    labels = np.zeros((20, 22), np.uint8)
    labels[5:12, 6:14] = 1
    tifffile.imwrite(work / "rgb_labels.tif", labels)
    assert main([*P, "rgb.tif", "--labels", "rgb_labels.tif", "--out", "o.tif", *FAST]) == 0
    out = tifffile.imread(work / "o.tif")
    assert out.shape == (20, 22) or out.shape == (1, 20, 22)  # one slice, not 20 of 22x3
    np.testing.assert_array_equal(out.reshape(20, 22), labels)


def test_device_on_a_cpu_only_backend_is_one_warning_line(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*STACK, "--out", "o.tif", "--device", "cuda", *FAST]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[0] == "napari-incontext: warning: classic runs on the CPU only: device cuda is ignored"
    )
    assert len(err) == 3 and err[1].startswith("classic chose ") and err[2].startswith("wrote ")


# --------------------------------------------------------------------------- errors anywhere
def test_memory_estimate_refuses_before_anything_runs(
    work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from src_models import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 2000)
    before = snapshot(work.parent)
    assert main([*STACK, "--out", "o.tif", *FAST]) == 2
    line = one_error_line(capsys.readouterr().err, "propagate")
    assert "this run needs about" in line and "but 2.0 kB are available" in line
    assert "crop" in line and "features" in line
    assert snapshot(work.parent) == before


@pytest.mark.parametrize(
    "error", [MemoryError(), MemoryError("CUDA out of memory"), ZeroDivisionError("x")]
)
def test_any_error_in_a_run_is_one_line(
    work: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
) -> None:
    from src_models.backends.classic import ClassicBackend

    def boom(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(ClassicBackend, "predict", boom)
    before = snapshot(work.parent)
    assert main([*STACK, "--out", "o.tif", *FAST]) == 2
    line = one_error_line(capsys.readouterr().err, "propagate")
    if isinstance(error, MemoryError):
        assert ("out of memory" in line) or ("CUDA out of memory" in line)
    else:
        assert "ZeroDivisionError: x" in line and "NAPARI_INCONTEXT_DEBUG" in line
    assert snapshot(work.parent) == before


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(cwd / "home")}
    return subprocess.run(
        [sys.executable, "-m", "src_models.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


def test_the_real_entry_point_on_the_worst_cases(work: Path) -> None:
    """The issue's own examples, through a real process: nothing deleted, one line."""
    before = snapshot(work.parent)
    for args in (
        [*FOLDER, "--out", ".", "--overwrite"],
        [*FOLDER, "--out", "", "--overwrite"],
        [*STACK, "--out", "image.tif", "--overwrite"],
        [*STACK, "--out", "o.tif", "--device", "tpu"],  # argparse: one line too
    ):
        done = _cli(*args, cwd=work)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in done.stderr
    assert snapshot(work.parent) == before
