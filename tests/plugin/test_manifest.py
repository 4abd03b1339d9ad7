"""The npe2 manifest: every python_name imports; npe2 finds it for the installed package."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _python_names() -> list[str]:
    manifest = yaml.safe_load((ROOT / "napari.yaml").read_text())
    return [c["python_name"] for c in manifest["contributions"]["commands"]]


def test_every_python_name_imports() -> None:
    names = _python_names()
    assert len(names) >= 2
    for python_name in names:
        module, _, attr = python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), python_name


def test_package_manifest_is_the_top_level_one() -> None:
    link = ROOT / "napari_incontext" / "napari.yaml"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "napari.yaml").resolve()


def test_npe2_finds_the_installed_manifest() -> None:
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-incontext")
    commands = {c.id for c in manifest.contributions.commands}
    assert {"napari-incontext.widget", "napari-incontext.sample_stack"} <= commands
    assert {c.python_name for c in manifest.contributions.commands} == set(_python_names())
    assert manifest.contributions.sample_data and manifest.contributions.widgets


def test_importing_the_package_loads_no_qt() -> None:
    code = (
        "import sys, napari_incontext; "
        "bad = [m for m in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'magicgui')"
        " if m in sys.modules]; "
        "print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_sample_data_holds_one_labelled_slice() -> None:
    from napari_incontext._sample_data import make_sample_stack

    (image, _, kind_i), (labels, _, kind_l) = make_sample_stack()
    assert (kind_i, kind_l) == ("image", "labels")
    assert image.shape == labels.shape and image.ndim == 3
    labelled = [i for i in range(len(labels)) if labels[i].any()]
    assert labelled == [len(labels) // 2]
    assert set(np.unique(labels[len(labels) // 2])) == {0, 1, 2}


def test_demo_opens_the_sample_and_the_widget_through_npe2(qtbot, make_napari_viewer) -> None:
    from napari_incontext.__main__ import open_demo
    from napari_incontext._widget import InContextWidget

    viewer = make_napari_viewer()
    widget = open_demo(viewer)
    assert isinstance(widget, InContextWidget)
    assert [layer.name for layer in viewer.layers] == ["synthetic stack", "examples"]
    assert widget.controls.image_combo.currentText() == "synthetic stack"
    assert widget.controls.labels_combo.currentText() == "examples"
    assert widget.controls.backend_combo.currentData() == "classic"


def test_triton_guard_blocks_only_when_llvm_is_loaded(monkeypatch) -> None:
    from napari_incontext import _compat

    saved = sys.modules.pop("triton", "absent")
    try:
        monkeypatch.setattr(_compat, "llvm_is_loaded", lambda: False)
        assert not _compat.block_triton_if_unsafe() and "triton" not in sys.modules
        monkeypatch.setattr(_compat, "llvm_is_loaded", lambda: True)
        assert _compat.block_triton_if_unsafe() and sys.modules["triton"] is None
        assert not _compat.block_triton_if_unsafe()  # already decided: leave it alone
    finally:
        sys.modules.pop("triton", None)
        if saved != "absent":
            sys.modules["triton"] = saved
