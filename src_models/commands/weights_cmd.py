"""`napari-incontext weights list|download NAME|verify [NAME]|path NAME`."""

from __future__ import annotations

import argparse

HELP = "list, download, verify or locate model checkpoints (nothing downloads unless asked)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "download", "verify", "path"])
    parser.add_argument(
        "name", nargs="?", default=None, help="checkpoint name (see `weights list`)"
    )
    parser.add_argument("--file", default=None, help="verify/path: check this file instead")
    parser.add_argument("--quiet", action="store_true", help="download: no progress bar")


def _size(nbytes: int | None) -> str:
    return "?" if nbytes is None else f"{nbytes / 1e6:,.0f} MB"


def _list() -> int:
    from src_models.weights import WEIGHTS, check_status, find_local

    for spec in WEIGHTS.values():
        found = find_local(spec)
        status = "missing"
        if found:
            check = check_status(found, spec)
            status = f"ready  {found}" if check == "ok" else f"BAD ({check})  {found}"
        print(
            f"{spec.name:<24} {_size(spec.size):>9}  {status}\n    {spec.file_name}; {spec.license}"
        )
    return 0


def _verify(names: list[str], file: str | None) -> int:
    from src_models.weights import get_spec, resolve, verify

    failed = 0
    for name in names:
        spec = get_spec(name)
        try:
            path = resolve(spec, file)
        except RuntimeError:
            print(f"{name}: missing")
            continue
        try:
            verify(path, spec)
        except RuntimeError as error:
            print(f"{name}: BAD {error}")
            failed += 1
            continue
        how = "sha256 ok" if spec.sha256 else "present (no published hash to check)"
        print(f"{name}: {how}  {path}")
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    from src_models.weights import WEIGHTS, get_spec, resolve

    if args.action == "list":
        return _list()
    if args.action == "verify":
        if args.file and not args.name:
            raise ValueError("weights verify --file FILE needs the NAME it should match")
        return _verify([args.name] if args.name else list(WEIGHTS), args.file)
    if args.name is None:
        raise ValueError(f"weights {args.action} needs a NAME: one of {', '.join(WEIGHTS)}")
    if args.action == "path":
        print(resolve(get_spec(args.name), args.file))
        return 0
    from src_models.heads.segic_text import CLIP_WEIGHTS, download_clip

    if args.name == CLIP_WEIGHTS:  # a Hugging Face model folder, not one file
        print(download_clip())
        return 0
    from src_models.weights_download import download

    print(download(args.name, progress=not args.quiet))
    return 0
