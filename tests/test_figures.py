"""`effgan figure`: phase, curve and spectrum figures from sweep (and run) results, headless,
as valid PNG/SVG/PDF files, with the right data and theory overlays; bad input exits 2."""
import json
import math

import numpy as np
import pytest
import xarray as xr

from app.cli import main
from dynamics.knobs import resolve
from dynamics import theory


def _save(ds, path):
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def _axes_attr(*keys):
    return json.dumps([{"key": k} for k in keys])


@pytest.fixture(scope="module")
def phase_nc(tmp_path_factory):
    """2 critics × 4 r × 3 lr.disc × 2 seeds; seeds differ so the mean is distinguishable."""
    r, lr = np.array([0.0, 0.3, 0.6, 0.9]), np.array([0.01, 0.0316, 0.1])
    cov = np.empty((2, 4, 3, 2))
    cov[0] = np.where(r[:, None, None] < 0.5, 8.0, 1.0) + np.array([0.0, -1.0])     # relu
    cov[1] = np.where(r[:, None, None] < 0.2, 8.0, 1.0) + np.array([0.0, -1.0])     # sigmoid
    div = np.zeros(cov.shape, bool)
    div[1, 3, 2, 1] = True                                                           # one diverged seed
    ds = xr.Dataset({"final_modes_covered": (("disc.activation", "kernel.ratio", "lr.disc", "seed"), cov),
                     "final_modes_total": (("disc.activation", "kernel.ratio", "lr.disc", "seed"), np.full(cov.shape, 8)),
                     "final_diverged": (("disc.activation", "kernel.ratio", "lr.disc", "seed"), div)},
                    coords={"disc.activation": ["relu", "sigmoid"], "kernel.ratio": ("kernel.ratio", r, {"scale": "lin"}),
                            "lr.disc": ("lr.disc", lr, {"scale": "log"}), "seed": [1, 2]},
                    attrs={"config": json.dumps(resolve({})),
                           "axes": _axes_attr("disc.activation", "kernel.ratio", "lr.disc")})
    return _save(ds, tmp_path_factory.mktemp("phase") / "phase.nc")


@pytest.fixture(scope="module")
def damping_nc(tmp_path_factory):
    cfg = resolve({"target.kind": "point", "target.radius": 1.0, "target.std": 0.0, "particles": 16,
                   "kernel.ratio": 0.5, "disc.kind": "linear", "lr.disc": 0.01, "lr.gen": 0.1, "init.std": 0.01})
    gc = theory.gamma_c(cfg)
    g = gc * np.geomspace(1 / 8, 8, 7)
    t = np.stack([theory.damping_time(g, cfg), theory.damping_time(g, cfg) + 10], 1).astype(np.int64)
    t[0, 1] = -1                                                                     # never converged: marked
    ds = xr.Dataset({"final_convergence_step": (("reg.strength", "seed"), t)},
                    coords={"reg.strength": ("reg.strength", g, {"scale": "log"}), "seed": [1, 2]},
                    attrs={"config": json.dumps(cfg), "axes": _axes_attr("reg.strength")})
    return _save(ds, tmp_path_factory.mktemp("damping") / "damping.nc"), gc


@pytest.fixture(scope="module")
def spectrum_nc(tmp_path_factory):
    cfg = resolve({"kernel.kind": "relu_ntk", "particles": 64})
    dz = np.array([4, 64, 1024])
    rng = np.random.default_rng(0)
    lam = np.empty((3, 2, 64))
    for i, d in enumerate(dz):
        lam[i, :, 0] = 11.03
        lam[i, :, 1:] = 0.84 + rng.normal(0, 2 / math.sqrt(d), (2, 63)).clip(-0.8, None)
    lam = -np.sort(-lam, -1)
    ds = xr.Dataset({"spectrum": (("kernel.latent_dim", "seed", "eig"), lam)},
                    coords={"kernel.latent_dim": ("kernel.latent_dim", dz, {"scale": "log"}), "seed": [1, 2],
                            "eig": np.arange(64)},
                    attrs={"config": json.dumps(cfg), "axes": _axes_attr("kernel.latent_dim")})
    return _save(ds, tmp_path_factory.mktemp("spectrum") / "spectrum.nc")


