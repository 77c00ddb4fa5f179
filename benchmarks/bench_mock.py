"""Benchmark of mock drawing (not a test): 1e5 stars per distribution-function family.

For each family (isotropic, Osipkov-Merritt, constant beta < 0, constant
beta > 0, Cuddeford) and a two-population mixture, times

1. building the distribution function(s) (inversion and positivity check),
2. sampling the 6-D stars,
3. the whole ``draw_mock`` (catalogue and Jeans truth),

each in a fresh DF cache, and prints a Markdown table.  The target is
<= 30 s per model for 1e5 stars on a 2-core CPU.

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_mock.py [-n N] [--seed S]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from dsphnf import dwarf
from dsphnf.mocks import draw_mock
from dsphnf.provenance import cpu_label

MODELS = [  # label, halo, tracer, anisotropy
    ("isotropic", "nfw:6.4e7,1", "zhao:0.25,2,5,0.1", "isotropic"),
    ("om", "burkert:4e8,1", "plummer:0.25", "om:0.3"),
    ("constant -0.5", "einasto:2e7,1,0.17", "plummer:0.25", "constant:-0.5"),
    ("constant +0.25", "nfw:6.4e7,1", "zhao:0.25,2,5,1", "constant:0.25"),
    ("constant -1", "zhao:1e8,1.5,2,4,0.5", "plummer:0.25", "constant:-1"),
    ("cuddeford", "burkert:4e8,1", "zhao:0.25,2,5,1", "cuddeford:0.3,0.4"),
    ("mixture", "burkert:1e8,2", "0.3*plummer:0.15+0.7*zhao:0.6,2,5,0.5", "isotropic;om:0.9"),
]


def bench(n: int, seed: int) -> list[tuple[str, str, float, float, float]]:
    rows = []
    for label, halo, tracer, aniso in MODELS:
        dwarf._df.cache_clear()
        t0 = time.perf_counter()
        model = dwarf.build_model(halo, tracer, aniso)
        t1 = time.perf_counter()
        dwarf.sample_model(model, n, np.random.default_rng(seed))
        t2 = time.perf_counter()
        dwarf._df.cache_clear()
        t3 = time.perf_counter()
        draw_mock(n=n, seed=seed, halo=halo, tracer=tracer, anisotropy=aniso)
        t4 = time.perf_counter()
        rows.append((label, model.name, t1 - t0, t2 - t1, t4 - t3))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="stars per model (default 1e5)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"# bench_mock: {args.n} stars per model; {cpu_label()}, "
          f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n")
    print("| family | model | DF build [s] | sampling [s] | draw_mock total [s] |")
    print("|---|---|---:|---:|---:|")
    for label, name, build, sample, total in bench(args.n, args.seed):
        print(f"| {label} | `{name}` | {build:.2f} | {sample:.2f} | {total:.2f} |")


if __name__ == "__main__":
    main()
