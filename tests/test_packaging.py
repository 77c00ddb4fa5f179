"""The Binder environment (environment.yml) must describe the pip environment."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: conda-forge names of packages whose PyPI name differs.
CONDA_NAMES = {"torch": "pytorch-cpu"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower()


def _pyproject_deps() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += extra
    return {CONDA_NAMES.get(_name(r), _name(r)) for r in reqs}


def _environment_deps() -> set[str]:
    names = set()
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+.*)$", line)
        if not m or line.strip().endswith(":"):
            continue
        names.add(_name(m.group(1)))
    return names - {"python", "pip", "conda-forge"}


def test_environment_matches_pyproject() -> None:
    assert _environment_deps() == _pyproject_deps()


def test_torch_range_is_broad_and_setup_pins_cpu_build() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch_req = [r for r in meta["dependencies"] if _name(r) == "torch"]
    assert torch_req == ["torch>=2.2"]
    assert 'torch==2.13.0' in (ROOT / "Makefile").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    first_block = readme.split("```")[1]
    commands = [ln.split("#")[0].strip() for ln in first_block.splitlines()[1:] if ln.strip()]
    assert commands == ["make demo", "make test"]
    assert "make test" in ci
