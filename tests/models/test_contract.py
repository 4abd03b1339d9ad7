"""The backend contract, checked over the whole registry on tiny random-weight backends.

A backend that is registered in ``src_models.registry.BACKENDS`` gets every check here by
adding its tiny builder to ``tests/models/tiny_backends.py``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from src_models.backends.base import Backend, BackendBase
from src_models.cache import FeatureCache
from src_models.engine import propagate
from src_models.registry import BACKENDS, build_backend
from src_models.timing import Timer
from src_models.types import Example
from tests.models.tiny_backends import FEATURE_OPTIONS, TINY

NAMES = sorted(BACKENDS)
MODEL_STAGES = {"backbone", "sam_encoder"}


def _scene(n: int = 3, size: int = 56) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) float32 stack with two textured squares; labels 3 and 7 on slice 0."""
    rng = np.random.default_rng(0)
    stack = rng.normal(0.3, 0.05, (n, size, size)).astype(np.float32)
    labels = np.zeros((n, size, size), np.int32)
    for i in range(n):
        stack[i, 8 + i : 24 + i, 8:24] += 0.5
        stack[i, 30:46, 30 + i : 46 + i] -= 0.25
    labels[0, 8:24, 8:24] = 3
    labels[0, 30:46, 30:46] = 7
    return stack, labels


def test_every_registered_backend_has_a_tiny_spec() -> None:
    assert set(TINY) == set(BACKENDS) == set(FEATURE_OPTIONS)


@pytest.mark.parametrize("name", NAMES)
def test_outputs_ids_determinism_and_timings(name: str) -> None:
    stack, labels = _scene()
    backend = TINY[name]({})
    assert isinstance(backend, Backend) and isinstance(backend, BackendBase)
    runs = [list(propagate(stack, labels, backend, cache=FeatureCache())) for _ in range(2)]
    for first, again in zip(*runs, strict=True):
        assert first.index == again.index
        assert first.labels.shape == stack.shape[1:] and first.labels.dtype == np.int32
        assert first.confidence.shape == stack.shape[1:]
        assert first.confidence.dtype == np.float32
        assert first.confidence.min() >= 0.0 and first.confidence.max() <= 1.0
        assert 0.0 <= first.score <= 1.0
        assert set(np.unique(first.labels)) <= {0, 3, 7}
        np.testing.assert_array_equal(first.labels, again.labels)  # deterministic
        np.testing.assert_allclose(first.confidence, again.confidence, atol=1e-6)
        assert {"features", "head", "cached"} <= set(first.timings)
    assert "fit" in runs[0][0].timings
    if name != "classic":
        assert MODEL_STAGES & set(runs[0][0].timings), "the model forward is not timed"


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_is_refused_before_anything_is_built(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) bogus_option .*valid options"):
        build_backend(name, bogus_option=1)
    with pytest.raises(ValueError, match=r"unknown option\(s\) bogus_option"):
        TINY[name]({"bogus_option": 1})


@pytest.mark.parametrize("name", NAMES)
def test_feature_key_follows_exactly_what_changes_features(name: str) -> None:
    image = _scene(1)[0][0][..., None]
    base = TINY[name]({})
    feature_option, head_option = FEATURE_OPTIONS[name]
    assert TINY[name]({}).feature_key == base.feature_key
    assert TINY[name](head_option).feature_key == base.feature_key
    changed = TINY[name](feature_option)
    assert changed.feature_key != base.feature_key
    a, b = base.compute_features(image), changed.compute_features(image)
    assert _differs(a, b), "the feature option does not change the features"


def _differs(a: object, b: object) -> bool:
    arrays_a = [v for v in vars(a).values()] if hasattr(a, "__dict__") else [a]
    arrays_b = [v for v in vars(b).values()] if hasattr(b, "__dict__") else [b]
    for x, y in zip(arrays_a, arrays_b, strict=True):
        x, y = getattr(x, "embedding", x), getattr(y, "embedding", y)
        if isinstance(x, np.ndarray) and (x.shape != y.shape or not np.array_equal(x, y)):
            return True
    return False


@pytest.mark.parametrize("name", NAMES)
def test_rerun_hits_the_cache_for_every_slice(name: str) -> None:
    stack, labels = _scene()
    backend, cache = TINY[name]({}), FeatureCache()
    list(propagate(stack, labels, backend, cache=cache))
    misses = cache.misses
    rerun = list(propagate(stack, labels, backend, cache=cache))
    assert cache.misses == misses and all(r.timings["cached"] == 1.0 for r in rerun)
    assert not MODEL_STAGES & set(rerun[-1].timings)


@pytest.mark.parametrize("name", NAMES)
def test_close_stops_work_and_releases_models(name: str) -> None:
    stack, labels = _scene()
    backend = TINY[name]({})
    features = backend.compute_features(stack[0][..., None])
    backend.fit([Example(0, features, labels[0])])
    backend.close()
    for attr in type(backend)._models:
        assert getattr(backend, attr) is None
    with pytest.raises(RuntimeError, match="closed"):
        backend.compute_features(stack[1][..., None])
    with pytest.raises(RuntimeError, match="closed"):
        backend.predict(features, stack.shape[1:])
    with pytest.raises(RuntimeError, match="closed"):
        next(propagate(stack, labels, backend))


@pytest.mark.parametrize("name", NAMES)
def test_timer_stages_of_direct_calls(name: str) -> None:
    stack, labels = _scene()
    backend = TINY[name]({})
    timer = Timer()
    features = backend.compute_features(stack[0][..., None], timer)
    if name != "classic":
        assert MODEL_STAGES & set(timer.seconds)
    backend.fit([replace(Example(0, features, labels[0]))], Timer())
    labels_out, confidence = backend.predict(features, stack.shape[1:], Timer())
    assert labels_out.dtype == np.int32 and confidence.dtype == np.float32


def _fitted_predictions(name: str, examples: list[Example], target: np.ndarray) -> np.ndarray:
    """Confidence of a fresh tiny backend fitted on ``examples``, on ``target``."""
    backend = TINY[name]({})
    features = [replace(e, features=backend.compute_features(e.features)) for e in examples]
    backend.fit(features)
    return backend.predict(backend.compute_features(target), target.shape[:2])[1]


@pytest.mark.parametrize("name", NAMES)
def test_fit_honours_example_weights(name: str) -> None:
    """Weight 0 is the same as leaving the example out; a weight below 1 is used."""
    stack, labels = _scene(3)
    images = [s[..., None] for s in stack]
    contrary = np.zeros_like(labels[0])  # a second example that disagrees with the first
    contrary[30:46, 30:46] = 3
    contrary[8:24, 8:24] = 7
    first = Example(0, images[0], labels[0])
    alone = _fitted_predictions(name, [first], images[2])
    ignored = _fitted_predictions(name, [first, Example(1, images[1], contrary, 0.0)], images[2])
    np.testing.assert_allclose(ignored, alone, atol=1e-6)
    full = _fitted_predictions(name, [first, Example(1, images[1], contrary, 1.0)], images[2])
    weak = _fitted_predictions(name, [first, Example(1, images[1], contrary, 0.3)], images[2])
    assert not np.allclose(weak, full, atol=1e-4), "the example weight changes nothing"
    with pytest.raises(ValueError, match="weight 0"):
        TINY[name]({}).fit([Example(0, TINY[name]({}).compute_features(images[0]), labels[0], 0)])
