"""Safe outputs: refuse dangerous destinations, replace only our own earlier outputs, atomically.

Rules (docs/safety.md):

- An output path is refused when it is empty, the current directory or one of its parents, a
  filesystem root, the home directory, an input or a folder holding an input, or another
  output of the same command.
- ``--overwrite`` replaces only what this tool wrote and nobody changed since: a folder
  holding the manifest :data:`MANIFEST` whose listed files (names, sizes, sha256) are
  exactly its contents, a TIFF whose description carries our marker and the sha256 of its
  pixels, a JSON file whose top-level ``written_by`` is ours (and per command, e.g. a SEGIC
  checkpoint with its training sidecar). A folder is never replaced by a file or a file by a
  folder; an empty folder counts as free.
- Writes go to a hidden sibling named ``.<name>.incontext-<new|old>-<pid>-<token>`` that is
  fsynced, then renamed into place: a file with one ``os.replace``; a folder by an atomic
  exchange (Linux ``renameat2``) or, where that is missing, by renaming the old folder aside,
  moving the new one in and deleting the old one. A kill at any moment leaves the complete
  old or the complete new output; the next write to the same path removes or restores the
  leftovers of a dead process (only names of that pattern, and folders only when they hold
  our manifest or nothing).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

WRITTEN_BY = "napari-incontext"
MANIFEST = ".napari-incontext.json"
Kind = Literal["file", "folder"]
Owner = Callable[[Path], str | None]


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path.expanduser()))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


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
        if not path.is_file() or path.stat().st_size != size or sha256_file(path) != digest:
            return f"{name} in it was changed or removed since napari-incontext wrote it"
    return None


def tiff_description(data_sha256: str) -> str:
    return json.dumps({"written_by": WRITTEN_BY, "sha256": data_sha256})


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
    if hashlib.sha256(data.tobytes()).hexdigest() != meta.get("sha256"):
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
        owner: ``path -> None | reason`` for file types :func:`file_problem` does not know.

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
    problem = folder_problem(path) if kind == "folder" else (owner or file_problem)(path)
    if problem:
        raise ValueError(
            f"{flag} {out} is not replaced: {problem}. Choose another name or move it away"
        )


# ------------------------------------------------------------------ atomic writes
_TEMP = re.compile(r"^\.(?P<name>.+)\.incontext-(?P<role>new|old)-(?P<pid>\d+)-[0-9a-f]{8}(\..*)?$")


def _temp_name(path: Path, role: str, suffix: str = "") -> Path:
    token = secrets.token_hex(4)
    return path.with_name(f".{path.name}.incontext-{role}-{os.getpid()}-{token}{suffix}")


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` runs (or may: another user's); a temp of it is kept."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours_or_empty(folder: Path) -> bool:
    try:
        if not any(folder.iterdir()):
            return True
        return json.loads((folder / MANIFEST).read_text()).get("written_by") == WRITTEN_BY
    except (OSError, ValueError, AttributeError):
        return False


def clean_stale(path: Path) -> None:
    """Remove (or restore) leftovers of dead processes that were writing ``path``.

    A complete old folder set aside by a killed replacement is moved back when ``path`` is
    missing; every other leftover of that pattern is deleted (folders only when they hold our
    manifest or nothing).
    """
    if not path.parent.is_dir():
        return
    for entry in sorted(path.parent.iterdir()):
        match = _TEMP.match(entry.name)
        if not match or match["name"] != path.name or pid_alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            if not _ours_or_empty(entry):
                continue
            if match["role"] == "old" and not os.path.lexists(path):
                os.rename(entry, path)
            else:
                remove_output_folder(entry)
        elif entry.is_file() or entry.is_symlink():
            entry.unlink(missing_ok=True)


def remove_output_folder(folder: Path) -> None:
    """Delete one of our output folders, its manifest last: a deletion cut short leaves a
    folder that is still recognisably ours (and is finished by the next cleanup)."""
    for entry in folder.iterdir():
        if entry.name == MANIFEST:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    folder.rmdir()


def fsync_path(path: Path) -> None:
    """Flush a file or a folder entry to disk (folders: best effort, not on Windows)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        handle = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def write_file(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write a file atomically: ``write(temp)`` (same suffix), fsync, ``os.replace``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: a folder is never replaced by a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    temp = _temp_name(path, "new", path.suffix)  # writers pick the format by suffix
    try:
        write(temp)
        fsync_path(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return path


def write_manifest(folder: Path, complete: bool) -> None:
    """Our manifest: every file's size and sha256 once ``complete``, else only our marker."""
    files = {}
    if complete:
        for entry in sorted(folder.iterdir()):
            if entry.name != MANIFEST:
                files[entry.name] = [entry.stat().st_size, sha256_file(entry)]
    record = {"written_by": WRITTEN_BY, "complete": complete, "files": files}
    (folder / MANIFEST).write_text(json.dumps(record, indent=1))


def sync_folder(folder: Path) -> None:
    """Flush a folder's files to disk: one ``syncfs`` on Linux (thousands of fsyncs take
    seconds to minutes there), else an fsync per file; then the folder itself."""
    synced = False
    if sys.platform == "linux":
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            synced = syncfs is not None and syncfs(handle) == 0
        finally:
            os.close(handle)
    if not synced:
        for entry in folder.iterdir():
            fsync_path(entry)
    fsync_path(folder)


def write_folder(path: str | Path, fill: Callable[[Path], object]) -> Path:
    """Write a folder atomically: ``fill(temp)`` writes the files (no subfolders), then our
    manifest is added and the folder swapped in; the old one is deleted last."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file: a file is never replaced by a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    temp = _temp_name(path, "new")
    temp.mkdir()
    try:
        write_manifest(temp, complete=False)
        fill(temp)
        write_manifest(temp, complete=True)
        sync_folder(temp)
        _swap_in(temp, path)
    except BaseException:
        if temp.exists():
            remove_output_folder(temp)
        raise
    fsync_path(path.parent)
    return path


def _swap_in(temp: Path, path: Path) -> None:
    if not path.exists():
        os.rename(temp, path)
        return
    if _exchange(temp, path):  # temp now holds the old folder
        _discard(temp)
        return
    aside = _temp_name(path, "old")
    os.rename(path, aside)
    try:
        os.rename(temp, path)
    except BaseException:
        os.rename(aside, path)
        raise
    _discard(aside)


def _discard(old: Path) -> None:
    """Delete a replaced output; a failure leaves it for the next cleanup (the new output
    is already in place, so the write itself succeeded)."""
    with contextlib.suppress(OSError):
        remove_output_folder(old)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False when unsupported."""
    if sys.platform != "linux" or os.environ.get("NAPARI_INCONTEXT_NO_EXCHANGE"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), str(b))


def write_json(path: str | Path, record: dict) -> Path:
    """Write ``record`` plus ``written_by`` (our marker) as JSON, atomically."""
    text = json.dumps({"written_by": WRITTEN_BY, **record}, indent=1, default=str)
    return write_file(path, lambda temp: temp.write_text(text))
