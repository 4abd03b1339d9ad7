"""Speed and memory benchmark: per-slice seconds by stage, cached re-run, peak memory."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from src_models.backends.base import Backend
from src_models.cache import FeatureCache
from src_models.engine import propagate
from src_models.evaluation.protocols import Progress
from src_models.types import SliceResult

STAGES = ("features", "backbone", "head")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux: ``VmHWM`` of /proc/self/status (the current address space only; ``ru_maxrss``
    would also count a parent's peak across fork + exec). Elsewhere ``ru_maxrss``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def current_rss_mb() -> float:
    """Resident memory now, in MiB (psutil), or NaN when psutil is missing."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    return psutil.Process().memory_info().rss / 2**20


def _cuda_reset() -> bool:
    try:
        import torch
    except ImportError:
        return False
    if not torch.cuda.is_available():
        return False
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return True


def _cuda_peak_mb() -> float:
    import torch

    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


def stage_means(results: list[SliceResult]) -> dict[str, float]:
    """Mean seconds per slice of every timed stage (the fit's timings and the "cached" flag
    excluded: the fit happens once per run, see ``fit s``)."""
    keys = sorted({k for r in results for k in r.timings if k != "cached" and k[:3] != "fit"})
    return {k: float(np.mean([r.timings.get(k, 0.0) for r in results])) for k in keys}


def _timed_run(
    image: np.ndarray, labels: np.ndarray, backend: Backend, cache: FeatureCache, message: str
) -> Generator[Progress, None, tuple[list[SliceResult], float]]:
    results, start = [], time.perf_counter()
    for res in propagate(image, labels, backend, cache=cache):
        results.append(res)
        yield Progress(res.done, res.total, message)
    return results, time.perf_counter() - start


def speed_benchmark(
    image: np.ndarray, labels: np.ndarray, backend: Backend, device: str = "cpu"
) -> Generator[Progress, None, dict[str, Any]]:
    """Run one propagation twice with the same cache: cold, then cached.

    Args:
        image: (N, Y, X[, C]) stack; labels: (N, Y, X) with the example slice(s) labelled.
        backend: built for ``device``; device only labels the report.

    Returns:
        A dict: per-slice mean seconds by stage for the cold run ("features" includes
        "backbone"), ``fit s`` (the cold run's one fit of the head), ``total_over_backbone``
        (features + head over backbone, when the backend reports a backbone time), cold and
        cached run seconds, their speed-up, cache hits of the cached run, peak RSS of the
        process (MiB) and the CUDA peak when on a GPU.
    """
    on_cuda = device == "cuda" and _cuda_reset()
    cache = FeatureCache()
    cold, cold_s = yield from _timed_run(image, labels, backend, cache, "cold run")
    hits = cache.hits
    warm, warm_s = yield from _timed_run(image, labels, backend, cache, "cached re-run")
    stages = stage_means(cold)
    report: dict[str, Any] = {
        "backend": backend.name,
        "device": device,
        "slices": len(cold),
        "shape": list(np.shape(image)),
        **{f"{k} s/slice": v for k, v in stages.items()},
        "total s/slice": stages.get("features", 0.0) + stages.get("head", 0.0),
        "cached head s/slice": stage_means(warm).get("head", float("nan")),
        "fit s": cold[0].timings.get("fit", float("nan")) if cold else float("nan"),
        "cold run s": cold_s,
        "cached run s": warm_s,
        "cached speed-up": cold_s / warm_s if warm_s > 0 else float("nan"),
        "cache hits (re-run)": cache.hits - hits,
        "peak RSS MiB": peak_rss_mb(),
        "RSS now MiB": current_rss_mb(),
    }
    if stages.get("backbone", 0.0) > 0:
        report["total / backbone"] = report["total s/slice"] / stages["backbone"]
    if on_cuda:
        report["CUDA peak MiB"] = _cuda_peak_mb()
    return report
