"""Safety suite, Python API and atomic writes: the input contract on raw data, outputs that
replace only our own files, stale leftovers, and kill -9 during a file write and during the
replacement of a folder of thousands of files (the old or the new output stays complete)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from src_models.atomic import MANIFEST, clean_stale, write_file, write_folder
from src_models.backends.classic import ClassicBackend
from src_models.backends.configs import ClassicConfig
from src_models.engine import propagate
from src_models.inputs import prepare
from src_models.io import read_images, write_labels
from src_models.outputs import check_output, folder_problem
from tests.safety_helpers import snapshot

ROOT = Path(__file__).resolve().parents[2]
FAST = ClassicConfig(sigma_max=2.0, texture=False, n_estimators=4, samples_per_class=300)


def _stack(dtype: type = np.uint8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.random((3, 16, 16)).astype(np.float32)
    image[:, 4:10, 4:10] += 1.0
    labels = np.zeros((3, 16, 16), dtype)
    labels[0, 4:10, 4:10] = 1
    return image, labels


# --------------------------------------------------------------------------- input contract (API)
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("float_fraction", "not whole numbers"),
        ("float_nan", "NaN or inf"),
        ("float_inf", "NaN or inf"),
        ("negative_int", "negative"),
        ("negative_float", "negative"),
        ("complex", "type complex"),
        ("strings", "type <U"),
        ("object", "type object"),
        ("float_2_64", "2**64"),
    ],
)
def test_bad_labels_are_refused_before_any_cast(case: str, message: str) -> None:
    image, labels = _stack()
    lab: np.ndarray = labels.astype(np.float64)
    if case == "float_fraction":
        lab[0, 5, 5] = 1.5
    elif case == "float_nan":
        lab[0, 5, 5] = np.nan
    elif case == "float_inf":
        lab[0, 5, 5] = np.inf
    elif case == "negative_int":
        lab = labels.astype(np.int64)
        lab[0, 0, 0] = -(2**40)  # an int32 cast would hide nothing here, but it is refused
    elif case == "negative_float":
        lab[0, 0, 0] = -1.0
    elif case == "complex":
        lab = labels.astype(np.complex64)
    elif case == "strings":
        lab = labels.astype(str)
    elif case == "object":
        lab = labels.astype(object)
    elif case == "float_2_64":
        lab[0, 5, 5] = 2.0**64
    with pytest.raises(ValueError, match=message.replace("*", r"\*")):
        prepare(image, lab)


@pytest.mark.parametrize(
    ("dtype", "ids"),
    [
        (np.uint32, [3_000_000_000, 7]),
        (np.uint64, [2**64 - 1, 2**63]),
        (np.int64, [2**40, 2**31]),
        (np.uint16, [65535, 1]),
        (np.int8, [127, 5]),
        (np.float64, [2**53, 12]),
        (np.bool_, [1]),
    ],
)
def test_ids_are_kept_end_to_end(dtype: type, ids: list[int]) -> None:
    """Backends see 1..K; results come back in the user's ids and integer dtype."""
    image, _ = _stack()
    labels = np.zeros((3, 16, 16), dtype)
    labels[0, 4:10, 4:10] = ids[0]
    if len(ids) > 1:
        labels[0, 12:15, 12:15] = ids[1]
    image[:, 12:15, 12:15] += 0.5
    data = prepare(image, labels)
    assert set(np.unique(np.concatenate([lab.ravel() for lab in data.labels]))) <= set(
        range(len(ids) + 1)
    )
    results = list(propagate(image, labels, ClassicBackend(FAST)))
    for res in results:
        found = {int(v) for v in np.unique(res.labels)}
        assert found <= {0, *ids}, found
        assert res.labels.dtype == (np.uint8 if dtype is np.bool_ else data.ids.dtype)
    assert any(ids[0] in {int(v) for v in np.unique(r.labels)} for r in results)
    if np.dtype(dtype).kind in "iu":
        assert data.ids.dtype == np.dtype(dtype)


def test_list_of_mixed_integer_dtypes_never_goes_through_float() -> None:
    image, _ = _stack()
    a = np.zeros((16, 16), np.uint64)
    a[4:10, 4:10] = 2**63 + 1
    b = np.zeros((16, 16), np.int64)
    b[4:10, 4:10] = 5
    data = prepare(list(image), [a, b, None])
    assert data.ids.table.tolist() == [0, 5, 2**63 + 1] and data.ids.dtype == np.uint64


