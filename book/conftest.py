"""Chapters that cannot run without the reference data are skipped, with the reason printed.

Most chapters fall back to freshly drawn mocks when the Gaia Challenge files
are absent (:func:`dsphnf.datasets.reference_or_mock`), as on Binder or in a
clean clone. Chapter 8 fits the real Walker catalogues of the nine dwarfs and
has no stand-in for them: when any catalogue is missing (see
:func:`dsphnf.datasets.data_root` for where they are looked for, e.g.
``DSPHNF_DATA``) its cells are skipped instead of failing, and the run's
summary says so. With the catalogues present the chapter runs as every other.
"""
from __future__ import annotations

from pathlib import Path

import pytest

#: Chapters (file names) that need the real catalogues of every galaxy of :data:`dsphnf.galaxies.GALAXIES`.
NEEDS_CATALOGUES = ("08_nine_dwarfs.ipynb",)

_SKIPPED: dict[str, str] = {}


def missing_catalogues() -> list[str]:
    """Names of the galaxies whose Walker catalogue cannot be found (empty when all are present)."""
    from dsphnf.errors import DsphnfError
    from dsphnf.galaxies import GALAXIES

    missing = []
    for key, galaxy in GALAXIES.items():
        try:
            galaxy.catalogue_path()
        except DsphnfError:
            missing.append(key)
    return missing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every cell of a chapter in :data:`NEEDS_CATALOGUES` as skipped when catalogues are missing."""
    chapters = {Path(str(item.fspath)).name for item in items} & set(NEEDS_CATALOGUES)
    if not chapters:
        return
    missing = missing_catalogues()
    if not missing:
        return
    reason = (f"the Walker catalogues of {len(missing)} of the dwarfs ({', '.join(missing)}) were not found "
              "(set DSPHNF_DATA to the folder holding walker_dwarfs/); this chapter has no mock stand-in")
    for item in items:
        name = Path(str(item.fspath)).name
        if name in chapters:
            item.add_marker(pytest.mark.skip(reason=reason))
            _SKIPPED[name] = reason


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per skipped chapter, even under ``-q`` (which hides skip reasons)."""
    for name, reason in _SKIPPED.items():
        terminalreporter.write_line(f"book/{name} skipped: {reason}")
