"""The command line: dsphnf mock / info, errors as one line with exit status 2; the package's import structure."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dsphnf import mocks
from dsphnf.catalog import read_catalog
from dsphnf.cli import COMMANDS, main



def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *words: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]


# ---------------------------------------------------------------- help
def test_help_mentions_units(capsys):
    rc, out, _ = run_cli(capsys, "--help")
    assert rc == 0 and "kpc" in out and "km/s" in out
    for name in ("demo", "mock", "info"):
        assert name in COMMANDS
        rc, out, _ = run_cli(capsys, name, "--help")
        assert rc == 0 and "kpc" in out and "km/s" in out, name
    rc, out, _ = run_cli(capsys, "mock", "--help")
    assert "Msun/kpc^3" in out and "NonPlumCuspIso" in out


def test_usage_error_is_one_line(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "mock", "NonPlumCuspIso", "-n", "many", "-o", tmp_path / "s.csv")
    assert_one_line_error(rc, err, "invalid int value")
    assert not (tmp_path / "s.csv").exists()


# ---------------------------------------------------------------- mock
def test_mock_round_trip_and_truth(capsys, tmp_path):
    stars, truth = tmp_path / "s.csv", tmp_path / "t.csv"
    rc, out, _ = run_cli(capsys, "mock", "nonplumcuspiso", "-n", 300, "--seed", 5, "-o", stars,
                         "--truth", truth, "--verr", 2.5)
    assert rc == 0 and "300 stars" in out
    assert stars.read_text().splitlines()[0] == "x,y,vz,vz_err"
    cat = read_catalog(stars)
    xv = mocks.sample_stars("NonPlumCuspIso", 300, seed=5, verr=2.5)
    np.testing.assert_allclose(cat.x, xv[:, 0], rtol=1e-9)
    np.testing.assert_allclose(cat.y, xv[:, 1], rtol=1e-9)
    np.testing.assert_allclose(cat.vz, xv[:, 5], rtol=1e-9, atol=1e-8)
    assert np.all(cat.vz_err == 2.5)

    t = np.genfromtxt(truth, delimiter=",", names=True)
    assert t.dtype.names == ("r", "nu", "sigma_r", "beta", "M", "rho")
    model = mocks.get_model("NonPlumCuspIso")
    assert len(t) == 200
    np.testing.assert_allclose([t["r"][0], t["r"][-1]], [0.01 * model.r_star, 10 * model.r_star], rtol=1e-6)
    # the columns are the named quantities: NFW mass and density, the Zhao tracer, isotropy
    np.testing.assert_allclose(t["M"], model.halo.mass(t["r"]), rtol=1e-6)
    np.testing.assert_allclose(t["rho"], model.halo.density(t["r"]), rtol=1e-6)
    np.testing.assert_allclose(t["nu"], model.tracer.density(t["r"]), rtol=1e-6)
    assert np.all(t["beta"] == 0) and np.all((t["sigma_r"] > 3) & (t["sigma_r"] < 20))


def test_mock_without_verr_has_no_error_column(capsys, tmp_path):
    rc, _, _ = run_cli(capsys, "mock", "PlumCoreOm", "-n", 50, "-o", tmp_path / "s.csv")
    assert rc == 0 and (tmp_path / "s.csv").read_text().splitlines()[0] == "x,y,vz"


@pytest.mark.parametrize(
    "args, words",
    [
        (["NoSuchModel", "-n", "10"], ["unknown model 'NoSuchModel'", "NonPlumCuspIso"]),
        (["NonPlumCuspIso", "-n", "0"], ["-n must be at least 1"]),
        (["NonPlumCuspIso", "-n", "10", "--verr", "-1"], ["--verr", "non-negative"]),
    ],
)
def test_mock_bad_input(capsys, tmp_path, args, words):
    rc, _, err = run_cli(capsys, "mock", *args, "-o", tmp_path / "s.csv", "--truth", tmp_path / "t.csv")
    assert_one_line_error(rc, err, *words)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- info
def _number(pattern: str, text: str) -> list[float]:
    m = re.search(pattern, text)
    assert m, text
    return [float(g) for g in m.groups()]


def test_info_recovers_known_dispersion_with_errors(capsys, tmp_path):
    rng = np.random.default_rng(11)
    n, sigma = 3000, 8.0
    err = rng.uniform(1.0, 10.0, n)
    R = 0.3 * np.sqrt(rng.uniform(0, 1, n))  # uniform disc of radius 0.3 kpc: median R = 0.3/sqrt(2)
    phi = rng.uniform(0, 2 * np.pi, n)
    vz = rng.normal(0.0, sigma, n) + rng.normal(0.0, err)
    path = tmp_path / "s.csv"
    path.write_text("x,y,vz,vz_err\n" + "".join(f"{a:.17g},{b:.17g},{c:.17g},{d:.17g}\n" for a, b, c, d in
                                                zip(R * np.cos(phi), R * np.sin(phi), vz, err)))
    rc, out, _ = run_cli(capsys, "info", path)
    assert rc == 0
    assert _number(r"stars\s+(\d+)", out) == [n]
    (rhalf,) = _number(r"R_half\s+([\d.]+) kpc \(membership-weighted median projected radius; the flow's length unit\)",
                       out)
    assert rhalf == pytest.approx(0.3 / np.sqrt(2), rel=0.03)
    assert rhalf == pytest.approx(np.sort(R)[n // 2 - 1], abs=5e-5)  # the lower median of R, as printed (4 digits)
    s, ds = _number(r"sigma_los\s+([\d.]+) \+- ([\d.]+) km/s", out)
    assert abs(s - sigma) < 3 * ds and 0.1 < ds < 0.3
    assert np.std(vz) > sigma + 1.5  # the errors matter: naive dispersion is far off
    m, dm = _number(r"mean vz\s+(-?[\d.]+) \+- ([\d.]+) km/s", out)
    assert abs(m) < 3 * dm


@pytest.mark.parametrize(
    "text, words",
    [
        ("x,y,vz\n" + "0.1,0.2,nan\n", ["row 1, column 'vz'", "not finite"]),
        ("x,q,vz\n1,2,3\n", ["missing column y", "found: 'x', 'q', 'vz'"]),
        ("x,y,vz\n" + "".join(f"{0.01 * i},{0.02 * i},{300 + i % 7}\n" for i in range(40)),
         ["systemic velocity was not removed"]),
        ("x,y,vz\n" + "".join(f"{0.01 * i},{0.02 * i},{i % 7 - 3}\n" for i in range(5)), ["only 5 stars"]),
    ],
)
def test_info_bad_catalogue(capsys, tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    rc, out, err = run_cli(capsys, "info", path)
    assert_one_line_error(rc, err, "bad.csv", *words)
    assert out == ""


def test_info_positions_only(capsys, tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "pos.csv"
    path.write_text("X,Y\n" + "".join(f"{a:.17g},{b:.17g}\n" for a, b in rng.normal(0, 0.2, (30, 2))))
    rc, out, _ = run_cli(capsys, "info", path)
    assert rc == 0 and "positions only" in out and "sigma_los" not in out


def test_info_walker_draco(capsys, reference_file):
    DRACO = reference_file("walker_dwarfs", "dra_spec.dat")
    rc, _, err = run_cli(capsys, "info", DRACO)
    assert_one_line_error(rc, err, "dra_spec.dat", "distance")
    rc, out, _ = run_cli(capsys, "info", DRACO, "--distance", 76)
    assert rc == 0
    (vsys,) = _number(r"systemic velocity (-?[\d.]+) km/s", out)
    assert -295 < vsys < -289  # Draco: v_sys ~ -291 km/s
    s, ds = _number(r"sigma_los\s+([\d.]+) \+- ([\d.]+) km/s", out)
    assert 8.5 < s < 10.0 and ds < 0.5  # Draco: sigma_los ~ 9.1 km/s


# ---------------------------------------------------------------- entry point
def test_console_entry_point_end_to_end(tmp_path):
    script = Path(sys.executable).parent / "dsphnf"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "dsphnf"]
    env_run = lambda *a: subprocess.run(cmd + [str(x) for x in a], capture_output=True, text=True, timeout=120)
    ok = env_run("mock", "PlumCuspIso", "-n", 40, "-o", tmp_path / "s.csv")
    assert ok.returncode == 0, ok.stderr
    info = env_run("info", tmp_path / "s.csv")
    assert info.returncode == 0 and "stars            40" in info.stdout
    bad = env_run("info", tmp_path / "nothing.csv")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [f"dsphnf: error: {tmp_path / 'nothing.csv'}: no such file"]


def test_python_m_dsphnf_is_the_same_command_line():
    done = subprocess.run([sys.executable, "-m", "dsphnf", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("dsphnf ")
    bad = subprocess.run([sys.executable, "-m", "dsphnf", "fit"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- import structure
PACKAGE = Path(__file__).resolve().parents[1] / "dsphnf"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every dsphnf module that ``path`` imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return (found & modules) - {name}


def test_no_import_circle_anywhere_in_the_package():
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: _imports(p, set(files)) for m, p in files.items()}
    assert "dsphnf.validate" in graph["dsphnf.catalog"] and "dsphnf.catalog" not in graph["dsphnf.validate"]
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            assert state.get(n) != 1, f"import circle: {' -> '.join(path[path.index(n):] + [n]) if n in path else n}"
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_validate_imports_without_the_catalogue():
    code = "import sys, dsphnf.validate; print('dsphnf.catalog' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def test_commands_do_not_import_commands():
    names = {p.stem for p in (PACKAGE / "commands").glob("*.py")} - {"__init__"}
    assert set(COMMANDS) == names
    for path in (PACKAGE / "commands").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level != 1, f"{path.name} imports a sibling command (from .{node.module or ''})"
                assert not (node.module or "").startswith("dsphnf.commands"), path.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("dsphnf.commands") for a in node.names), path.name
    cli = (PACKAGE / "cli.py").read_text()
    assert "importlib" not in cli and "from .commands import baseline, calibrate, compare, demo, fit, info, mock" in cli
    assert COMMANDS == ["demo", "mock", "info", "baseline", "compare", "fit", "calibrate", "survey"]  # the order of --help
