"""Throughput of batched backbone forwards: dinov2 (random weights) on a synthetic stack,
one run per batch size, every slice computed (a fresh feature cache per run).

    PYTHONPATH=. python scripts/bench_batch.py     # --n 24 --size 224 --batch 1 4 8 --device cpu
    PYTHONPATH=. python scripts/bench_batch.py --device cuda --n 256 --size 518 --batch 1 8 16 32

Prints one table row per batch size: slices/s over the whole propagate run (the head's fit
excluded), slices/s of the backbone alone (slices / summed ``backbone`` seconds), the
backbone's share of the run's seconds, and whether the labels equal the first batch size's
run exactly. ``--json PATH`` also writes ``{"header", "rows", "markdown"}`` there
(scripts/bench_scale_all.py).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from src_models.backends.dinov2 import Dinov2Backend
from src_models.cache import FeatureCache
from src_models.engine import propagate
from src_models.registry import build_backend
from src_models.sample_data import example_labels, synthetic_stack


def _run(
    backend: Dinov2Backend, image: np.ndarray, labels: np.ndarray
) -> tuple[float, float, list[np.ndarray]]:
    """(seconds without the fit, summed backbone seconds of the targets, labels)."""
    start = time.perf_counter()
    results = list(propagate(image, labels, backend, cache=FeatureCache()))
    seconds = time.perf_counter() - start - results[0].timings.get("fit", 0.0)
    backbone = sum(r.timings.get("backbone", 0.0) for r in results)
    return seconds, backbone, [r.labels for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=24, help="slices")
    parser.add_argument("--size", type=int, default=224, help="slice side and ViT input side")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--backbone", default="vits14")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--json", default=None, help="also write the rows and table here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image, truth = synthetic_stack(n_slices=args.n, size=args.size)
    labels = example_labels(truth, args.n // 2)
    base = build_backend(
        "dinov2",
        weights="random",
        device=args.device,
        dtype=args.dtype,
        backbone=args.backbone,
        input_size=args.size,
    )
    assert isinstance(base, Dinov2Backend)
    enc = base.encoder
    header = (
        f"dinov2 {args.backbone} (random weights), {args.n} slices of {args.size}², "
        f"{enc.device} {enc.dtype}, {torch.get_num_threads()} CPU threads"
    )
    print(header)
    warm = slice(args.n // 2 - 2, args.n // 2 + 2)  # around the example
    _run(
        Dinov2Backend(enc, replace(base.config, batch_size=max(args.batch))),
        image[warm],
        labels[warm],
    )
    lines = [
        "| batch | slices/s (run) | slices/s (backbone) | backbone share | labels |",
        "|---:|---:|---:|---:|---|",
    ]
    print("\n".join(lines))
    rows = []
    first: list[np.ndarray] | None = None
    for size in args.batch:
        backend = Dinov2Backend(enc, replace(base.config, batch_size=size))
        seconds, backbone, got = _run(backend, image, labels)
        if first is None:
            first, same = got, "-"
        else:
            equal = all(np.array_equal(a, b) for a, b in zip(got, first, strict=True))
            same = "identical" if equal else "DIFFER"
        n = len(got)
        rows.append(dict(batch=size, slices=n, seconds=seconds, backbone=backbone, labels=same))
        lines.append(
            f"| {size} | {n / seconds:.2f} | {n / backbone:.2f} | {backbone / seconds:.0%} "
            f"| {same} |"
        )
        print(lines[-1], flush=True)
    if args.json:
        markdown = "\n".join(lines)
        Path(args.json).write_text(json.dumps(dict(header=header, rows=rows, markdown=markdown)))


if __name__ == "__main__":
    main()