def figure(*args) -> int:
    return main(["figure", *map(str, args)])


def _objects(ds_path, kind, **kw):
    from app.plots.figures import figure as build
    from dynamics.sweep import open_results
    return build(open_results(ds_path), kind, **kw)


def test_phase_png_has_one_panel_per_critic_with_seed_means_and_diverged_marks(phase_nc, tmp_path):
    out = tmp_path / "phase.png"
    assert figure(phase_nc, "--kind", "phase", "--metric", "modes_covered", "--out", out) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    import holoviews as hv
    lay = _objects(phase_nc, "phase")
    panels = list(lay)
    assert len(panels) == 2
    meshes = [p if isinstance(p, hv.QuadMesh) else p.get(0) for p in panels]
    titles = [hv.Store.lookup_options("matplotlib", m, "plot").kwargs["title"] for m in meshes]
    assert titles == ["ReLU critic", "sigmoid critic"]
    z = meshes[0].dimension_values(2, flat=False)                     # (lr.disc, kernel.ratio)
    np.testing.assert_allclose(z[:, 0], 7.5)                          # mean of seeds 8 and 7
    np.testing.assert_allclose(z[:, -1], 0.5)
    assert isinstance(panels[1], hv.Overlay) and not isinstance(panels[0], hv.Overlay)
    pts = panels[1].get(1)
    assert pts.dimension_values(0).tolist() == [0.9] and pts.dimension_values(1).tolist() == [0.1]


def test_curve_svg_marks_gamma_c_and_the_linearised_theory(damping_nc, tmp_path):
    path, gc = damping_nc
    out = tmp_path / "damping.svg"
    assert figure(path, "--kind", "curve", "--x", "reg.strength", "--metric", "convergence_step", "--out", out) == 0
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    import holoviews as hv
    ov = _objects(path, "curve", metric="convergence_step")
    curves = {c.label: c for c in ov if type(c) is hv.Curve}
    marker = next(c for label, c in curves.items() if label.startswith(r"$\gamma_c$"))
    np.testing.assert_allclose(marker.dimension_values(0), gc)
    assert "linearised theory" in curves
    mean = curves["mean"].dimension_values(1)
    assert np.isfinite(mean).all() and mean[0] == pytest.approx(theory.damping_time([gc / 8], json.loads(
        xr.open_dataset(path).attrs["config"]))[0])                  # the −1 seed is left out, not averaged in


@pytest.fixture(scope="module")
def stalled_nc(tmp_path_factory):
    """5 γ × 3 seeds, read back as a partly computed store does (floats, NaN = not run): 4 runs
    never converged (−1), one of them diverged, and at γ = 4 no seed converged at all."""
    g = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    t = np.array([[300.0, 320, -1], [150, 160, 170], [90, 95, np.nan], [120, -1, 130], [-1, -1, np.nan]])
    div = np.zeros(t.shape, bool)
    div[3, 1] = True
    dims = ("reg.strength", "seed")
    ds = xr.Dataset({"final_convergence_step": (dims, t), "final_diverged": (dims, div),
                     "final_diverged_step": (dims, np.where(div, 77, -1))},
                    coords={"reg.strength": ("reg.strength", g, {"scale": "log"}), "seed": [1, 2, 3]},
                    attrs={"config": json.dumps(resolve({"steps": 400})), "axes": _axes_attr("reg.strength")})
    return _save(ds, tmp_path_factory.mktemp("stalled") / "stalled.nc")