def test_whole_slice_message_names_the_users_id() -> None:
    image, labels = _stack(np.uint32)
    labels[0] = 4_000_000_000
    with pytest.raises(ValueError, match="with label 4000000000"):
        prepare(image, labels)


def test_memory_estimate_refuses_a_huge_run_in_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from src_models import memory

    image, labels = _stack()
    monkeypatch.setattr(memory, "available_bytes", lambda: 10_000)
    with pytest.raises(MemoryError, match=r"needs about .* but 10.0 kB are available"):
        next(propagate(image, labels, ClassicBackend(FAST)))
    monkeypatch.setenv(memory.SKIP_ENV, "1")
    assert next(propagate(image, labels, ClassicBackend(FAST))).labels.shape == (16, 16)


def test_memory_estimate_grows_with_the_features_of_the_backend() -> None:
    from src_models.memory import estimate

    shapes = [(2000, 2000)] * 10
    basic = {"features": "basic", "sigma_min": 1.0}
    light = ClassicBackend(ClassicConfig(**basic, texture=False, sigma_max=2))
    heavy = ClassicBackend(ClassicConfig(**basic, texture=True, sigma_max=16))
    light, heavy = estimate(shapes, light, 2**40), estimate(shapes, heavy, 2**40)
    assert heavy["features"] > 4 * light["features"]
    capped = estimate(shapes, ClassicBackend(ClassicConfig()), 10**6)
    assert capped["features"] < heavy["features"]  # the feature cache cap bounds the total
    # classic, sigma 1..16 with texture: 5 scales x 4 features, float16 for every pixel
    assert heavy["features"] >= 10 * 2000 * 2000 * 20 * 2


# --------------------------------------------------------------------------- reading edge cases
def test_rgb_tiff_and_npy_are_one_colour_image(tmp_path: Path) -> None:
    import tifffile

    rgb = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    np.save(tmp_path / "rgb.npy", rgb)
    for name in ("rgb.tif", "rgb.npy"):
        read = read_images(tmp_path / name)
        assert np.asarray(read.images).shape == (1, 30, 40, 3), name
    tifffile.imwrite(tmp_path / "grey3.tif", rgb[..., 0][None].repeat(3, 0))
    assert np.asarray(read_images(tmp_path / "grey3.tif").images).shape == (3, 30, 40)


def test_multi_page_tiff_of_one_size_is_a_stack(tmp_path: Path) -> None:
    import tifffile

    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        for i in range(3):
            tif.write(np.full((10, 12), i, np.uint8))
    assert np.asarray(read_images(tmp_path / "pages.tif").images).shape == (3, 10, 12)


# --------------------------------------------------------------------------- ownership
def test_check_output_accepts_only_our_unchanged_outputs(tmp_path: Path) -> None:
    masks = [np.eye(8, dtype=np.uint8)] * 2
    out = write_labels(tmp_path / "out", masks, ["a", "b"])
    assert folder_problem(out) is None
    assert check_output(out, overwrite=True, kind="folder") == out
    (out / MANIFEST).write_text(json.dumps({"written_by": "someone else", "files": {}}))
    with pytest.raises(ValueError, match="not written by napari-incontext"):
        check_output(out, overwrite=True, kind="folder")
    stack = write_labels(tmp_path / "s.tif", masks, None)
    assert check_output(stack, overwrite=True, kind="file") == stack
    with pytest.raises(ValueError, match="is a file"):
        check_output(stack, overwrite=True, kind="folder")


def test_writers_never_swap_a_file_and_a_folder(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("user")
    (tmp_path / "d").mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="never replaced by a folder"):
        write_folder(tmp_path / "f", lambda folder: None)
    with pytest.raises(ValueError, match="never replaced by a file"):
        write_file(tmp_path / "d", lambda temp: temp.write_text("x"))
    assert snapshot(tmp_path) == before


