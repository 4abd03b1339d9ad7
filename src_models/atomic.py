"""Atomic writes of files and folders, with our marker, and cleanup after killed writers.

A file is written to a hidden sibling ``.<name>.incontext-new-<pid>-<token><suffix>``,
fsynced and renamed over the target with one ``os.replace``. A folder is filled under such a
name, gets our manifest :data:`MANIFEST` (every file's size and sha256) last, is synced and
swapped in with an atomic exchange (Linux ``renameat2``) or, where that is missing, by
renaming the old folder aside (``...incontext-old-...``), moving the new one in and deleting
the old one, manifest last. A kill at any moment leaves the complete old or the complete new
output; the next write to the same path removes or restores what a dead process left (only
names of that pattern, folders only when they hold our manifest or nothing). Which outputs
may be replaced at all is decided by :mod:`src_models.outputs`; see docs/safety.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from src_models.hashing import file_sha256

WRITTEN_BY = "napari-incontext"
MANIFEST = ".napari-incontext.json"


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


def write_manifest(folder: Path, complete: bool, extra: dict | None = None) -> None:
    """Our manifest: every file's size and sha256 once ``complete``, else only our marker;
    plus ``extra`` (e.g. ``run``: what made the files)."""
    files = {}
    if complete:
        for entry in sorted(folder.iterdir()):
            if entry.name != MANIFEST:
                files[entry.name] = [entry.stat().st_size, file_sha256(entry)]
    record = {**(extra or {}), "written_by": WRITTEN_BY, "complete": complete, "files": files}
    (folder / MANIFEST).write_text(json.dumps(record, indent=1, default=str))


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


def write_folder(
    path: str | Path, fill: Callable[[Path], object], extra: dict | None = None
) -> Path:
    """Write a folder atomically: ``fill(temp)`` writes the files (no subfolders), then our
    manifest (with ``extra``) is added and the folder swapped in; the old one is deleted
    last."""
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
        write_manifest(temp, complete=True, extra=extra)
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
