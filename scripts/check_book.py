"""Check that `jupyter-book build .` produced clean, readable HTML pages.

Reads _toc.yml, and for each listed file expects _build/html/<file>.html to
exist, to be non-trivial, to contain no execution-error traceback, and (for
the numbered chapters) to show figures whose image files exist. The text a
reader sees (HTML tags removed) must name no path of any machine (/work/,
/home/, /tmp/, /root/, /Users/, C:\\) and no repository internals or project
history (DESIGN.md, RESULTS.md, "seed talk", "the seed's", numpy reprs such
as np.float64(...), "fast mode: False", ../shared); figures must be at least
600 px wide (150 dpi, dsphnf.style).  `--build DIR` checks another build
folder (default _build).
Exits 1 with one line per problem otherwise.
"""
from __future__ import annotations

import argparse
import re
import struct
import sys
from html import unescape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Absolute paths of a build machine: they must never reach a page.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/work/|/home/|/tmp/|/root/|/Users/|/private/var/|[A-Z]:\\Users)")
#: Repository internals, project history and developer output a reader has no use for.
BANNED = ("DESIGN.md", "RESULTS.md", "seed talk", "the seed's", "np.float64(", "np.float32(", "np.int64(",
          "fast mode: False", "fast mode: True", "../shared")


def visible_text(html: str) -> str:
    """The text of a page as a reader sees it: no scripts, styles or tags, entities decoded."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    return unescape(re.sub(r"<[^>]+>", "", html))


def text_problems(text: str, page: str) -> list[str]:
    """Absolute paths and banned words in the visible text of one page."""
    problems = []
    for m in ABSOLUTE_PATH.finditer(text):
        context = text[max(0, m.start() - 30):m.end() + 30].replace("\n", " ")
        problems.append(f"absolute path in {page}: ...{context}...")
    low = text.lower()
    for word in BANNED:
        n = low.count(word.lower())
        if n:
            problems.append(f"{word!r} appears {n} time(s) in {page}")
    return problems


#: Narrowest figure [px]: at 150 dpi even a single small panel is wider.
MIN_FIGURE_PX = 600


def png_width(path: Path) -> int | None:
    """Width [px] of a PNG file from its header, or None for other files."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">I", head[16:20])[0]


def shown(path: Path) -> str:
    """A path as printed in a problem: relative to the checkout when inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def chapters() -> list[str]:
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"^\s*(?:root|-\s*file)\s*:\s*(\S+)", toc, flags=re.M)
    return list(dict.fromkeys(files))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="_build", help="the build folder holding html/ (default _build)")
    build = ROOT / parser.parse_args(argv).build
    problems = []
    for ch in chapters():
        html = build / "html" / f"{ch}.html"
        if not html.exists():
            problems.append(f"missing page: {shown(html)}")
            continue
        text = html.read_text(errors="replace")
        if len(text) < 2000:
            problems.append(f"suspiciously small page: {shown(html)}")
        if "Traceback (most recent call last)" in text or 'class="output traceback' in text:
            problems.append(f"execution error shown in {shown(html)}")
        problems += text_problems(visible_text(text), str(shown(html)))
        # every numbered chapter draws figures; none means the kernels ran without the
        # inline backend (e.g. MPLBACKEND=Agg in the environment) and the book lost them
        if re.match(r"book/\d", ch):
            # figures of the notebooks' outputs (not the theme's logos and buttons)
            imgs = [src for src in re.findall(r'<img[^>]+src="([^"]+)"', text) if "_images/" in src]
            if not imgs:
                problems.append(f"no figures in {shown(html)}")
            for src in imgs:
                if src.startswith(("http", "data:")):
                    continue
                if not (html.parent / src).exists():
                    problems.append(f"missing image {src} in {shown(html)}")
                elif (width := png_width(html.parent / src)) is not None and width < MIN_FIGURE_PX:
                    problems.append(f"figure {src} in {shown(html)} is {width} px wide "
                                    f"(< {MIN_FIGURE_PX}: drawn below 150 dpi? call dsphnf.style.use())")
    for p in problems:
        print(p)
    print(f"checked {len(chapters())} chapters: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