def test_curve_marks_runs_that_never_converged_at_the_top(stalled_nc, tmp_path):
    out = tmp_path / "stalled.png"
    assert figure(stalled_nc, "--kind", "curve", "--metric", "convergence_step", "--theory", "none",
                  "--out", out) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    import holoviews as hv
    ov = _objects(stalled_nc, "curve", metric="convergence_step", theory="none")
    title = hv.Store.lookup_options("matplotlib", ov, "plot").kwargs["title"]
    assert title.startswith("4 of 13 runs did not converge within 400 steps (1 diverged)")
    marks = {s.label: s for s in ov if type(s) is hv.Scatter and s.label}
    stalled = marks["did not converge within 400 steps (3 runs)"]
    crossed = marks["diverged (1 run)"]
    assert stalled.dimension_values(0).tolist() == [0.25, 4.0] and crossed.dimension_values(0).tolist() == [2.0]
    top = set(stalled.dimension_values(1)) | set(crossed.dimension_values(1))
    assert len(top) == 1 and top.pop() > 320                      # one row above every converged run
    seeds = next(s for s in ov if type(s) is hv.Scatter and not s.label).dimension_values(1)
    assert np.nanmin(seeds) == 90                                  # −1 is never drawn as a value
    mean = next(c for c in ov if type(c) is hv.Curve).dimension_values(1)
    np.testing.assert_allclose(mean[:4], [310, 160, 92.5, 125])   # over the runs that converged
    assert np.isnan(mean[4])


def test_never_diverged_is_not_marked(stalled_nc):
    """The diverged step's −1 means 'never diverged', not a failure: dropped, nothing marked."""
    import holoviews as hv
    ov = _objects(stalled_nc, "curve", metric="diverged_step", spread="none")
    assert not [s for s in ov if type(s) is hv.Scatter and s.label]
    assert hv.Store.lookup_options("matplotlib", ov, "plot").kwargs.get("title", "") == ""
    assert np.nanmax(next(s for s in ov if type(s) is hv.Scatter).dimension_values(1)) == 77


def test_spectrum_pdf_draws_eigenvalues_and_the_two_levels(spectrum_nc, tmp_path):
    out = tmp_path / "spectrum.pdf"
    assert figure(spectrum_nc, "--kind", "spectrum", "--out", out) == 0
    assert out.read_bytes()[:5] == b"%PDF-"
    import holoviews as hv
    left, right = list(_objects(spectrum_nc, "spectrum"))
    levels = sorted(c.dimension_values(1)[0] for c in left if isinstance(c, hv.Curve))
    assert levels == [pytest.approx(1 - 1 / (2 * math.pi)), pytest.approx(1 + 63 / (2 * math.pi))]
    spread = next(c for c in right if isinstance(c, hv.Curve) and c.label == "measured").dimension_values(1)
    assert spread[0] > spread[1] > spread[2]                         # the bulk narrows with d_z


