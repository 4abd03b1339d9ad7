"""Fixtures for the GUI tests: a tiny synthetic stack, test backends, a docked widget."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, make_dataclass

import numpy as np
import pytest

from src_models import registry
from src_models.backends.classic import ClassicBackend
from src_models.backends.configs import ClassicConfig
from src_models.registry import BackendInfo
from src_models.sample_data import example_labels, synthetic_stack
from src_models.timing import NULL_TIMER, Timer
from tests.plugin.plugin_helpers import N_SLICES, SIZE, choose_backend, dock, open_stack

# A small, fast classic configuration: seconds for a whole run on one core.
FAST = ClassicConfig(
    sigma_max=4.0, texture=False, n_estimators=8, max_depth=8, samples_per_class=2000
)


class CountingBackend(ClassicBackend):
    """The classic backend that counts feature computations and can be slowed down."""

    name = "counting"

    def __init__(self, delay: float = 0.0, fail_predict: bool = False) -> None:
        super().__init__(FAST)
        self.delay = delay
        self.fail_predict = fail_predict
        self.computed = 0
        self.fits: list[list[tuple[int, float]]] = []  # (slice, weight) of each fit's examples

    def compute_features(self, image: np.ndarray, timer: Timer = NULL_TIMER) -> np.ndarray:
        self.computed += 1
        if self.delay:
            time.sleep(self.delay)  # stands in for a model forward that releases the GIL
        return super().compute_features(image, timer)

    def fit(self, examples, timer: Timer = NULL_TIMER) -> None:
        self.fits.append([(e.index, e.weight) for e in examples])
        super().fit(examples, timer)

    def predict(
        self, features: np.ndarray, shape: tuple[int, int], timer: Timer = NULL_TIMER
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.fail_predict:
            raise RuntimeError("predict exploded (test backend)")
        return super().predict(features, shape, timer)


def hold_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> threading.Event:
    """Make every test backend's feature computation after the first ``calls`` wait (GIL
    released, like a model forward) until the returned event is set: a run is then
    deterministically in flight, however loaded the machine is."""
    release = threading.Event()
    count = [0]
    original = CountingBackend.compute_features

    def held(self: CountingBackend, image: np.ndarray, timer: Timer = NULL_TIMER) -> np.ndarray:
        count[0] += 1
        if count[0] > calls:
            release.wait(60)
        return original(self, image, timer)

    monkeypatch.setattr(CountingBackend, "compute_features", held)
    return release


@dataclass(frozen=True)
class CountingConfig:
    """Options of the test backends.

    Attributes:
        delay: seconds each feature computation sleeps.
        fail_predict: raise in predict.
    """

    delay: float = 0.0
    fail_predict: bool = False


@pytest.fixture
def built() -> list[CountingBackend]:
    """Every test backend built during the test, in order."""
    return []


@pytest.fixture
def test_backends(monkeypatch: pytest.MonkeyPatch, built: list[CountingBackend]) -> None:
    """Register "counting", "slow" and "broken" backends for the duration of a test."""

    def build(config: CountingConfig, *, device: str = "auto") -> CountingBackend:
        backend = CountingBackend(config.delay, config.fail_predict)
        built.append(backend)
        return backend

    for name, defaults in {
        "counting": CountingConfig,
        "slow": make_dataclass(
            "SlowConfig", [("delay", float, 0.15)], bases=(CountingConfig,), frozen=True
        ),
        "broken": make_dataclass(
            "BrokenConfig", [("fail_predict", bool, True)], bases=(CountingConfig,), frozen=True
        ),
    }.items():
        info = BackendInfo(name, f"test backend {name}", defaults, build, uses_device=False)
        monkeypatch.setitem(registry.BACKENDS, name, info)


@pytest.fixture
def stack() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (6, 48, 48) uint16, truth, example labels on the middle slice only)."""
    image, truth = synthetic_stack(N_SLICES, SIZE, seed=1)
    return image, truth, example_labels(truth)


@pytest.fixture
def viewer_widget(qtbot, make_napari_viewer, stack, test_backends, tmp_path):
    """The stack and its example labels opened from TIFF files, and the widget docked
    through the Plugins menu path."""
    image, _, labels = stack
    viewer = make_napari_viewer()
    open_stack(viewer, tmp_path, image, labels)
    widget = dock(viewer)
    choose_backend(widget, "counting")
    assert widget.controls.image_combo.currentText() == "stack"
    assert widget.controls.labels_combo.currentText() == "examples"
    return viewer, widget
