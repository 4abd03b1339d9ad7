"""Pick the protocol that fits each dataset kind and run it (shared by the CLI and scripts)."""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import asdict
from typing import Any

import numpy as np

from src_models.backends.base import Backend
from src_models.evaluation import protocols
from src_models.evaluation.annotator import AnnotatorConfig, simulate_annotator
from src_models.evaluation.benchmark import speed_benchmark
from src_models.evaluation.datasets import (
    AnnotatedImages,
    Dataset,
    InstanceImage,
    Stack,
    Video,
    describe,
)
from src_models.evaluation.protocols import EvalResult, Progress
from src_models.evaluation.results import Link

PROTOCOLS: dict[str, tuple[str, ...]] = {
    "one-shot": ("images", "instances"),
    "propagate": ("stack",),
    "video": ("video",),
    "annotator": ("stack",),
    "speed": ("stack", "video"),
}


def compatible(protocol: str, dataset: Dataset) -> bool:
    """Whether ``protocol`` applies to this kind of dataset."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    return dataset.kind in PROTOCOLS[protocol]


def annotator_stack(
    stack: Stack, limit: int | None, margin: int = 2
) -> tuple[np.ndarray, np.ndarray, str]:
    """The stack the annotator works on: an instance stack's median object on its z range;
    a semantic stack's ``limit`` slices nearest the default start (all when None)."""
    if stack.instance:
        obj = protocols.select_objects(stack.labels, 1)[0]
        zr, _ = protocols.object_substack(stack.labels, obj, margin)
        truth = (stack.labels[zr] == obj).astype(np.int32)
        return stack.image[zr], truth, f"object {obj}, z {zr.start}-{zr.stop - 1}"
    start = protocols.default_start(stack.labels)
    targets = protocols.nearest_targets(len(stack.labels), start, limit)
    others = targets if targets is not None else [i for i in range(len(stack.labels)) if i != start]
    keep = sorted([start, *others])
    return stack.image[keep], stack.labels[keep], f"slices {keep[0]}-{keep[-1]}"


def run_annotator(
    stack: Stack, backend: Backend, config: AnnotatorConfig, limit: int | None, note: str
) -> Generator[Any, None, EvalResult]:
    start = time.perf_counter()
    image, truth, where = annotator_stack(stack, limit)
    result = yield from simulate_annotator(image, truth, backend, config)
    first, last = result.rounds[0], result.rounds[-1]
    summary = {
        "slices": float(result.n_slices),
        "target IoU": result.target_iou,
        "corrections": float(result.corrections),
        "reached": float(result.reached_target),
        "IoU round 0": first.mean_iou,
        "IoU final": last.mean_iou,
        "min IoU final": last.min_iou,
        "compute s": result.total_seconds,
        "s round 0": first.compute_seconds,
        "s per re-run": float(np.mean([r.compute_seconds for r in result.rounds[1:]]))
        if len(result.rounds) > 1
        else float("nan"),
    }
    items = [{"where": where, "pick": config.pick, **asdict(r)} for r in result.rounds]
    return EvalResult(
        "annotator", stack.name, backend.name, summary, items, time.perf_counter() - start, note
    )


def run_speed(
    dataset: Stack | Video, backend: Backend, limit: int | None, device: str, note: str
) -> Generator[Any, None, EvalResult]:
    start = time.perf_counter()
    if isinstance(dataset, Video):
        stack = dataset.sequences[0].load(limit, dataset.max_side)
    else:
        stack = dataset
    image = stack.image[:limit] if limit else stack.image
    truth = stack.labels[: len(image)]
    if stack.instance:
        truth = (truth == protocols.select_objects(truth, 1, min_extent=1)[0]).astype(np.int32)
    labels = np.zeros_like(truth)
    s = protocols.default_start(truth) if isinstance(dataset, Stack) else 0
    labels[s] = truth[s]
    report = yield from speed_benchmark(image, labels, backend, device)
    summary = {k: float(v) for k, v in report.items() if isinstance(v, (int, float))}
    return EvalResult(
        "speed", stack.name, backend.name, summary, [report], time.perf_counter() - start, note
    )


def run_protocol(
    protocol: str,
    dataset: Dataset,
    backend: Backend,
    *,
    shots: int = 1,
    limit: int | None = None,
    note: str = "",
    device: str = "cpu",
    annotator: AnnotatorConfig | None = None,
    max_frames: int | None = None,
    link: Link = "auto",
) -> Generator[Progress | Any, None, EvalResult]:
    """Run one protocol on one dataset; ``limit`` bounds the work (see the CLI help).

    The result's ``read_as`` says what the dataset was read as (:func:`datasets.describe`).
    """
    if not compatible(protocol, dataset):
        raise ValueError(
            f"protocol {protocol!r} needs a {' or '.join(PROTOCOLS[protocol])} "
            f"dataset; {dataset.name} was read as {describe(dataset)}"
        )
    result = yield from _dispatch(
        protocol, dataset, backend, shots, limit, note, device, annotator, max_frames, link
    )
    result.read_as = describe(dataset)
    return result


def _dispatch(
    protocol: str,
    dataset: Dataset,
    backend: Backend,
    shots: int,
    limit: int | None,
    note: str,
    device: str,
    annotator: AnnotatorConfig | None,
    max_frames: int | None,
    link: Link,
) -> Generator[Progress | Any, None, EvalResult]:
    if protocol == "one-shot" and isinstance(dataset, AnnotatedImages):
        return (
            yield from protocols.one_shot(dataset, backend, shots=shots, episodes=limit, note=note)
        )
    if protocol == "one-shot" and isinstance(dataset, InstanceImage):
        return (yield from protocols.instance_one_shot(dataset, backend, shots=shots, note=note))
    if protocol == "propagate" and isinstance(dataset, Stack):
        return (
            yield from protocols.propagate_stack(
                dataset, backend, limit=limit, note=note, link=link
            )
        )
    if protocol == "video" and isinstance(dataset, Video):
        return (
            yield from protocols.video(
                dataset, backend, limit=limit, max_frames=max_frames, note=note, link=link
            )
        )
    if protocol == "annotator" and isinstance(dataset, Stack):
        config = annotator or AnnotatorConfig()
        return (yield from run_annotator(dataset, backend, config, limit, note))
    if protocol == "speed" and isinstance(dataset, (Stack, Video)):
        return (yield from run_speed(dataset, backend, limit, device, note))
    raise ValueError(f"protocol {protocol!r} cannot run on {dataset.name}")
