"""Writing the files verifier produces: checked before any work, complete or absent, never over a device.

Auditors run verifier as root in pipelines, so an output path is treated with care:

- :func:`check_output` runs before the expensive work: a folder that cannot be made or written is
  found in a second, not after a minute of fingerprinting (a missing one is made);
- an existing path that is not a regular file (a FIFO, a device such as ``/dev/full``, a
  folder) is refused, never replaced; a symlink is written through (its target is replaced,
  the link stays);
- the file appears complete or not at all (a temporary file beside it, moved into place), and
  with the permissions the user's umask gives ordinary files.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from verifier.errors import InputError


def check_output(path: str | Path) -> Path:
    """The file to write for output `path` (a symlink's target); its folder is made if missing (as pipelines
    expect of `-o out/audit.json`); one-line error when it cannot be written."""
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from exc
    if mode is not None and not stat.S_ISREG(mode):
        raise InputError(f"cannot write {path}: it exists and is not a regular file; refusing to replace it")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write {path}: cannot make folder {folder} ({exc.strerror})") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: folder {folder} is not writable")
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path`'s file, moved onto it only if the block succeeds (removed otherwise,
    Ctrl-C included)."""
    target = check_output(path)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; the result is an ordinary file
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle on :func:`atomic_path`'s temporary file."""
    with atomic_path(path) as temporary, temporary.open("wb") as stream:
        yield stream


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that the file appears complete or not at all."""
    with atomic_file(path) as stream:
        stream.write(data)
