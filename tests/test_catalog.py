"""Star catalogues, their file formats and validation (dsphnf.catalog, dsphnf.formats, dsphnf.validate)."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import dsphnf.formats
from dsphnf.catalog import Catalog, read_catalog
from dsphnf.constants import ARCMIN_PER_RAD
from dsphnf.errors import CatalogError
from dsphnf.formats import Parsed, read_gaia_challenge
from dsphnf.kinematics import ml_dispersion

NPCI = ("gaia_challenge", "NonPlumCuspIso", "gs100_bs050_rcrs025_rarcinf_cusp_0064mpc3_df_1000_0")


def stars(n: int = 200, seed: int = 1, sigma: float = 8.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(0, 0.3, n),
        "y": rng.normal(0, 0.3, n),
        "vz": rng.normal(0, sigma, n),
        "vz_err": rng.uniform(0.5, 3.0, n),
        "p_member": rng.uniform(0.2, 1.0, n),
    }


def write_csv(path: Path, cols: dict, header: list[str] | None = None) -> Path:
    header = header or list(cols)
    rows = zip(*[[repr(float(v)) for v in cols[k]] for k in cols])
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return path


# ---------------------------------------------------------------- round trips
def test_csv_round_trip_keeps_every_column(tmp_path):
    cols = stars()
    cat = Catalog(**cols, source="mem")
    cat.to_csv(tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == "x,y,vz,vz_err,p_member"
    back = read_catalog(tmp_path / "s.csv")
    for k, v in cols.items():
        np.testing.assert_allclose(getattr(back, k), v, rtol=1e-9)
    assert back.n == 200 and back.has_velocities
    assert back.n_eff == pytest.approx(cols["p_member"].sum())
    assert back.n_kish == pytest.approx(cols["p_member"].sum() ** 2 / np.sum(cols["p_member"] ** 2))


def test_positions_only_and_aliases(tmp_path):
    cols = stars()
    path = write_csv(tmp_path / "p.csv", {"X": cols["x"], "Y_kpc": cols["y"], "ra": cols["vz"]})
    cat = read_catalog(path)
    assert not cat.has_velocities and cat.vz is None
    assert cat.meta["ignored_columns"] == ["ra"]
    with pytest.raises(CatalogError, match="missing column vz"):
        read_catalog(path, require_velocity=True)


def test_ecsv_and_fits_readers_convert_units(tmp_path):
    import astropy.units as u
    from astropy.table import Table

    cols = stars()
    t = Table({"x": cols["x"] * 1000 * u.pc, "y": cols["y"] * u.kpc, "VZ": cols["vz"] * u.km / u.s,
               "vz_err": cols["vz_err"], "ID": np.arange(200)})
    for name in ("s.ecsv", "s.fits"):
        t.write(tmp_path / name)
        cat = read_catalog(tmp_path / name)
        np.testing.assert_allclose(cat.x, cols["x"], rtol=1e-12)
        np.testing.assert_allclose(cat.vz, cols["vz"], rtol=1e-12)
        np.testing.assert_allclose(cat.vz_err, cols["vz_err"], rtol=1e-12)
        assert cat.p_member is None and cat.meta["ignored_columns"] == ["ID"]
    bad = Table({"x": cols["x"] * u.deg, "y": cols["y"] * u.kpc, "vz": cols["vz"]})
    bad.write(tmp_path / "deg.ecsv")
    with pytest.raises(CatalogError, match=r"deg\.ecsv: column 'x' has unit deg"):
        read_catalog(tmp_path / "deg.ecsv")


def test_subset_and_bootstrap():
    cat = Catalog(**stars(), source="mem")
    sub = cat.subset(cat.R < 0.3)
    assert sub.n == np.count_nonzero(cat.R < 0.3) and np.all(sub.R < 0.3)
    b1, b2 = cat.bootstrap(np.random.default_rng(3)), cat.bootstrap(np.random.default_rng(3))
    np.testing.assert_array_equal(b1.vz, b2.vz)
    assert b1.n == cat.n and len(np.unique(b1.x)) < cat.n  # drawn with replacement
    assert set(b1.x) <= set(cat.x)


# ---------------------------------------------------------------- summary
def test_summary_uses_the_shared_statistics_and_the_flows_length_unit():
    from dsphnf.catalog import format_summary
    from dsphnf.flows.standardise import standardise

    cols = stars(n=301)
    cat = Catalog(**cols, source="mem")
    s = cat.summary()
    # R_half is the flow's length unit L, and the hand-computed weighted median of R
    _, scales = standardise(cat)
    assert s["R_half"] == scales["L"]
    R, w = np.hypot(cols["x"], cols["y"]), cols["p_member"]
    order = np.argsort(R)
    below = np.cumsum(w[order]) < 0.5 * w.sum()
    assert s["R_half"] == R[order][np.count_nonzero(below)]
    assert np.sum(w[R < s["R_half"]]) < 0.5 * w.sum() <= np.sum(w[R <= s["R_half"]])
    assert s["v_mean"] == pytest.approx(ml_dispersion(cols["vz"], cols["vz_err"], w)[0])
    text = format_summary(cat)
    assert f"R_half           {s['R_half']:.4f} kpc" in text and "the flow's length unit" in text
    assert "Kish" in text and "velocity errors removed" in text


def test_validated_checks_the_columns():
    cols = stars()
    cat = Catalog(**cols, source="mem")
    assert cat.validated() is cat
    cols["vz"][3] = np.nan
    with pytest.raises(CatalogError, match=r"mem: row 13, column 'vz'"):
        Catalog(**cols, source="mem").validated(rows=np.arange(10, 210))


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda c: c["vz"].__setitem__(4, np.nan), r"row 5, column 'vz': value nan is not finite"),
        (lambda c: c["x"].__setitem__(0, np.inf), r"row 1, column 'x': value inf is not finite"),
        (lambda c: c["vz_err"].__setitem__(9, -1.0), r"row 10, column 'vz_err': negative velocity error"),
        (lambda c: c["p_member"].__setitem__(2, 1.5), r"row 3, column 'p_member': membership 1.5 is outside"),
        (lambda c: c["vz"].__iadd__(250.0), r"systemic velocity was not removed; subtract it"),
        (lambda c: [c[k].__setitem__(7, c[k][3]) for k in ("x", "y", "vz")], r"rows 4 and 8 are the same star"),
        (lambda c: [c[k].__imul__(1000.0) for k in ("x", "y")], r"must be in kpc"),
    ],
)
def test_bad_values_name_row_or_column(tmp_path, mutate, pattern):
    cols = stars()
    mutate(cols)
    path = write_csv(tmp_path / "bad.csv", cols)
    with pytest.raises(CatalogError, match=pattern) as exc:
        read_catalog(path)
    assert "bad.csv" in str(exc.value) and "\n" not in str(exc.value)


def test_small_systemic_offset_is_caught_relative_to_dispersion(tmp_path):
    cols = stars(sigma=2.0)
    cols["vz"] += 10.0  # < 50 km/s but 5 x the dispersion
    with pytest.raises(CatalogError, match="systemic"):
        read_catalog(write_csv(tmp_path / "s.csv", cols))
    cols["vz"] -= 10.0
    assert read_catalog(write_csv(tmp_path / "s.csv", cols)).n == 200


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("", r"file is empty"),
        ("x,y,vz\n", r"header but no data rows"),
        ("1,2,3\n4,5,6\n", r"first line must be a header"),
        ("x,yy,vz\n1,2,3\n", r"missing column y \(found: 'x', 'yy', 'vz'\)"),
        ("x,y,vz,v_los\n1,2,3,4\n", r"columns 'vz', 'v_los' all look like 'vz'"),
        ("x,y,vz\n1,2,3\n1,abc,3\n", r"row 2, column 'y': 'abc' is not a number"),
        ("x,y,vz\n1,2,3\n1,,3\n", r"row 2, column 'y': an empty value is not a number"),
        ("x,y,vz\n1,2,3\n1,2\n", r"row 2 has 2 fields, the header has 3"),
        ("x,y,vz_err\n1,2,3\n", r"missing column vz"),
    ],
)
def test_malformed_csv(tmp_path, text, pattern):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(CatalogError, match=pattern):
        read_catalog(path)


def test_too_few_stars_counts_members(tmp_path):
    cols = {k: v[:19] for k, v in stars().items()}
    with pytest.raises(CatalogError, match=r"only 19 stars; at least 20"):
        read_catalog(write_csv(tmp_path / "few.csv", cols))
    cols = stars(n=30)
    cols["p_member"][:15] = 0.0
    with pytest.raises(CatalogError, match=r"only 15 stars with non-zero membership \(of 30 rows\)"):
        read_catalog(write_csv(tmp_path / "few.csv", cols))


def test_file_level_errors(tmp_path):
    with pytest.raises(CatalogError, match=r"unknown catalogue extension '\.txt'"):
        read_catalog(tmp_path / "s.txt")
    with pytest.raises(CatalogError, match="no such file"):
        read_catalog(tmp_path / "missing.csv")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(CatalogError, match="is a folder"):
        read_catalog(tmp_path / "folder.csv")
    (tmp_path / "junk.fits").write_bytes(b"not a fits file at all" * 10)
    with pytest.raises(CatalogError, match=r"junk\.fits: cannot read as FITS"):
        read_catalog(tmp_path / "junk.fits")
    (tmp_path / "odd.dat").write_text("1 2 3 4\n" * 30)
    with pytest.raises(CatalogError, match=r"has 4 columns; expected 6 .* or 25"):
        read_catalog(tmp_path / "odd.dat")
    (tmp_path / "g.dat").write_text("0.1 0.2 0.3 1 2 3\n" * 5 + "0.1 0.2 0.3 1 2 x\n")
    with pytest.raises(CatalogError, match=r"row 6, column 'vz': 'x' is not a number"):
        read_catalog(tmp_path / "g.dat")


# ---------------------------------------------------------------- formats -> catalogue
def test_formats_do_not_know_the_catalogue():
    """dsphnf.catalog imports dsphnf.formats, never the other way round (not even lazily)."""
    tree = ast.parse(Path(dsphnf.formats.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {f"{n.module or ''}.{a.name}" if n.level else f"{n.module}.{a.name}"
              for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not any("catalog" in name for name in names), names


def test_parsed_walker_rows_reach_the_validation_messages(tmp_path):
    """Rows dropped by the Walker parser do not shift the file rows named by the validation."""
    t = np.zeros((30, 25))
    t[:, 2], t[:, 3] = np.linspace(1.0, 20.0, 30), 1.0
    t[:, 6], t[:, 7], t[:, 15] = np.resize([-280.0, -300.0], 30), 2.0, 1.0
    t[:3, 15] = 0.0  # rows 1-3: non-members, dropped
    t[19, [2, 6]] = t[9, [2, 6]]  # row 20 repeats the star of row 10
    path = tmp_path / "w.dat"
    np.savetxt(path, t)
    with pytest.raises(CatalogError, match=r"w\.dat: rows 10 and 20 are the same star"):
        read_catalog(path, distance=76.0)
    parsed = dsphnf.formats.read_walker(path, 76.0)
    assert isinstance(parsed, Parsed) and parsed.rows.tolist() == list(range(4, 31))
    assert parsed.meta["n_dropped_nonmember"] == 3 and "x" in parsed.columns
    t[19, 2] = 20.5  # a different star again
    np.savetxt(path, t)
    cat = Catalog.from_parsed(dsphnf.formats.read_walker(path, 76.0))
    assert cat.n == 27 and cat.source == str(path)
    np.testing.assert_allclose(cat.x, t[3:, 2] * 76.0 / ARCMIN_PER_RAD)
    np.testing.assert_allclose(cat.vz, t[3:, 6] - cat.meta["v_sys_removed_kms"])


# ---------------------------------------------------------------- reference data
def test_gaia_challenge_projection_and_errors(reference_file):
    exact = reference_file(*NPCI[:-1], NPCI[-1] + ".dat")
    parsed, xv = read_gaia_challenge(exact)
    cat = Catalog.from_parsed(parsed)
    assert xv.shape == (1000, 6) and cat.n == 1000 and cat.vz_err is None
    np.testing.assert_array_equal(cat.vz, xv[:, 5])
    np.testing.assert_array_equal(cat.R, np.hypot(xv[:, 0], xv[:, 1]))
    # projected half-number radius of the benchmark: 0.190 kpc (data/README), sampling error ~4%
    assert cat.summary()["R_half"] == pytest.approx(0.190, rel=0.06)
    err = read_catalog(reference_file(*NPCI[:-1], NPCI[-1] + "_err.dat"))
    assert np.all(err.vz_err == 2.0)
    np.testing.assert_array_equal(err.x, cat.x)
    # the _err file's vz differ from the exact ones by N(0, 2 km/s)
    d = err.vz - cat.vz
    assert abs(d.std() - 2.0) < 0.15 and abs(d.mean()) < 0.2


def test_walker_draco(reference_file):
    DRACO = reference_file("walker_dwarfs", "dra_spec.dat")
    with pytest.raises(CatalogError, match=r"dra_spec\.dat: .*give the distance"):
        read_catalog(DRACO)
    cat = read_catalog(DRACO, distance=76.0)
    raw = np.loadtxt(DRACO)
    keep = raw[:, 15] >= 1e-3
    assert cat.n == np.count_nonzero(keep) == 546
    assert cat.meta["n_rows"] == 1565 and cat.meta["n_dropped_nonmember"] == 1565 - 546
    # systemic velocity (reference -291 km/s) was removed
    assert -295 < cat.meta["v_sys_removed_kms"] < -289
    np.testing.assert_allclose(cat.vz, raw[keep, 6] - cat.meta["v_sys_removed_kms"])
    np.testing.assert_allclose(cat.x, raw[keep, 2] * 76.0 / ARCMIN_PER_RAD)
    s = cat.summary()
    assert abs(s["v_mean"]) < 2 * s["v_mean_err"]
    assert 480 < s["n_eff"] < 520
    # Draco: sigma_los ~ 9.1 km/s (Walker et al. 2015), half-light radius ~ 0.2 kpc
    assert 8.5 < s["sigma_los"] < 10.0 and 0.2 < s["sigma_los_err"] < 0.5
    assert 0.15 < s["R_half"] < 0.25
