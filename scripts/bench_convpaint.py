"""classic vs napari-convpaint's ilastik bank, side by side in one run (issue 16).

Same DAVIS-2016 frames as ``scripts/bench_classic.py`` (frame 0 fully painted, every other
frame predicted, frames strided by ``--davis-step``), same machine, one after the other:

- ``classic``: the product defaults (``build_backend("classic")``, ``link="auto"``);
- ``convpaint``: napari-convpaint's ``ilastik_2d`` extractor (ilastik's 6 filters × 7 scales
  per channel) + its default CatBoost (100 iterations, depth 5, lr 0.1), ``channel_mode='rgb'``,
  run in the scratch venv given by ``--convpaint-python`` (never the project's venv). Its
  ``fastfilters`` dependency is conda-only: the real one when that venv imports it (built from
  source, see docs/benchmarks.md), else (or with ``--standin``)
  ``scripts/convpaint_standin/fastfilters.py`` (scipy), see that module for how it differs.
  The header says which one ran.

Both are timed the same way: fit s = features of the example + classifier fit; s/slice = the
prediction of the other frames (features + classifier) divided by their number.

Usage: python scripts/bench_convpaint.py [--davis-step 4] [--sequences 10] [--variant context=1]
           [--convpaint-python /work/cp-venv/bin/python] [--standin] [--kept]
This file is also the convpaint worker (``--worker IN OUT``, run by the scratch venv).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def worker(inp: str, out: str) -> None:
    """Convpaint side: train on frame 0 of IN's image, segment the others, write OUT."""
    from napari_convpaint.convpaint_model import ConvpaintModel

    data = np.load(inp)
    image, example = data["image"], data["example"]  # (T, H, W, 3) uint8, (H, W) 1/2
    model = ConvpaintModel(fe_name="ilastik_2d")
    model.set_params(channel_mode="rgb", ignore_warnings=True)
    start = _clocks()
    model.train(np.moveaxis(image[0], -1, 0), example)
    fit = _clocks() - start
    start = _clocks()
    preds = [model.segment(np.moveaxis(frame, -1, 0)) for frame in image[1:]]
    per_slice = (_clocks() - start) / max(len(preds), 1)
    np.savez(out, pred=np.stack(preds) == 2, fit=fit, per_slice=per_slice)


def _clocks() -> np.ndarray:
    """(wall, CPU of every thread of this process) seconds."""
    return np.array([time.perf_counter(), time.process_time()])


def classic(
    image: np.ndarray, truth: np.ndarray, keep: bool = False, **options: str
) -> tuple[float, np.ndarray, np.ndarray]:
    """The product defaults (link="auto"): mean IoU over frames 1..; (wall, CPU) s/slice and
    fit s. The fit is everything before the first proposal (choices, example features, forest)
    less one slice. ``keep``: every frame's features kept in a ``FeatureCache()`` for a
    re-run, as the plugin's session does (``propagate`` given no cache keeps none)."""
    from src_models.cache import FeatureCache
    from src_models.engine import propagate
    from src_models.evaluation.metrics import object_ious
    from src_models.registry import build_backend

    labels = np.zeros_like(truth)
    labels[0] = truth[0]
    start, ious = _clocks(), []
    backend = build_backend("classic", **options)
    run = propagate(image, labels, backend, cache=FeatureCache() if keep else None)
    for k, result in enumerate(run):
        if k == 0:
            first = _clocks()
        ious.append(object_ious(result.labels, truth[result.index], [1])[1])
    per_slice = (_clocks() - first) / max(len(ious) - 1, 1)
    return float(np.mean(ious)), per_slice, first - start - per_slice


