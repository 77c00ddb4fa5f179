"""Finished task results on disk, so that an interrupted grid resumes.

A grid of tasks (ensemble members, calibration realisations, survey
galaxies; see :mod:`dsphnf.executor`) writes each result to
``<store>/<key>.pkl`` the moment it arrives, atomically (a temporary file in
the same folder, then :func:`os.replace`), so a crash, a killed worker or a
Ctrl-C never leaves a half-written result. Running the same grid again loads
the finished keys instead of recomputing them.

Each file records the *fingerprint* of its task (the task function's name and
a hash of its arguments): a stored result is reused only for the very same
task, and a store that holds a different task under the same key is refused
with a one-line error instead of being silently mixed in. The fingerprint
does not cover the function's code: after changing the code, use a fresh
store. Files are pickles, so only load stores you wrote yourself; one run per
store at a time.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import DsphnfError

__all__ = ["TaskStore", "StoreError", "task_fingerprint", "check_key", "KEY_PATTERN"]

#: Task keys are file names: letters, digits, ``.``, ``_``, ``-``, starting with a letter or digit.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

_FORMAT = 1


class StoreError(DsphnfError, ValueError):
    """A result store that cannot be used (bad key, another task's result, unreadable file)."""


def check_key(key: object) -> str:
    """Return ``key`` if it can name a result file, else raise :class:`StoreError`.

    >>> check_key("member_3")
    'member_3'
    """
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise StoreError(f"bad task key {key!r}: use letters, digits, '.', '_' and '-' (at most 200)")
    return key


def task_fingerprint(func: Callable, kwargs: Mapping[str, Any], common: Mapping[str, Any] | None = None) -> str:
    """SHA-256 (hex) of a task: the function's qualified name and its pickled arguments.

    The contract callers rely on: the fingerprint covers ``func.__module__``,
    ``func.__qualname__`` (a callable object such as the flow's
    ``MemberRunner`` is named by its class) and the task's arguments, and
    nothing else.  Run-time-only settings that must not invalidate stored
    results (a progress bar, a checkpoint path) therefore belong in the
    callable's own attributes, not in the arguments.

    >>> task_fingerprint(pow, {"base": 2, "exp": 3}) == task_fingerprint(pow, {"base": 2, "exp": 3})
    True
    >>> task_fingerprint(pow, {"base": 2, "exp": 3}) == task_fingerprint(pow, {"base": 2, "exp": 4})
    False
    """
    name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
    args = (sorted(dict(common or {}).items()), sorted(dict(kwargs).items()))
    h = hashlib.sha256(name.encode())
    h.update(pickle.dumps(args, protocol=4))
    return h.hexdigest()


class TaskStore:
    """Results of finished tasks, one pickle per key in ``folder`` (created on first save).

    Parameters
    ----------
    folder : path
        The store; it may already hold results of an interrupted run.

    Examples
    --------
    >>> import tempfile
    >>> store = TaskStore(tempfile.mkdtemp())
    >>> _ = store.save("a", "f1", {"x": 1.0})
    >>> store.load("a", "f1")
    (True, {'x': 1.0})
    >>> store.load("b", "f1")
    (False, None)
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        """File of one task's result."""
        return self.folder / f"{check_key(key)}.pkl"

    def load(self, key: str, fingerprint: str) -> tuple[bool, Any]:
        """``(True, result)`` for a finished task, ``(False, None)`` if there is none yet.

        Raises :class:`StoreError` if the file holds another task's result or cannot be read.
        """
        path = self.path(key)
        if not path.exists():
            return False, None
        try:
            with open(path, "rb") as fh:
                rec = pickle.load(fh)
        except Exception as exc:
            raise StoreError(f"{path}: unreadable stored result ({type(exc).__name__}: {exc}); delete it to recompute") from exc
        if not isinstance(rec, dict) or rec.get("format") != _FORMAT or rec.get("key") != key:
            raise StoreError(f"{path}: not a dsphnf task result; use a fresh store folder")
        if rec.get("fingerprint") != fingerprint:
            raise StoreError(f"{path}: holds the result of a different task (other settings) under key {key!r}; "
                             f"use a fresh store folder or delete it")
        return True, rec["result"]

    def save(self, key: str, fingerprint: str, result: Any) -> Path:
        """Write one result atomically; returns its path."""
        path = self.path(key)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        rec = {"format": _FORMAT, "key": key, "fingerprint": fingerprint, "result": result}
        try:
            with open(tmp, "wb") as fh:
                pickle.dump(rec, fh, protocol=pickle.HIGHEST_PROTOCOL)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path
