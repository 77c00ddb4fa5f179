"""``python -m dsphnf``: the same command line as the ``dsphnf`` entry point.

For environments where the console script is not on the PATH (a notebook
kernel, a cluster job that calls one interpreter).
"""
import sys

from .cli import main

sys.exit(main())
