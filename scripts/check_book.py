"""Check that `jupyter-book build .` produced an HTML page for every chapter.

Reads _toc.yml, and for each listed file expects _build/html/<file>.html to
exist, to be non-trivial, to contain no execution-error traceback, and (for
the numbered chapters) to show figures whose image files exist.
Exits 1 with one line per problem otherwise.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def chapters() -> list[str]:
    toc = (ROOT / "_toc.yml").read_text()
    files = re.findall(r"^\s*(?:root|-\s*file)\s*:\s*(\S+)", toc, flags=re.M)
    return list(dict.fromkeys(files))


def main() -> int:
    problems = []
    for ch in chapters():
        html = ROOT / "_build" / "html" / f"{ch}.html"
        if not html.exists():
            problems.append(f"missing page: {html.relative_to(ROOT)}")
            continue
        text = html.read_text(errors="replace")
        if len(text) < 2000:
            problems.append(f"suspiciously small page: {html.relative_to(ROOT)}")
        if "Traceback (most recent call last)" in text or 'class="output traceback' in text:
            problems.append(f"execution error shown in {html.relative_to(ROOT)}")
        # every numbered chapter draws figures; none means the kernels ran without the
        # inline backend (e.g. MPLBACKEND=Agg in the environment) and the book lost them
        if re.match(r"book/\d", ch):
            imgs = re.findall(r'<img[^>]+src="([^"]+)"', text)
            if not imgs:
                problems.append(f"no figures in {html.relative_to(ROOT)}")
            for src in imgs:
                if not src.startswith(("http", "data:")) and not (html.parent / src).exists():
                    problems.append(f"missing image {src} in {html.relative_to(ROOT)}")
    for p in problems:
        print(p)
    print(f"checked {len(chapters())} chapters: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