def fastfilters_env(python: str, standin: bool) -> tuple[dict[str, str], str]:
    """The environment convpaint's worker runs in and which fastfilters it imports: the scratch
    venv's own (real) one, else (or when ``standin``) the scipy stand-in put first on its path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if not standin:
        probe = "import fastfilters as f; print(f.__version__, f.__file__)"
        found = subprocess.run([python, "-c", probe], env=env, capture_output=True, text=True)
        if found.returncode == 0:
            version, path = found.stdout.strip().split(maxsplit=1)
            return env, f"real fastfilters {version} ({path})"
    env["PYTHONPATH"] = str(HERE / "convpaint_standin")
    return env, "scipy stand-in of fastfilters (scripts/convpaint_standin)"


def convpaint(
    python: str, env: dict[str, str], image: np.ndarray, truth: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean foreground IoU over frames 1.., (wall, CPU) s/slice and fit s of convpaint."""
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp, "in.npz"), Path(tmp, "out.npz")
        np.savez(inp, image=image, example=(truth[0] > 0).astype(np.uint8) + 1)
        cmd = [python, str(Path(__file__).resolve()), "--worker", str(inp), str(out)]
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        res = np.load(out)
        from src_models.evaluation.metrics import object_ious  # as bench_classic scores

        pairs = zip(res["pred"].astype(np.int32), truth[1:], strict=True)
        ious = [object_ious(p, t, [1])[1] for p, t in pairs]
        return float(np.mean(ious)), res["per_slice"], res["fit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--davis-step", type=int, default=4, help="DAVIS frame stride")
    parser.add_argument("--sequences", type=int, default=10, help="DAVIS sequences (sorted)")
    parser.add_argument("--frames", type=int, default=0, help="first N frames (0: all)")
    parser.add_argument("--convpaint-python", default="/work/cp-venv/bin/python")
    parser.add_argument(
        "--standin", action="store_true", help="convpaint on the scipy stand-in of fastfilters"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="also classic with these options, e.g. context=1,n_estimators=16 (repeatable)",
    )
    parser.add_argument(
        "--kept",
        action="store_true",
        help="also classic keeping every frame's features for a re-run (the plugin's session)",
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    sys.path.insert(0, str(HERE))
    from bench_classic import stacks, variant_options

    env, which = fastfilters_env(args.convpaint_python, args.standin)
    print(
        f"`PYTHONPATH=. python scripts/bench_convpaint.py --davis-step {args.davis_step} "
        f"--sequences {args.sequences} --frames {args.frames}"
        + "".join(f" --variant {v}" for v in args.variant)
        + " --standin" * args.standin
        + " --kept" * args.kept
        + f"`, {os.cpu_count()} cores; convpaint on {which}\n\n"
        "| sequence | method | mean IoU | s/slice wall | s/slice CPU | fit s wall | fit s CPU |"
        "\n|---|---|---|---|---|---|---|"
    )
    rows: dict[str, list[np.ndarray]] = {"classic": [], "convpaint": []}
    if args.kept:
        rows["classic, features kept"] = []
    variants = {f"classic {v}": variant_options(v) for v in args.variant}
    rows |= {name: [] for name in variants}
    for name, image, truth, *_ in stacks(Path(args.data), args.davis_step, args.sequences):
        if not name.startswith("DAVIS"):
            continue
        image, truth = image[: args.frames or None], truth[: args.frames or None]
        rows["classic"].append(np.hstack(classic(image, truth)))
        rows["convpaint"].append(np.hstack(convpaint(args.convpaint_python, env, image, truth)))
        if args.kept:
            rows["classic, features kept"].append(np.hstack(classic(image, truth, keep=True)))
        for method, options in variants.items():
            rows[method].append(np.hstack(classic(image, truth, **options)))
        for method in rows:
            print(_row(name[6:].split()[0], method, rows[method][-1]), flush=True)
    for method, values in rows.items():
        print(_row(f"mean of {len(values)}", method, np.mean(values, axis=0)))


def _row(name: str, method: str, v: np.ndarray) -> str:
    return f"| {name} | {method} | {v[0]:.3f} | " + " | ".join(f"{x:.3f}" for x in v[1:]) + " |"


if __name__ == "__main__":
    main()
