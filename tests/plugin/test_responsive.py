"""The viewer stays responsive: data-sized work runs in workers, Cancel gives memory back."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from src_models import registry
from src_models.registry import BackendInfo
from src_models.timing import NULL_TIMER, Timer
from tests.plugin.plugin_helpers import (
    EXAMPLE,
    choose_backend,
    dock,
    run_and_wait,
    wait_idle,
)


def test_scans_hashes_runs_and_saves_never_run_on_the_main_thread(
    qtbot, viewer_widget, monkeypatch, tmp_path
):
    import napari_incontext._save as save_module
    import napari_incontext._workers as workers
    import src_models.engine as engine

    viewer, widget = viewer_widget
    calls: dict[str, list[bool]] = {}

    def spy(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls.setdefault(name, []).append(threading.current_thread() is threading.main_thread())
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for module, name in [
        (workers, "scan_labels"),  # which slices hold labels, copies of the examples
        (workers, "hash_slices"),  # following edits, undo and redo
        (engine, "prepare"),  # normalising the stack
        (save_module, "write_labels"),  # saving
    ]:
        spy(module, name)
    run_and_wait(qtbot, widget)
    widget.accept([EXAMPLE + 1])
    viewer.layers["examples"].undo()
    qtbot.waitUntil(lambda: "hash_slices" in calls, timeout=5000)
    widget.save(str(tmp_path / "out"))
    wait_idle(qtbot, widget)
    assert set(calls) == {"scan_labels", "hash_slices", "prepare", "write_labels"}
    assert not any(on_main for seen in calls.values() for on_main in seen), calls


class Tiny:
    """A backend with almost no features: memory left after a run is the run's data."""

    name = "tiny"
    config = None
    feature_key = "tiny"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> np.ndarray:
        time.sleep(self.delay)
        return np.ascontiguousarray(image[::64, ::64])

    def fit(self, examples, timer: Timer = NULL_TIMER) -> None:
        pass

    def predict(self, features, shape, timer: Timer = NULL_TIMER):
        labels = np.zeros(shape, np.int32)
        labels[:8, :8] = 1
        return labels, np.ones(shape, np.float32)

    def check_open(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_cancel_gives_the_run_memory_back(qtbot, make_napari_viewer, monkeypatch):
    from dataclasses import make_dataclass

    import psutil

    config = make_dataclass("TinyConfig", [("delay", float, 0.3)], frozen=True)
    info = BackendInfo("tiny", "test", config, lambda c, device="auto": Tiny(c.delay))
    monkeypatch.setitem(registry.BACKENDS, "tiny", info)
    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 4000, (40, 1024, 1024), dtype=np.uint16)  # 80 MB; 160 MB as float32
    viewer.add_image(image, name="big")
    labels = viewer.add_labels(np.zeros(image.shape, np.int32), name="examples")
    labels.data[20, 100:200, 100:200] = 1
    widget = dock(viewer)
    choose_backend(widget, "tiny")
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    widget.controls.run_button.click()
    qtbot.waitUntil(lambda: len(widget.session.slices) > 2, timeout=60_000)
    during = process.memory_info().rss
    widget.controls.cancel_button.click()
    wait_idle(qtbot, widget, 60_000)
    qtbot.wait(200)
    gc.collect()
    after = process.memory_info().rss
    mib = 2**20
    print(f"RSS before {before / mib:.0f} MiB, during {during / mib:.0f}, after {after / mib:.0f}")
    assert during - before > 100 * mib  # the run held the normalised stack ...
    assert after < 1.10 * before  # ... and Cancel gave it back (within 10%)


def test_workers_leave_threads_of_qt_pool_free_for_qt(qtbot) -> None:
    """Qt's image conversions wait on its global pool while the main thread holds the GIL;
    workers that filled the pool deadlocked the viewer on a 2-core machine."""
    from qtpy.QtCore import QRunnable, QThreadPool

    from napari_incontext._workers import SPARE_POOL_THREADS, start_function

    class Mark(QRunnable):
        def __init__(self, done: threading.Event) -> None:
            super().__init__()
            self.done = done

        def run(self) -> None:
            self.done.set()

    pool = QThreadPool.globalInstance()
    qtbot.waitUntil(lambda: pool.activeThreadCount() == 0, timeout=30_000)  # earlier tests'
    before = pool.maxThreadCount()
    pool.setMaxThreadCount(2)  # a 2-core machine
    gate, qt_work = threading.Event(), threading.Event()
    try:
        for _ in range(2):
            start_function(gate.wait, 30, on_done=lambda _r: None)
        qtbot.waitUntil(lambda: pool.activeThreadCount() == 2, timeout=10_000)
        assert pool.maxThreadCount() - pool.activeThreadCount() >= SPARE_POOL_THREADS
        pool.start(Mark(qt_work))  # what Qt's own conversion does
        assert qt_work.wait(10), "Qt's pool work did not run while two workers were busy"
    finally:
        gate.set()
        qtbot.waitUntil(lambda: pool.activeThreadCount() == 0, timeout=10_000)
        pool.setMaxThreadCount(before)