def test_a_failing_writer_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "keep").mkdir()

    def fail(target: Path) -> None:
        (target / "half.png" if target.is_dir() else target).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    before = snapshot(tmp_path)
    with pytest.raises(OSError, match="No space"):
        write_folder(tmp_path / "out", fail)
    with pytest.raises(OSError, match="No space"):
        write_file(tmp_path / "out.tif", fail)
    assert snapshot(tmp_path) == before


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_leftovers_are_cleaned_and_a_set_aside_folder_restored(tmp_path: Path) -> None:
    pid = _dead_pid()
    target = tmp_path / "out"
    write_folder(target, lambda f: (f / "a.txt").write_text("old"))
    os.rename(target, tmp_path / f".out.incontext-old-{pid}-0123abcd")  # killed mid-swap
    new = tmp_path / f".out.incontext-new-{pid}-4567abcd"
    new.mkdir()  # killed before its manifest
    (tmp_path / f".out.tif.incontext-new-{pid}-89abcdef.tif").write_bytes(b"half")
    user = tmp_path / f".out.incontext-new-{pid}-fedcba98"
    user.mkdir()
    (user / "mine.txt").write_text("a user folder with our pattern but no manifest")
    live = tmp_path / f".out.incontext-new-{os.getpid()}-00000000"
    live.mkdir()
    clean_stale(target)
    assert (target / "a.txt").read_text() == "old" and folder_problem(target) is None
    assert not new.exists() and (user / "mine.txt").exists() and live.exists()
    clean_stale(tmp_path / "out.tif")
    assert not (tmp_path / f".out.tif.incontext-new-{pid}-89abcdef.tif").exists()


# --------------------------------------------------------------------------- kill -9
_WRITER = """
import sys
from pathlib import Path
from src_models.atomic import write_file, write_folder
kind, target, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
step = 0
while True:
    mark = b"AB"[step % 2:step % 2 + 1]
    if kind == "file":
        write_file(target, lambda t: t.write_bytes(mark * n))
    else:
        def fill(folder, mark=mark):
            for i in range(n):
                (folder / f"{i:05d}.txt").write_bytes(mark * (i % 50 + 1))
        write_folder(target, fill)
    print(step, flush=True)
    step += 1
"""


def _writer(kind: str, target: Path, n: int, env: dict[str, str]) -> tuple[subprocess.Popen, float]:
    """A process rewriting ``target`` in a loop (A, B, A, ...) and the seconds one write took."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, kind, str(target), str(n)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # the first complete output exists
    start = time.perf_counter()
    proc.stdout.readline()
    return proc, time.perf_counter() - start


def _folder_state(target: Path, n: int) -> str:
    """'A' or 'B' when the folder is one complete output, else a description of the damage."""
    names = sorted(p.name for p in target.iterdir())
    if names != sorted([MANIFEST, *(f"{i:05d}.txt" for i in range(n))]):
        return f"{len(names)} entries"
    contents = [(target / f"{i:05d}.txt").read_bytes() for i in range(n)]
    for mark in (b"A", b"B"):
        if all(data == mark * (i % 50 + 1) for i, data in enumerate(contents)):
            return mark.decode()
    return "mixed"


@pytest.mark.slow
def test_kill_during_a_file_write_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    target, n = tmp_path / "out.bin", 20_000_000
    whole = {hashlib.sha256(m * n).hexdigest() for m in (b"A", b"B")}
    rng = random.Random(0)
    for _ in range(6):
        proc, cycle = _writer("file", target, n, {})
        time.sleep(rng.uniform(0.0, cycle))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert hashlib.sha256(target.read_bytes()).hexdigest() in whole
    clean_stale(target)
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.slow
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename_aside"])
def test_kill_during_a_folder_replacement_keeps_a_complete_output(
    tmp_path: Path, exchange: bool
) -> None:
    target, n = tmp_path / "out", 2000
    env = {} if exchange else {"NAPARI_INCONTEXT_NO_EXCHANGE": "1"}
    rng = random.Random(1)
    seen = []
    for _ in range(2):  # 2000 files: ~10 s per write on a loaded CI disk
        proc, cycle = _writer("folder", target, n, env)
        time.sleep(rng.uniform(0.0, cycle))  # anywhere in a write: fill, hash, swap, delete
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not target.exists():  # only between the two renames of the rename-aside path
            assert not exchange
            clean_stale(target)  # what the next write does first: put the old one back
        state = _folder_state(target, n)
        assert state in ("A", "B"), state
        assert folder_problem(target) is None
        seen.append(state)
    clean_stale(target)
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "leftovers of killed runs remain"
