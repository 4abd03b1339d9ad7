"""`napari-incontext eval`: score a backend on a dataset folder with one protocol."""

from __future__ import annotations

import argparse
import sys

from src_models.commands.common import add_backend_arguments, backend_from_args

HELP = "evaluate a backend on a dataset folder (one-shot, propagate, video, annotator, speed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from src_models.evaluation.annotator import PICKS
    from src_models.evaluation.runner import PROTOCOLS

    parser.add_argument("--data", required=True, help="dataset folder (docs/evaluation.md)")
    parser.add_argument("--protocol", required=True, choices=list(PROTOCOLS))
    add_backend_arguments(parser)
    parser.add_argument("--shots", type=int, default=1, help="examples per episode (K-shot)")
    parser.add_argument("--out", default=None, help="write every result as JSON here")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="quick run: episodes per class (one-shot), slices nearest the start or objects "
        "(propagate, annotator), sequences (video), first slices/frames (speed)",
    )
    parser.add_argument("--max-side", type=int, default=None, help="shrink images to this side")
    parser.add_argument("--max-frames", type=int, default=None, help="video: first N frames")
    parser.add_argument("--target-iou", type=float, default=0.9, help="annotator: IoU target")
    parser.add_argument("--budget", type=int, default=None, help="annotator: most corrections")
    parser.add_argument(
        "--pick",
        choices=list(PICKS),
        default="confidence",
        help="annotator: least confident proposal, or the worst (oracle)",
    )
    parser.add_argument(
        "--link",
        action="store_const",
        const=True,
        default="auto",
        help="propagate/video/annotator: the engine's link option (keep what "
        "continues an object from the neighbouring slice); default: the backend decides, "
        "as a propagate run does (classic: on for continuous stacks)",
    )
    parser.add_argument("--no-link", dest="link", action="store_const", const=False)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from src_models.atomic import write_json
    from src_models.device import pick_device
    from src_models.evaluation.annotator import AnnotatorConfig
    from src_models.evaluation.datasets import describe, load_datasets
    from src_models.evaluation.protocols import RANDOM_NOTE, Progress, drain
    from src_models.evaluation.report import results_table
    from src_models.evaluation.runner import PROTOCOLS, compatible, run_protocol
    from src_models.outputs import check_output

    if args.out is not None:
        check_output(args.out, overwrite=args.overwrite, kind="file", inputs=[args.data])
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be >= 1")
    found = load_datasets(args.data, args.max_side)
    for d in found:
        use = "" if compatible(args.protocol, d) else f" (skipped: not for {args.protocol})"
        print(f"read {d.name} as {describe(d)}{use}", file=sys.stderr)
    datasets = [d for d in found if compatible(args.protocol, d)]
    if not datasets:
        read = "; ".join(f"{d.name} as {describe(d)}" for d in found)
        raise ValueError(
            f"{args.data} holds no dataset the {args.protocol!r} protocol can use "
            f"(needs {' or '.join(PROTOCOLS[args.protocol])}); read {read}"
        )
    backend = backend_from_args(args)
    note = RANDOM_NOTE if args.weights == "random" and args.backend != "classic" else ""
    config = AnnotatorConfig(
        target_iou=args.target_iou, budget=args.budget, pick=args.pick, link=args.link
    )
    bar = tqdm(desc=args.protocol, unit="slice", file=sys.stderr, disable=args.quiet)

    def on_item(item: object) -> None:
        if isinstance(item, Progress):
            bar.set_postfix_str(item.message[:40])
            bar.update(1)

    results = []
    for dataset in datasets:
        gen = run_protocol(
            args.protocol,
            dataset,
            backend,
            shots=args.shots,
            limit=args.limit,
            note=note,
            device=str(pick_device(args.device)),
            annotator=config,
            max_frames=args.max_frames,
            link=args.link,
        )
        results.append(drain(gen, on_item))
    bar.close()
    print(results_table(results))
    if args.out is not None:
        write_json(args.out, {"results": [r.to_dict() for r in results]})
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
