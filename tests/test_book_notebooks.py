"""Static checks of the book's chapters: one figure style, checks off the page, clean text, known citations.

These read the notebooks (nothing is executed), so they run in a second; the
rendered pages are checked by scripts/check_book.py after the book build.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))
HIDDEN = {"remove-cell", "remove-input"}


def _check_book():
    spec = importlib.util.spec_from_file_location("check_book", ROOT / "scripts" / "check_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_cells(path: Path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_every_chapter_is_in_the_table_of_contents() -> None:
    toc = re.findall(r"^\s*-\s*file:\s*book/(\d\d_\S+)", (ROOT / "_toc.yml").read_text(), flags=re.M)
    assert toc == [p.stem for p in CHAPTERS] and len(CHAPTERS) == 9


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_one_figure_style(path: Path) -> None:
    cells = _code_cells(path)
    assert "style.use()" in cells[0].source, "the first code cell must call dsphnf.style.use()"
    for cell in cells:
        assert "plt.subplots(" not in cell.source, "figures come from dsphnf.style.figure (<= 3 panels a row)"
        assert "figure.dpi" not in cell.source and "tight_layout" not in cell.source
        for m in re.finditer(r"style\.figure\((\d+)", cell.source):
            assert int(m.group(1)) <= 3


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_checks_are_off_the_page(path: Path) -> None:
    for cell in _code_cells(path):
        if re.search(r"^\s*assert\b", cell.source, flags=re.M):
            tags = set(cell.metadata.get("tags", []))
            assert tags & HIDDEN, f"a cell with asserts is shown on the page:\n{cell.source[:200]}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_outputs_are_not_stored(path: Path) -> None:
    assert all(not c.outputs and c.execution_count is None for c in _code_cells(path))


@pytest.mark.parametrize("path", CHAPTERS + PAGES, ids=lambda p: p.name)
def test_no_machine_paths_or_repository_internals(path: Path) -> None:
    check = _check_book()
    if path.suffix == ".md":
        text = path.read_text()
    else:
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    assert check.text_problems(text, path.name) == []


def test_every_citation_is_in_the_bibliography() -> None:
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), flags=re.M))
    cited = set()
    for path in CHAPTERS + PAGES:
        text = path.read_text()
        for group in re.findall(r"\{cite(?::[pt])?\}`([^`]+)`", text):
            cited.update(k.strip() for k in group.split(","))
    assert cited, "no citations found"
    assert cited <= keys, f"cited but not in references.bib: {sorted(cited - keys)}"
    assert {"Lim2025", "WalkerPenarrubia2011", "ReadWalkerSteger2019", "PaceStrigari2019", "ForemanMackey2013"} <= cited



#: Names of the API the chapters were first written against, removed or moved since.
OLD_API = ("fit_catalog", "posterior_profiles", "j_factor_band", "compare_profiles", "run_baseline", "KDEData",
           "write_outputs", "baseline.run", "aniso_kind", "log10_J_0.5deg", "n_excluded",
           "plotting import binned_profiles", "dsphnf.plotting.binned_profiles", "flows.fit import standardise")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_use_the_current_api(path: Path) -> None:
    """Every ``from dsphnf... import`` of a chapter resolves, and no removed name is left in code or text."""
    import ast
    import importlib

    cells = nbformat.read(path, as_version=4).cells
    assert [name for name in OLD_API if name in "\n".join(c.source for c in cells)] == []
    for cell in cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dsphnf":
                module = importlib.import_module(node.module)
                for alias in node.names:
                    found = hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}")
                    assert found, f"{node.module}.{alias.name} does not exist"


def _book_conftest():
    spec = importlib.util.spec_from_file_location("book_conftest", ROOT / "book" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chapter_8_is_skipped_only_without_the_catalogues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dsphnf import datasets
    from dsphnf.galaxies import GALAXIES

    book = _book_conftest()
    assert set(book.NEEDS_CATALOGUES) <= {p.name for p in CHAPTERS}
    monkeypatch.delenv("DSPHNF_DATA", raising=False)
    monkeypatch.setattr(datasets, "CHECKOUT", tmp_path / "a" / "repo")   # no shared/data beside it
    work = tmp_path / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert sorted(book.missing_catalogues()) == sorted(GALAXIES)
    data = tmp_path / "data" / "walker_dwarfs"
    data.mkdir(parents=True)
    monkeypatch.setenv("DSPHNF_DATA", str(data.parent))
    for g in list(GALAXIES.values())[:-1]:
        (data / g.file).write_text("")
    assert book.missing_catalogues() == [list(GALAXIES)[-1]]
    (data / list(GALAXIES.values())[-1].file).write_text("")
    assert book.missing_catalogues() == []
