"""Packaging: napari finds the top-level manifest after `pip install .` and `pip install -e .`;
src_models never pulls in Qt or napari."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from importlib import metadata, resources
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_installed_entry_point_serves_the_top_level_manifest() -> None:
    (entry,) = [
        e for e in metadata.entry_points(group="napari.manifest") if e.name == "napari-incontext"
    ]
    package, _, name = entry.value.partition(":")
    served = (resources.files(package) / name).read_text()
    assert served == (ROOT / "napari.yaml").read_text()


def test_manifest_loads_through_npe2() -> None:
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-incontext")
    assert manifest.name == "napari-incontext"


def test_wheel_carries_the_manifest_as_a_real_file(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("napari_incontext-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert (
            archive.read("napari_incontext/napari.yaml").decode()
            == (ROOT / "napari.yaml").read_text()
        )
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "napari-incontext = napari_incontext:napari.yaml" in text
    assert "napari-incontext = src_models.cli:main" in text
    assert any(n.startswith("src_models/backends/") for n in names)
    assert not any(n.startswith("tests/") for n in names)


def test_src_models_imports_no_gui_library() -> None:
    code = (
        "import sys, src_models, src_models.cli, src_models.registry;"
        "from src_models.registry import BACKENDS;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'superqt')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_version_is_written_in_one_place() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    from importlib.metadata import version

    import napari_incontext

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert version("napari-incontext") == napari_incontext.__version__
