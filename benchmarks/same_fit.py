"""Whether two runs of ``bench_flow.py`` (their ``--json`` files) gave the same fit bit for bit (not a test).

Prints one line: the same rho and steps, or how they differ. Exit status 0 either way (a report, not a check).

Usage::

    python benchmarks/same_fit.py A.json B.json
"""
from __future__ import annotations

import json
import sys


def first(path: str) -> dict:
    data = json.load(open(path))
    return data[0] if isinstance(data, list) else data


def main() -> None:
    a, b = first(sys.argv[1]), first(sys.argv[2])
    if a["rho"] == b["rho"] and a["steps"] == b["steps"]:
        print("same rho and steps, bit for bit")
        return
    print(f"differ: steps {a['steps']} / {b['steps']}, median abs dex 0.1-1 kpc "
          f"{a['median_abs_dex_0.1_1']:.4f} / {b['median_abs_dex_0.1_1']:.4f}")


if __name__ == "__main__":
    main()