def test_curve_of_run_results_over_steps(tmp_path, capsys):
    run = tmp_path / "run.nc"
    assert main(["run", "--steps", "40", "--seeds", "1,2", "--out", str(run)]) == 0
    out = tmp_path / "run.png"
    assert figure(run, "--kind", "curve", "--x", "step", "--metric", "spread", "--out", out) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_curve_needs_other_axes_selected(phase_nc, tmp_path, capsys):
    out = tmp_path / "c.png"
    assert figure(phase_nc, "--kind", "curve", "--x", "kernel.ratio", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--select: axis disc.activation has 2 values" in err
    assert figure(phase_nc, "--kind", "curve", "--x", "kernel.ratio", "--select", "lr.disc=0.03",
                  "--hue", "disc.activation", "--out", out) == 0
    import holoviews as hv
    ov = _objects(phase_nc, "curve", x="kernel.ratio", hue="disc.activation", select={"lr.disc": 0.03})
    assert sorted(c.label for c in ov if type(c) is hv.Curve) == ["ReLU critic", "sigmoid critic"]


@pytest.mark.parametrize("args,message", [
    (["--kind", "phase", "--out", "{tmp}/x.jpg"], "--out: 'x.jpg' has no known format; allowed a file ending in .png"),
    (["--kind", "phase", "--metric", "modes", "--out", "{tmp}/x.png"], "--metric: 'modes' is not in these results"),
    (["--kind", "heatmap", "--out", "{tmp}/x.png"], "--kind: 'heatmap' is not allowed; allowed phase, curve, spectrum"),
    (["--kind", "phase", "--x", "seedz", "--out", "{tmp}/x.png"], "--x: 'seedz' is not an axis"),
    (["--kind", "phase", "--out", "{tmp}/no/such/dir/x.png"], "--out: folder"),
    (["--kind", "spectrum", "--out", "{tmp}/x.png"], "--metric: 'spectrum' is not a spectrum in these results"),
    (["--kind", "phase", "--panel", "seed", "--out", "{tmp}/x.png"], "--panel: 'seed' is what a figure reduces over"),
    (["--kind", "phase", "--x", "kernel.ratio", "--y", "kernel.ratio", "--out", "{tmp}/x.png"],
     "--y: kernel.ratio is already on another side of the figure"),
    (["--kind", "curve", "--x", "kernel.ratio", "--hue", "seed", "--out", "{tmp}/x.png"],
     "--hue: 'seed' is what a figure reduces over"),
    (["--kind", "phase", "--dpi", "-5", "--out", "{tmp}/x.png"], "--dpi: -5 is not allowed; allowed 10 to 1200"),
    (["--kind", "phase", "--dpi", "100000", "--out", "{tmp}/x.png"], "--dpi: 100000 is not allowed"),
])
def test_bad_figure_input_is_one_line_exit_2(phase_nc, tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert figure(phase_nc, *args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_missing_results_exit_2(tmp_path, capsys):
    assert figure(tmp_path / "nothing", "--out", tmp_path / "x.png") == 2
    assert "RESULTS: " in capsys.readouterr().err


def test_shipped_specs_pass_the_figure_check_and_bad_tables_fail_before_the_sweep(tmp_path, capsys):
    """Every [[figure]] of the shipped specs passes check_spec_figures; a bad table is refused
    before a single chunk runs, naming its spec field."""
    from app.plots.figures import check_spec_figures
    from dynamics.experiments.base import SWEEPS
    from dynamics.sweep import load_spec
    for path in sorted(SWEEPS.glob("*.toml")):
        for quick in (False, True):
            check_spec_figures(load_spec(path, quick=quick))
    base = (SWEEPS / "critical-damping.toml").read_text()
    cases = {'kind = "curve"': ('kind = "pie"', "figure[0].kind: 'pie' is not allowed"),
             'metric = "convergence_step"': ('metric = "nonesuch"', "figure[0].metric: 'nonesuch' is not in this"),
             'x = "reg.strength"': ('x = "reg.strenght"', "figure[0].x: 'reg.strenght' is not an axis"),
             'file = "critical-damping.png"': ('file = "c.jpg"', "figure[0].file: 'c.jpg' has no known format")}
    for old, (new, message) in cases.items():
        spec = tmp_path / "bad.toml"
        spec.write_text(base.replace(old, new))
        out = tmp_path / f"out-{len(message)}"
        assert main(["sweep", str(spec), "--quick", "--out", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
        assert not (out / "results.zarr").exists()                      # nothing ran


def test_a_metric_missing_from_a_one_knob_sweep_points_at_the_curve(phase_nc, tmp_path, capsys):
    """The default --kind phase on results that sweep one knob (a reproduce output) fails in one
    line that says how to draw them: --kind curve over that knob."""
    assert figure(phase_nc, "--select", "lr.disc=0.03", "--select", "disc.activation=relu", "--metric", "modes",
                  "--out", tmp_path / "x.png") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(a sweep over one knob: --kind curve --x kernel.ratio --metric NAME)" in err, err
