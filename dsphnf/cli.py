"""The ``dsphnf`` command line.

Each subcommand lives in ``dsphnf.commands.<name>`` and provides
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
Errors that users can cause are raised as :class:`dsphnf.errors.DsphnfError`
(or ``ValueError``/``OSError`` from reading input) and reported here as one line
with exit status 2; nothing is written in that case.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import __version__
from .commands import baseline, calibrate, compare, demo, fit, info, mock, survey
from .errors import DsphnfError

__all__ = ["main", "build_parser", "COMMANDS"]

#: Subcommand modules, in the order shown by --help.
_MODULES = (demo, mock, info, baseline, compare, fit, calibrate, survey)
#: Subcommand names, in the order shown by --help.
COMMANDS: list[str] = [m.__name__.rsplit(".", 1)[1] for m in _MODULES]

DESCRIPTION = """\
Dark-matter density profiles of dwarf spheroidal galaxies from star catalogues
with sky positions x, y [kpc] and line-of-sight velocities vz [km/s].

Units everywhere: kpc, km/s, Msun; densities in Msun/kpc^3; the stellar
number density nu in kpc^-3 normalised to one star.
"""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line (exit status 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dsphnf", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"dsphnf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error: return its status
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (DsphnfError, ValueError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"dsphnf: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dsphnf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
