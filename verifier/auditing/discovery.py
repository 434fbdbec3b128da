"""An audit's inputs: the owner fingerprints, and the suspect files found in the given files and folders.

Which files are models is the exporters' business: :func:`discover` asks the `recognised` function it is given
(the API passes the exporters' own), so this package imports no exporter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from verifier.auditing.results import Owner
from verifier.errors import InputError
from verifier.graph.onnx_file import external_data_files, sha256_file


def load_owners(paths: Sequence[Path]) -> tuple[Owner, ...]:
    """Read the owner fingerprints; names are the file stems, made unique with their folder if needed."""
    from verifier.method import fingerprint_file  # reads numpy archives: only when owners are read

    if not paths:
        raise InputError("no owner fingerprint given (--owner FP, or [[owners]] in verifier.toml)")
    stems = [Path(path).stem for path in paths]
    owners = []
    for path, stem in zip(map(Path, paths), stems, strict=True):
        fingerprint = fingerprint_file.load(path)
        name = stem if stems.count(stem) == 1 else f"{path.parent.name}/{stem}"
        owners.append(Owner(name, path, sha256_file(path), fingerprint))
    return tuple(owners)


def _real(path: Path) -> Path | None:
    """Where `path` really is, or None for a symlink loop or an unreadable link."""
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return None


def _entries(folder: Path, recognised: Callable[[Path], bool], seen: set[Path] | None = None) -> Iterator[Path]:
    """Files under `folder` and the model folders (SavedModels) in it, whose insides are one model: not
    descended into.  Hidden files and folders are left out.  Each real file or folder is visited once, however
    many symlinks lead to it (a link back up the tree would otherwise recurse until the OS gives up); a broken
    or looping link is yielded as it is, to become one error row."""
    seen = set() if seen is None else seen
    real = _real(folder)
    if real is None or real in seen:
        return
    seen.add(real)
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        target = _real(path)
        if target is None:
            yield path
        elif target.is_dir():
            if recognised(path):
                if target not in seen:
                    seen.add(target)
                    yield path
            else:
                yield from _entries(path, recognised, seen)
        elif target not in seen:
            seen.add(target)
            yield path


def discover(inputs: Sequence[Path], recognised: Callable[[Path], bool]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(suspects as (path, display name), skipped files) from files and folders.

    A folder is searched recursively for files `recognised` accepts (some exporter reads them); hidden files
    and ONNX external-data files are left out, other files are listed as skipped.  A file named explicitly is
    always audited, so an unknown format shows up as an error row.
    """

    suspects, skipped = [], []
    for given in map(Path, inputs):
        if given.is_file() or (given.is_dir() and recognised(given)):  # a folder can be a model (SavedModel)
            suspects.append((given, given.name))
        elif given.is_dir():
            files = list(_entries(given, recognised))
            external = {data for path in files if path.suffix.lower() == ".onnx" and _real(path) is not None
                        for data in external_data_files(path)}
            for path in files:
                if _real(path) in external:
                    continue
                (suspects.append((path, str(path.relative_to(given)))) if recognised(path)
                 else skipped.append(str(path)))
        else:
            raise InputError(f"{given}: no such suspect file or folder")
    if not suspects:
        raise InputError(f"no model files found in {', '.join(map(str, inputs)) or 'the given inputs'}")
    return suspects, skipped

