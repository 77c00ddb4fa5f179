"""scripts/check_book.py: the page checks catch machine paths and developer artefacts, and pass clean text."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_book.py"


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("check_book", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("text", [
    "read /work/shared/data/gaia_challenge/x.dat",
    "saved to /home/alice/out",
    "cache in /tmp/abc",
    "see /root/.cache",
    r"C:\Users\bob\stars.csv",
    "np.float64(0.9991)",
    "as in DESIGN.md, step 4",
    "benchmarks/RESULTS.md",
    "the first result of the seed talk",
    "The Seed's cure",
    "fast mode: False",
    "read from ../shared/data",
])
def test_artefacts_are_reported(check, text) -> None:
    assert check.text_problems(f"Some prose. {text} More prose.", "page.html")


@pytest.mark.parametrize("text", [
    "Units: kpc, km/s. The paper (arXiv:2505.00763) fits 1000 stars with seed 0.",
    "Launch on https://mybinder.org/v2/gh/OWNER/dsphnf/HEAD?labpath=book/05.ipynb",
    "dsphnf fit stars.csv -o fit_out; the columns x, y [kpc], vz [km/s]",
    "log10(rho / rho_true) = 0.062 at r = 0.1 kpc",
])
def test_clean_text_passes(check, text) -> None:
    assert check.text_problems(text, "page.html") == []


def test_visible_text_drops_markup_and_scripts(check) -> None:
    html = '<p>a &amp; b</p><script>var p = "/work/x";</script><img src="/tmp/y.png"><span>c</span>'
    text = check.visible_text(html)
    assert "a & b" in text and "c" in text
    assert check.text_problems(text, "p") == []


def test_png_width_reads_the_header(check, tmp_path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(5.0, 3.0))
    fig.savefig(tmp_path / "f.png", dpi=150)
    fig.savefig(tmp_path / "g.png", dpi=90)
    plt.close(fig)
    assert check.png_width(tmp_path / "f.png") == 750
    assert check.png_width(tmp_path / "g.png") == 450 < check.MIN_FIGURE_PX
    (tmp_path / "h.svg").write_text("<svg/>")
    assert check.png_width(tmp_path / "h.svg") is None
