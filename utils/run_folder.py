"""A training run's folders, guarded: a second run never replaces the first
silently, two trainings never write one folder at once, every output folder is
writable before work starts, and a write killed mid-way leaves nothing behind.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil

from utils.errors import UserError


class RunFolderError(UserError):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def check_writable(folders: list[str]) -> None:
    """Create each folder and write a file into it, or fail in one line naming it."""
    for folder in folders:
        probe = os.path.join(folder, f".write_test.{os.getpid()}")
        try:
            os.makedirs(folder, exist_ok=True)
            with open(probe, "w") as f:
                f.write("ok")
            os.remove(probe)
        except OSError as e:
            raise RunFolderError(f"cannot write to the output folder {folder} ({e.strerror or type(e).__name__}); fix its permissions or free space, or point output.* elsewhere") from None


@contextlib.contextmanager
def run_lock(folder: str):
    """Hold <folder>.lock (this process's pid) for the run; refuse if a live process
    holds it, take it over if its owner is gone (a stale lock after kill -9). Beside
    the folder, not in it, since --overwrite moves the folder aside."""
    path = folder.rstrip(os.sep) + ".lock"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                owner = int(open(path).read().strip() or "0")
            except (OSError, ValueError):
                owner = 0
            if owner and owner != os.getpid() and _alive(owner):
                raise RunFolderError(f"{folder} is being written by another training (pid {owner}); wait for it to end, or choose another run_name") from None
            os.remove(path)  # stale: its owner is gone
    else:
        raise RunFolderError(f"cannot take the lock {path}; remove it if no training is running")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)


def remove_stray_temporaries(folder: str) -> list[str]:
    """Delete the <file>.<pid>.tmp left by a write that was killed mid-way (its pid gone)."""
    removed = []
    for path in glob.glob(os.path.join(folder, "*.tmp")):
        parts = path.rsplit(".", 2)
        pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0
        if not pid or not _alive(pid):
            with contextlib.suppress(OSError):
                os.remove(path)
                removed.append(path)
    return removed


def holds_run(paths) -> bool:
    return os.path.isfile(paths.best) or os.path.isfile(paths.last)


def claim(paths, resume: bool, overwrite: bool) -> str | None:
    """Decide what a training may do with the run folder it names; returns the folder
    the previous run was moved aside to (--overwrite), to delete once the new run has
    a best checkpoint, or None.

    - --resume continues the run that is there;
    - a folder holding a run is refused unless --overwrite, which moves that run,
      its log and its VisualDL scalars aside first;
    - the log and scalars of an earlier attempt that saved nothing are moved aside
      (to <log>.previous), so that separate runs are never mixed in one file."""
    if resume and overwrite:
        raise RunFolderError("--resume continues the run that is there and --overwrite replaces it: give one of them")
    if resume:
        if not os.path.isfile(paths.last):
            raise RunFolderError(f"nothing to resume: {paths.last} does not exist; drop --resume to start this run")
        return None
    if holds_run(paths) and not overwrite:
        raise RunFolderError(
            f"run '{os.path.basename(paths.checkpoint_dir)}' already holds a training in {paths.checkpoint_dir}; continue it with --resume, "
            f"or start afresh with --overwrite (the old run is kept aside until the new one has a best checkpoint) or -o run_name=<new name>"
        )
    if holds_run(paths):
        aside = _free_name(paths.checkpoint_dir + ".replaced")
        os.replace(paths.checkpoint_dir, aside)
        for path, name in ((paths.log_file, "train.log"), (paths.visualdl_dir, "visualdl"), (paths.image_dir, "image")):
            if os.path.exists(path):
                shutil.move(path, os.path.join(aside, name))
        return aside
    for path in (paths.log_file, paths.visualdl_dir):
        if os.path.exists(path):
            previous = path + ".previous"
            if os.path.isdir(previous):
                shutil.rmtree(previous)
            os.replace(path, previous)
    return None


def _free_name(path: str) -> str:
    candidate, n = path, 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"{path}{n}"
    return candidate
