"""Review-score and accept-then-rerun measurements: the "Review" block of docs/benchmarks.md.

    .venv/bin/python scripts/bench_review.py [--data ../shared/data] [--threshold 0.6]

For every dataset of ../shared/data: the Spearman rank correlation between a proposal's
score and its IoU, for the review score (:mod:`src_models.scoring`) and for the head's mean
confidence (the old score), and what "Accept all ≥ t" would accept with each. Then, on
ISBI, hippocampus and plant cells: accept every proposal scoring at least the median, re-run
with the accepted proposals as examples of weight 1 / 0.3 / 0, and compare the IoU of the
other slices before and after. Uses the classic backend (the only one with real weights
offline); the block is replaced in place, the rest of the page is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from src_models.evaluation.datasets import Stack, load_datasets
from src_models.evaluation.protocols import drain, one_shot, propagate_stack
from src_models.evaluation.report import format_value, write_block
from src_models.evaluation.review import accept_then_rerun, score_quality
from src_models.evaluation.runner import annotator_stack
from src_models.order import WEAK_SHARE, weak_weight
from src_models.registry import build_backend
from src_models.scoring import ACCEPT_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]
QUALITY = [  # folder, max_side, protocol options
    ("fss1000_geti", None, {"episodes": 3}),
    ("perseg_examples", 512, {}),
    ("chest_xray_lungs", None, {}),
    ("isbi2012_em_membrane", None, {}),
    ("plant_cells_3d_pytorch3dunet", None, {"limit": 3}),
    ("hippocampus_mri_3d_mmseg", None, {}),
    ("stardist_nuclei", None, {"limit": 3}),
    ("davis2016_val", 240, {"limit": 3, "max_frames": 20}),
]
RERUN = ["isbi2012_em_membrane", "hippocampus_mri_3d_mmseg", "plant_cells_3d_pytorch3dunet"]
# the widget's choices for slices accepted without an edit (one ground-truth example here)
POLICIES = {
    "full (old)": lambda n: 1.0,
    "weak (default)": lambda n: weak_weight(WEAK_SHARE, 1, n),
    "excluded": lambda n: 0.0,
}


def quality_items(folder: str, max_side: int | None, options: dict[str, Any], data: Path) -> list:
    """(dataset name, per-proposal items) for every dataset of ``folder``."""
    out = []
    for dataset in load_datasets(data / folder, max_side):
        backend = build_backend("classic")
        if dataset.kind == "images":
            result = drain(one_shot(dataset, backend, episodes=options.get("episodes")))
        elif dataset.kind == "stack":
            result = drain(propagate_stack(dataset, backend, limit=options.get("limit")))
        elif dataset.kind == "video":
            items = []
            for seq in dataset.sequences[: options["limit"]]:
                stack = seq.load(options["max_frames"], dataset.max_side)
                items += drain(propagate_stack(stack, backend, start=0)).items
            out.append((f"{dataset.name} ({options['limit']} sequences)", items))
            continue
        else:
            continue
        out.append((dataset.name, result.items))
    return out


def quality_table(data: Path, threshold: float, old: float) -> str:
    columns = [
        "slices",
        "mean IoU",
        "rho score",
        "rho confidence",
        "accepted (score)",
        "IoU accepted (score)",
        "bad accepted (score)",
        "accepted (confidence)",
        "IoU accepted (confidence)",
        "bad accepted (confidence)",
    ]
    lines = ["| dataset | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for folder, max_side, options in QUALITY:
        if not (data / folder).is_dir():
            continue
        for name, items in quality_items(folder, max_side, options, data):
            row = score_quality(items, threshold, old)
            cells = [
                str(int(row[c]))
                if c.startswith(("slices", "accepted", "bad"))
                else format_value(c, row[c])
                for c in columns
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
            print(f"quality {name}: {row}", file=sys.stderr)
    return "\n".join(lines)


def rerun_table(data: Path) -> str:
    lines = [
        "| dataset | slices | accepted (≥ median) | IoU accepted | accepted are | weight each | "
        "IoU rest before | IoU rest after | change |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for folder in RERUN:
        if not (data / folder).is_dir():
            continue
        for dataset in load_datasets(data / folder):
            if not isinstance(dataset, Stack):
                continue
            image, truth, where = annotator_stack(dataset, None)
            results = drain(accept_then_rerun(image, truth, build_backend("classic"), POLICIES))
            for r in results:
                lines.append(
                    f"| {dataset.name} ({where}) | {len(truth)} | {r.accepted} | "
                    f"{r.accepted_iou:.3f} | {r.policy} | {r.weight:.3g} | {r.rest_before:.3f} | "
                    f"{r.rest_after:.3f} | {r.change:+.3f} |"
                )
                print(f"rerun {dataset.name} {r}", file=sys.stderr)
    return "\n".join(lines)


def block(data: Path, threshold: float, old: float, seconds: float, tables: list[str]) -> str:
    return "\n".join(
        [
            "## Review score and accept-then-rerun",
            "",
            f"Regenerate with `python scripts/bench_review.py` (classic backend; took "
            f"{seconds / 60:.1f} min). `rho` = Spearman rank correlation between a proposal's "
            "score and its IoU (higher: the table's order finds the mistakes). *score* = the "
            "review score (confidence × missing / size / fragment factors, "
            "`src_models/scoring.py`); *confidence* = the head's mean confidence, the score "
            f"before. Accepted = what **Accept all ≥** takes: review score ≥ {threshold:g} (the "
            f"widget's default) and confidence ≥ {old:g} (the old default); *bad* = accepted "
            "slices with IoU < 0.5.",
            "",
            tables[0],
            "",
            "Accept-then-rerun (simulated annotator, `src_models/evaluation/review.py`): one "
            "ground-truth slice, propagate, accept every proposal scoring at least the median "
            "without looking, re-run with the accepted proposals as examples; *rest* = the "
            "proposals below the median, before and after the re-run. *full* is the old "
            "behaviour (accepted = painted, weight 1); *weak* is the widget's default: the "
            f"accepted slices together weigh {WEAK_SHARE:g} of the painted example "
            "(`order.weak_weight`); *excluded* leaves them out. An accepted proposal that is "
            "empty holds no label and is no example under any policy.",
            "",
            tables[1],
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--threshold", type=float, default=None, help="default: the widget's")
    parser.add_argument("--old-threshold", type=float, default=0.8)
    parser.add_argument("--skip-rerun", action="store_true")
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        raise SystemExit(f"{data} is absent: point --data at the evaluation data folder")
    if args.threshold is None:
        args.threshold = ACCEPT_THRESHOLD
    start = time.perf_counter()
    tables = [quality_table(data, args.threshold, args.old_threshold)]
    tables.append("" if args.skip_rerun else rerun_table(data))
    seconds = time.perf_counter() - start
    write_block(
        Path(args.out),
        "review",
        block(data, args.threshold, args.old_threshold, seconds, tables),
        "# Benchmarks",
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
