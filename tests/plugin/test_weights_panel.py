"""Weights where the user is: status before a run, Get weights…, Run disabled until ready.

A fake registry entry needs a fake checkpoint; downloads go through the real
``weights_download.download`` (size, sha256 and probe-load checks, atomic rename) with a fake
opener: never the internet.
"""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch
from qtpy.QtWidgets import QMessageBox

from src_models import registry, weights, weights_download
from src_models.hashing import file_sha256
from src_models.registry import BackendInfo
from tests.plugin.conftest import CountingBackend, CountingConfig
from tests.plugin.plugin_helpers import choose_backend, dock, run_and_wait

FAKE = "dinov2_fake"


@pytest.fixture
def fake_weights(tmp_path, monkeypatch):
    """A backend "needy" that needs checkpoint dinov2_fake (absent), and the bytes of a
    valid file for it; the weights folders are empty temporary ones."""
    monkeypatch.setattr(weights, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.delenv(weights.ENV_DIR, raising=False)
    monkeypatch.delenv(weights_download.OFFLINE_ENV, raising=False)
    source = tmp_path / "source.pth"
    torch.save({"w": torch.zeros(3)}, source)
    payload = source.read_bytes()
    spec = weights.WeightsSpec(
        FAKE, f"{FAKE}.pth", url="https://example.invalid/f.pth", size=len(payload)
    )
    monkeypatch.setitem(
        weights.WEIGHTS, FAKE, dataclasses.replace(spec, sha256=file_sha256(source))
    )
    info = BackendInfo(
        "needy",
        "needs weights",
        CountingConfig,
        lambda c, **k: None,
        ("weights",),
        lambda c: [FAKE],
    )
    monkeypatch.setitem(registry.BACKENDS, "needy", info)
    return payload


@pytest.fixture
def needy(qtbot, make_napari_viewer, fake_weights, test_backends):
    viewer = make_napari_viewer()
    widget = dock(viewer)
    choose_backend(widget, "needy")
    return widget


def _serve(monkeypatch, payload: bytes, reports: list) -> None:
    """``download`` answers with ``payload`` instead of the network, recording the progress."""
    real = weights_download.download

    def fake(name, **kwargs):
        report = kwargs.pop("report")

        def both(done, total):
            reports.append((done, total))
            report(done, total)

        return real(name, opener=lambda url: io.BytesIO(payload), report=both, **kwargs)

    monkeypatch.setattr(weights_download, "download", fake)


def test_missing_weights_disable_run_until_get_weights_downloads_them(
    qtbot, needy, fake_weights, monkeypatch, tmp_path
):
    widget, panel = needy, needy.controls.weights_panel
    run = widget.controls.run_button
    assert f"{FAKE}.pth" in panel.status_label.text() and "missing" in panel.status_label.text()
    assert not run.isEnabled() and f"needs {FAKE}.pth" in run.toolTip()
    assert not panel.get_button.isHidden()

    asked, reports = [], []
    monkeypatch.setattr(
        QMessageBox, "question", lambda *a: asked.append(a[2]) or QMessageBox.StandardButton.Yes
    )
    _serve(monkeypatch, fake_weights, reports)
    panel.get_button.click()
    assert str(tmp_path / "cache") in asked[0]  # says where the file goes
    qtbot.waitUntil(lambda: panel.worker is None, timeout=30_000)
    assert (tmp_path / "cache" / f"{FAKE}.pth").read_bytes() == fake_weights
    assert reports[-1] == (len(fake_weights), len(fake_weights))  # the progress bar was fed
    assert "ready" in panel.status_label.text() and panel.get_button.isHidden()
    assert run.isEnabled() and "disabled" not in run.toolTip()
    assert "no weights" not in widget.controls.backend_combo.currentText()


def test_a_bad_download_keeps_nothing_and_run_stays_disabled(
    qtbot, needy, fake_weights, monkeypatch, tmp_path
):
    panel = needy.controls.weights_panel
    errors: list[str] = []
    monkeypatch.setattr("napari_incontext._weights_panel.show_error", errors.append)
    monkeypatch.setattr(QMessageBox, "question", lambda *a: QMessageBox.StandardButton.Yes)
    _serve(monkeypatch, fake_weights[:-5], [])  # cut short: the size check refuses it
    panel.get_button.click()
    qtbot.waitUntil(lambda: panel.worker is None, timeout=30_000)
    assert errors and "expected" in errors[0]
    assert not (tmp_path / "cache" / f"{FAKE}.pth").exists()
    assert not needy.controls.run_button.isEnabled()


@pytest.mark.parametrize("why", ["gated", "offline"])
def test_weights_that_cannot_be_downloaded_are_explained(qtbot, needy, monkeypatch, tmp_path, why):
    if why == "gated":
        spec = dataclasses.replace(weights.WEIGHTS[FAKE], gated=True, how_to_get="Ask Meta.")
        monkeypatch.setitem(weights.WEIGHTS, FAKE, spec)
    else:
        monkeypatch.setenv(weights_download.OFFLINE_ENV, "1")
    shown = []
    monkeypatch.setattr(QMessageBox, "information", lambda *a: shown.append(a[2]))
    monkeypatch.setattr(QMessageBox, "question", lambda *a: pytest.fail("nothing to ask"))
    monkeypatch.setattr(weights_download, "download", lambda *a, **k: pytest.fail("no download"))
    needy.controls.weights_panel.get_button.click()
    assert f"{FAKE}.pth" in shown[0] and str(tmp_path / "cache") in shown[0]


def checked(qtbot, panel) -> None:
    """Wait for the chosen files' checks (a worker) to answer."""
    qtbot.waitUntil(lambda: panel.checks.in_flight == 0)


def test_a_weights_file_of_your_own_replaces_the_lookup(qtbot, needy, tmp_path):
    form, panel = needy.controls.options_form, needy.controls.weights_panel
    form.weights_file.value = tmp_path / "nope.pth"
    assert "does not exist" in needy.controls.run_button.toolTip()
    mine = tmp_path / "mine.pth"
    torch.save({"w": torch.ones(2)}, mine)
    form.weights_file.value = mine
    checked(qtbot, panel)
    assert "mine.pth (your file)" in panel.status_label.text()
    assert needy.controls.run_button.isEnabled()
    assert form.options()["weights"] == str(mine)


def test_backends_without_weights_are_ready(qtbot, needy):
    choose_backend(needy, "classic")
    assert needy.controls.weights_panel.status_label.text() == "weights: none needed"
    assert needy.controls.run_button.isEnabled()


HEAD = "segic_fake"


@pytest.fixture
def two_part(fake_weights, monkeypatch, tmp_path):
    """A backend "two-part" taking a backbone (dinov2_fake) and a head (segic_fake), neither
    on this machine; returns the keyword arguments of each build."""
    spec = weights.WeightsSpec(HEAD, f"{HEAD}.pth", url="https://example.invalid/h.pth", size=9)
    monkeypatch.setitem(weights.WEIGHTS, HEAD, dataclasses.replace(spec, sha256="ab" * 32))
    calls: list[dict] = []

    def build(config, *, device="auto", weights=None, head_weights=None):
        calls.append({"weights": weights, "head_weights": head_weights})
        return CountingBackend()

    info = BackendInfo(
        "two-part",
        "backbone + head",
        CountingConfig,
        build,
        ("weights", "head_weights"),
        lambda c: [FAKE, HEAD],
        uses_device=False,
    )
    monkeypatch.setitem(registry.BACKENDS, "two-part", info)
    return calls


def test_every_weight_of_a_backend_has_a_file_field_checked_and_used_by_the_run(
    qtbot, two_part, viewer_widget, tmp_path
):
    viewer, widget = viewer_widget
    form, panel = widget.controls.options_form, widget.controls.weights_panel
    choose_backend(widget, "two-part")
    files = form.weight_files
    assert not files["weights"].native.isHidden() and not files["head_weights"].native.isHidden()
    assert files["sam_weights"].native.isHidden()
    assert f"{FAKE}.pth, {HEAD}.pth" in panel.status_label.text()
    assert not widget.controls.run_button.isEnabled()

    backbone, head = tmp_path / "backbone.pth", tmp_path / "head.pth"
    torch.save({"w": torch.zeros(2)}, backbone)
    head.write_bytes(b"not a checkpoint")
    files["weights"].value, files["head_weights"].value = backbone, head
    checked(qtbot, panel)
    tip = widget.controls.run_button.toolTip()
    assert "head weights: head.pth is not a weights-only checkpoint" in tip
    assert not widget.controls.run_button.isEnabled()
    official = tmp_path / f"{HEAD}.pth"  # the official name: its size and sha256 are checked
    torch.save({"h": torch.zeros(2)}, official)
    files["head_weights"].value = official
    checked(qtbot, panel)
    assert f"{HEAD}.pth: wrong size" in widget.controls.run_button.toolTip()

    torch.save({"h": torch.ones(2)}, head)
    files["head_weights"].value = head
    checked(qtbot, panel)
    assert "backbone.pth (your file), head.pth (your file)" in panel.status_label.text()
    assert widget.controls.run_button.isEnabled()
    run_and_wait(qtbot, widget)
    assert two_part[-1] == {"weights": str(backbone), "head_weights": str(head)}

    form.sam_refine.value = "vit_b"  # refining with SAM: SAM's file field appears
    assert not files["sam_weights"].native.isHidden()
    assert "missing: sam_vit_b_01ec64.pth" in panel.status_label.text()
    sam = tmp_path / "sam.pth"
    torch.save({"s": torch.zeros(2)}, sam)
    files["sam_weights"].value = sam
    checked(qtbot, panel)
    assert "sam.pth (your file)" in panel.status_label.text()
    assert form.options()["sam_weights"] == str(sam)


def test_a_chosen_file_is_checked_off_the_main_thread_and_a_stale_answer_is_ignored(
    qtbot, needy, tmp_path, monkeypatch
):
    """Hashing a multi-GB checkpoint must not freeze napari: the check runs in a worker, the
    panel says "checking…" with Run disabled meanwhile, and the answer for a file the user
    replaced in the meantime is not shown."""
    import threading

    from napari_incontext import _weights_check

    form, panel = needy.controls.options_form, needy.controls.weights_panel
    run = needy.controls.run_button
    threads, gates = {}, {}

    def probe(path, kind=None):
        threads.setdefault(path.name, []).append(threading.current_thread())
        assert gates[path.name].wait(30)
        if path.name == "bad.pth":
            raise RuntimeError("not a checkpoint")

    monkeypatch.setattr(_weights_check, "probe_checkpoint", probe)
    bad, good = tmp_path / "bad.pth", tmp_path / "good.pth"
    for path in (bad, good):
        torch.save({"w": torch.ones(2)}, path)
        gates[path.name] = threading.Event()
    form.weights_file.value = bad
    assert panel.status_label.text() == "checking bad.pth…"
    assert not run.isEnabled() and "checking bad.pth" in run.toolTip()
    form.weights_file.value = good  # chosen while bad.pth is still being checked
    gates["bad.pth"].set()
    qtbot.waitUntil(lambda: panel.checks.in_flight == 1)  # bad.pth's answer came: stale
    assert panel.status_label.text() == "checking good.pth…" and not run.isEnabled()
    gates["good.pth"].set()
    qtbot.waitUntil(run.isEnabled)
    assert "good.pth (your file)" in panel.status_label.text()
    assert threads["good.pth"] == threads["good.pth"][:1]  # checked once, not again
    assert all(t is not threading.main_thread() for t in threads["bad.pth"] + threads["good.pth"])
    form.weights_file.value = bad  # its answer was remembered: shown at once, no new check
    assert "bad.pth is not a weights-only checkpoint" in run.toolTip()
    assert len(threads["bad.pth"]) == 1 and panel.checks.in_flight == 0
