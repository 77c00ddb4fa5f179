"""Atomic writing of result files and folders: nothing half-written is left behind.

Every command writes into a temporary sibling and renames it into place only
once everything succeeded.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

__all__ = ["atomic_file", "atomic_dir", "write_csv", "write_json"]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """Open a temporary file beside ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``path`` when the block succeeds.

    An existing ``path`` is replaced only after the new content is complete;
    on any error the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_csv(path: str | os.PathLike, columns: Mapping[str, Sequence[float]], fmt: str = "%.8g") -> None:
    """Write equal-length numeric ``columns`` as CSV with a header, atomically."""
    names = list(columns)
    data = np.column_stack([np.asarray(columns[k], dtype=float) for k in names])
    with atomic_file(path) as fh:
        np.savetxt(fh, data, delimiter=",", header=",".join(names), comments="", fmt=fmt)


def write_json(path: str | os.PathLike, obj: Mapping) -> None:
    """Write ``obj`` as indented JSON (numpy scalars converted), atomically."""

    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    with atomic_file(path) as fh:
        json.dump(obj, fh, indent=2, default=default)
        fh.write("\n")
