"""One figure style for the package and the book.

Figures are drawn at the width of a book column (at most 7.2 inches), so that
what is written in points is what the reader sees: at most three panels in a
row, fonts of 10 pt and legends and tick labels of 9 pt, 150 dpi for the
notebook (inline) figures and for saved files alike.

``use()`` sets the matplotlib defaults once, at the top of a notebook or a
script; ``figure(ncols, nrows)`` makes a figure of that many panels, sized to
the column and laid out by matplotlib's constrained layout (colour bars,
labels and legends do not overlap the neighbouring panels).
"""
from __future__ import annotations

from typing import Any

import matplotlib as mpl

__all__ = ["DPI", "FONT_PT", "SMALL_PT", "MAX_COLUMNS", "COLUMN_WIDTH_IN", "use", "figure", "figure_size"]

#: Resolution of inline and saved figures [dots per inch].
DPI = 150
#: Font size of labels and titles [pt].
FONT_PT = 10.0
#: Font size of legends and tick labels [pt]; nothing smaller is used.
SMALL_PT = 9.0
#: The most panels a figure puts side by side.
MAX_COLUMNS = 3
#: Width of a book column [inch]: a figure no wider is shown at its true size.
COLUMN_WIDTH_IN = 7.2
#: Width [inch] of a figure of 1, 2 and 3 panels in a row.
_WIDTHS = {1: 5.0, 2: COLUMN_WIDTH_IN, 3: COLUMN_WIDTH_IN}
#: Height [inch] of one row of panels, by the number of panels in the row.
_ROW_HEIGHTS = {1: 3.4, 2: 3.0, 3: 2.6}

RC: dict[str, Any] = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "savefig.bbox": "tight",
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": SMALL_PT,
    "ytick.labelsize": SMALL_PT,
    "legend.fontsize": SMALL_PT,
    "legend.title_fontsize": SMALL_PT,
    "legend.framealpha": 0.85,
    "figure.figsize": (_WIDTHS[1], _ROW_HEIGHTS[1]),
    "lines.linewidth": 1.5,
    "image.cmap": "viridis",
}


def use() -> None:
    """Set the dsphnf figure style as the matplotlib defaults.

    Call once after importing ``matplotlib.pyplot`` (in a notebook, after the
    inline backend is active, so that the inline figures get the same dpi).

    Examples
    --------
    >>> import matplotlib
    >>> use()
    >>> matplotlib.rcParams["savefig.dpi"] >= 150, matplotlib.rcParams["legend.fontsize"] >= 9
    (True, True)
    """
    mpl.rcParams.update(RC)


def figure_size(ncols: int = 1, nrows: int = 1) -> tuple[float, float]:
    """(width, height) [inch] of a figure of ``nrows`` x ``ncols`` panels.

    Examples
    --------
    >>> figure_size(1)
    (5.0, 3.4)
    >>> figure_size(3, 2)
    (7.2, 5.2)
    """
    if not 1 <= ncols <= MAX_COLUMNS:
        raise ValueError(f"a figure has 1 to {MAX_COLUMNS} panels in a row, got ncols={ncols}; "
                         "put further panels in another row (nrows) or another figure")
    if nrows < 1:
        raise ValueError(f"nrows must be at least 1, got {nrows}")
    return _WIDTHS[ncols], round(_ROW_HEIGHTS[ncols] * nrows, 2)


def figure(ncols: int = 1, nrows: int = 1, *, height: float | None = None, **subplots_kw: Any):
    """A figure of ``nrows`` x ``ncols`` panels (at most three in a row), column-wide.

    Parameters
    ----------
    ncols, nrows : int
        Panels per row (1 to 3) and rows.
    height : float, optional
        Total height [inch] instead of the default for the panel count.
    **subplots_kw
        Passed on to :func:`matplotlib.pyplot.subplots` (``sharex``,
        ``gridspec_kw``, ...).

    Returns
    -------
    (Figure, Axes or array of Axes)
        As :func:`matplotlib.pyplot.subplots` returns them, with constrained layout.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> fig, ax = figure(3)
    >>> len(ax), fig.get_size_inches().tolist()
    (3, [7.2, 2.6])
    >>> figure(4)
    Traceback (most recent call last):
    ...
    ValueError: a figure has 1 to 3 panels in a row, got ncols=4; put further panels in another row (nrows) or another figure
    """
    import matplotlib.pyplot as plt

    width, default_height = figure_size(ncols, nrows)
    subplots_kw.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(width, height or default_height), **subplots_kw)
