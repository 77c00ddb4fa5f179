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
	# Fast mode (DSPHNF_FAST=1) cuts training steps in the notebooks; the
	# rendered book (make book) runs them in full.
	DSPHNF_FAST=1 MPLBACKEND=Agg $(PY) -m pytest -q -p no:cacheprovider --durations=15 --nbval-lax --doctest-modules dsphnf tests book

book: setup
	# no MPLBACKEND: the kernels must use the inline backend, or the figures are lost
	env -u MPLBACKEND .venv/bin/jupyter-book build . --warningiserror --keep-going
	$(PY) scripts/check_book.py

clean:
	rm -rf _build demo_out
