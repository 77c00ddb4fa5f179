# dsphnf developer entry points.  `make demo` and `make test` are the two
# commands the README opens with; both build .venv on first use.
PY := .venv/bin/python

.PHONY: setup demo test book clean

.venv/.installed: pyproject.toml Makefile
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# CPU torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test,book,ray]"
	touch $@

setup: .venv/.installed

demo: setup
	.venv/bin/dsphnf demo -o demo_out

test: setup
	# Unit tests, the package's doctests and every chapter as a test (nbval), in fast
	# mode (DSPHNF_FAST=1: fewer training steps and shorter chains).
	DSPHNF_FAST=1 MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider --durations=15 --doctest-modules --nbval-lax tests dsphnf book
	# The book itself, built in fast mode: any Sphinx warning fails it, and
	# scripts/check_book.py then fails on a badly rendered page (missing figures, paths,
	# developer words).  The fast build has its own folder, emptied first: jupyter-cache
	# keys on the code cells only, so a stale cache would hide a change in dsphnf; and
	# `make book` must never pick up fast-mode outputs.  No MPLBACKEND: the kernels need
	# the inline backend for figures.
	rm -rf _build/fast
	env -u MPLBACKEND DSPHNF_FAST=1 .venv/bin/jupyter-book build . --path-output _build/fast --warningiserror
	$(PY) scripts/check_book.py --build _build/fast/_build

book: setup
	# no MPLBACKEND: the kernels must use the inline backend, or the figures are lost
	env -u MPLBACKEND .venv/bin/jupyter-book build . --warningiserror --keep-going
	$(PY) scripts/check_book.py

clean:
	rm -rf _build demo_out
