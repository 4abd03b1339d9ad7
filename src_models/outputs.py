"""Safe output destinations: refuse dangerous paths and replace only our own earlier outputs.

- An output path is refused when it is empty, the current directory or one of its parents, a
  filesystem root, the home directory, an input or a folder holding an input, another output
  of the same command, a symbolic link, or not writable; all before any work.
- ``--overwrite`` replaces only what this tool wrote and nobody changed since: a folder
  holding our manifest whose listed files (names, sizes, sha256) are exactly its contents, a
  TIFF whose description carries our marker and the sha256 of its pixels, a JSON file whose
  top-level ``written_by`` is ours, or what a command's own ``owner`` check accepts (e.g. a
  SEGIC checkpoint with its training sidecar). A folder is never replaced by a file or a file
  by a folder; an empty folder counts as free.

The writing itself is :mod:`src_models.atomic`; the rules and tested cases: docs/safety.md.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from src_models.atomic import MANIFEST, WRITTEN_BY
from src_models.hashing import array_sha256, file_sha256

Kind = Literal["file", "folder"]
Owner = Callable[[Path], str | None]


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path.expanduser()))


# ------------------------------------------------------------------ what is ours
def folder_problem(folder: Path) -> str | None:
    """None when ``folder`` is empty or exactly an unchanged earlier output of ours."""
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return None
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files: dict[str, list] = manifest["files"]
        ours = manifest["written_by"] == WRITTEN_BY and isinstance(files, dict)
    except (OSError, ValueError, KeyError, TypeError):
        ours = False
    if not ours:
        return "it was not written by napari-incontext (no manifest of ours in it)"
    extra = [n for n in entries if n != MANIFEST and n not in files]
    if extra:
        return f"it holds files napari-incontext did not write ({', '.join(extra[:3])})"
    for name, (size, digest) in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size or file_sha256(path) != digest:
            return f"{name} in it was changed or removed since napari-incontext wrote it"
    return None


def tiff_description(data_sha256: str, run: dict[str, Any] | None = None) -> str:
    """Our TIFF description: the marker, the pixels' sha256 (what ownership checks) and the
    ``run`` that made it (backend, options, automatic choices), when given."""
    record: dict[str, Any] = {"written_by": WRITTEN_BY, "sha256": data_sha256}
    if run is not None:
        record["run"] = run
    return json.dumps(record, default=str)


def _tiff_problem(path: Path) -> str | None:
    import numpy as np
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            meta = json.loads(tif.pages[0].description or "{}")
            data = np.ascontiguousarray(tif.asarray())
    except Exception:  # any unreadable TIFF is not one we wrote
        return "it was not written by napari-incontext"
    if not isinstance(meta, dict) or meta.get("written_by") != WRITTEN_BY:
        return "it was not written by napari-incontext"
    if array_sha256(data) != meta.get("sha256"):
        return "it was changed since napari-incontext wrote it"
    return None


def _json_problem(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return "it was not written by napari-incontext"
    if isinstance(data, dict) and data.get("written_by") == WRITTEN_BY:
        return None
    return "it was not written by napari-incontext"


def file_problem(path: Path) -> str | None:
    """None when ``path`` is a TIFF or JSON file this tool wrote and nobody changed."""
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return _tiff_problem(path)
    if suffix == ".json":
        return _json_problem(path)
    return "it was not written by napari-incontext"


# ------------------------------------------------------------------ checks before any work
def _danger(path: Path, inputs: Iterable[Path]) -> str | None:
    real = _resolved(path)
    if real.parent == real:
        return "is a filesystem root"
    if real == _resolved(Path.home()):
        return "is your home directory"
    cwd = _resolved(Path.cwd())
    if real == cwd or real in cwd.parents:
        return "is the current directory or one of its parents"
    for item in inputs:
        source = _resolved(item)
        if real == source:
            return f"is the input {item}"
        if real in source.parents:
            return f"holds the input {item}"
    return None


def _writable(path: Path) -> str | None:
    """None when ``path`` can be created; else why not (names the user's path)."""
    parent = Path(os.path.abspath(path)).parent
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a folder"
    try:
        handle, probe = tempfile.mkstemp(prefix=".napari-incontext-probe-", dir=parent)
    except OSError as error:
        return f"cannot create files in {parent} ({error.strerror or error})"
    os.close(handle)
    os.unlink(probe)
    return None


def check_output(
    out: str | Path,
    *,
    overwrite: bool,
    kind: Kind,
    inputs: Iterable[str | Path] = (),
    others: Iterable[str | Path] = (),
    flag: str = "--out",
    owner: Owner | None = None,
) -> Path:
    """Refuse a dangerous or occupied output before any work; returns it as a Path.

    Args:
        out: the output path the user gave.
        overwrite: the user allows replacing an earlier output of this tool.
        kind: the output is a ``file`` or a ``folder``.
        inputs: paths read by the command (an output may not be one or hold one).
        others: the command's other outputs (they may not coincide).
        flag: the option name used in messages.
        owner: ``path -> None | reason`` for outputs :func:`file_problem` and
            :func:`folder_problem` do not know (e.g. a zarr store, ``zarr_out.store_problem``).

    Raises:
        ValueError: one line naming ``out`` and saying what to do.
    """
    if str(out).strip() == "":
        raise ValueError(f"{flag} is empty: give a file or folder name")
    path = Path(out).expanduser()
    danger = _danger(path, (Path(p) for p in inputs if str(p)))
    if danger:
        raise ValueError(f"{flag} {out} {danger}: choose a new file or folder name")
    for other in others:
        if other is not None and str(other) and _resolved(Path(other)) == _resolved(path):
            raise ValueError(f"{flag} {out} is also given as another output: use two names")
    if os.path.islink(path):
        raise ValueError(f"{flag} {out} is a symbolic link: give the real path")
    if path.exists():
        _check_existing(path, out, kind, overwrite, flag, owner)
    reason = _writable(path)
    if reason:
        raise ValueError(f"cannot write {flag} {out}: {reason}")
    return path


def _check_existing(
    path: Path, out: str | Path, kind: Kind, overwrite: bool, flag: str, owner: Owner | None
) -> None:
    if kind == "file" and path.is_dir():
        raise ValueError(f"{flag} {out} is a folder: give a file name (a folder is never replaced)")
    if kind == "folder" and not path.is_dir():
        raise ValueError(f"{flag} {out} is a file: give a folder name (a file is never replaced)")
    if kind == "folder" and not any(path.iterdir()):
        return  # an empty folder holds nothing to lose
    if not overwrite:
        raise ValueError(
            f"{flag} {out} exists: choose another name, or pass --overwrite to replace an "
            "earlier napari-incontext output"
        )
    problem = (owner or (folder_problem if kind == "folder" else file_problem))(path)
    if problem:
        raise ValueError(
            f"{flag} {out} is not replaced: {problem}. Choose another name or move it away"
        )
