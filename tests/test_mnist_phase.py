"""The mnist preset (the authors' protocol, issue 15) and the `mnist-phase` experiment: its grids,
its summary, and a tiny run through the experiment's own code path (data + figure)."""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from dynamics import presets
from dynamics.experiments import EXPERIMENTS
from dynamics.experiments import mnist_phase as mp
from dynamics.knobs import resolve
from dynamics.sweep.spec import load_spec, parse_spec

# issue 15's protocol, piece by piece (torch.optim.Adam's default β1 = 0.9: their code passes no betas)
PROTOCOL = {"particles": 100, "target.kind": "mnist", "real": 512, "disc.kind": "mlp_layers",
            "disc.widths": "64,1024,64", "disc.dropout": 0.2, "disc.out_bias": False, "disc.init": "default",
            "disc.optimizer": "adam", "disc.beta1": 0.9, "disc.amsgrad": True, "disc.weight_decay": 1e-4,
            "disc.reset": True, "disc.steps": 20, "disc.steps_first": 200, "reg.kind": "sobolev",
            "reg.strength": 1.25, "reg.rho": 0.0, "reg.alpha": 0.0, "reg.batch_mean": True, "loss": "ipm",
            "lr.convention": "particle", "lr.gen": 1e-4, "kernel.kind": "two_number", "kernel.g1": 1.0,
            "init.kind": "gaussian", "init.std": 0.5, "steps": 1000, "update": "alternating"}
PHI = np.concatenate([[0.0], 10 ** np.linspace(-2, -0.01, 25)])      # the authors' g2/g1
ETA = 1e-4 * 10 ** (np.arange(18) / 12)                                # their η_D


@pytest.mark.parametrize("key", sorted(PROTOCOL))
def test_preset_holds_each_protocol_piece(key):
    assert resolve(presets.load("mnist"))[key] == PROTOCOL[key]


def test_preset_has_a_doc_naming_the_kernel_normalisation():
    doc = presets.describe("mnist")
    assert "g1 = 1" in doc and "η_Q" in doc


def test_full_grid_is_the_authors():
    spec = load_spec(mp.SPEC)
    axes = {a.key: np.array(a.values) for a in spec.axes}
    assert [a.key for a in spec.axes] == ["kernel.ratio", "lr.disc"]
    assert len(axes["kernel.ratio"]) * len(axes["lr.disc"]) == 26 * 18
    np.testing.assert_allclose(axes["kernel.ratio"], PHI, rtol=1e-5)
    np.testing.assert_allclose(axes["lr.disc"], ETA, rtol=1e-9)
    assert {k: spec.config[k] for k in PROTOCOL} == PROTOCOL
    assert "center_kl" in spec.metrics and "mean_abs_cos" in spec.metrics


def test_quick_grid_is_what_the_doc_says():
    quick, full = load_spec(mp.SPEC, quick=True), load_spec(mp.SPEC)
    axes = {a.key: a.values for a in quick.axes}
    np.testing.assert_allclose(axes["kernel.ratio"], PHI[[0, 20, 25]], rtol=1e-5)
    np.testing.assert_allclose(axes["lr.disc"], ETA[[0, 8, 17]], rtol=1e-9)
    said = mp.reduced(quick, full)
    assert said == "grid 3 × 3 instead of 26 × 18, T = 20 instead of 1000"
    doc = " ".join(mp.__doc__.split())
    assert "grid 3 × 3 (φ ∈ {0, 0.376, 0.977}, η_D ∈ {1e-4, 4.64e-4, 2.61e-3}), T = 20 particle steps " \
           "instead of 1000" in doc
    # the protocol otherwise kept
    assert {k: v for k, v in quick.config.items() if full.config[k] != v} == {"steps": 20, "record.every": 5}


def test_summary_finds_the_boundary_and_its_direction():
    import xarray as xr
    cos = np.array([[0.3, 0.95, 0.99], [0.3, 0.5, 0.95]])               # (lr.disc, kernel.ratio)
    ds = xr.Dataset({"final_mean_abs_cos": (("lr.disc", "kernel.ratio", "seed"), cos.reshape(2, 3, 1)),
                     "final_center_kl": (("lr.disc", "kernel.ratio", "seed"), cos.reshape(2, 3, 1) * 4),
                     "final_modes_total": (("lr.disc", "kernel.ratio", "seed"), np.full((2, 3, 1), 100)),
                     "final_diverged": (("lr.disc", "kernel.ratio", "seed"), np.zeros((2, 3, 1), bool))},
                    coords={"lr.disc": [1e-4, 1e-3], "kernel.ratio": [0.0, 0.4, 0.8], "seed": [1]})
    s = mp.summarize(ds)
    assert s["phi_c"] == [0.4, 0.8] and s["trend"] == "rises"
    assert "protects" in mp.headline(s)
    assert mp.trend([0.8, 0.4]) == "falls" and mp.trend([0.4, None]) == "rises" and mp.trend([None, None]) == \
        "none collapsed"


TINY = """
[quick]
steps = 2
record_every = 2
chunk = 2
set = {"disc.widths" = "4,8,4", "disc.steps" = 1, "disc.steps_first" = 1, "real" = 16, "particles" = 12}
axes = {"kernel.ratio" = [0.0, 0.5], "lr.disc" = {log = [1e-4, 1e-3, 2]}}
"""


def test_tiny_run_writes_data_and_a_figure_of_its_center_kl(tmp_path):
    """2 × 2 grid, 2 steps, tiny critic: the packaged spec with its [quick] table replaced, through
    the experiment's run and the CLI's hooks; the figure's dots are the stored center_kl."""
    from app import cli_reproduce
    from app.plots import companion, figures
    from dynamics.sweep.store import open_results
    text = mp.SPEC.read_text().split("[quick]")[0] + TINY
    spec = parse_spec(text, name="mnist-phase", quick=True)
    p = argparse.ArgumentParser()
    cli_reproduce.add_reproduce_arguments(p)
    out = tmp_path / "tiny"
    args = p.parse_args(["mnist-phase", "--out", str(out), "--no-progress", "--workers", "1"])
    summary = EXPERIMENTS["mnist-phase"].run(out, True, cli_reproduce._hooks(args), spec=spec)
    assert summary["figures"] == ["mnist-phase.png", "mnist-phase-black.png"]
    assert all((out / f).stat().st_size > 0 for f in summary["figures"])
    assert json.loads((out / "summary.json").read_text())["phi_c"] == summary["phi_c"]
    assert (out / "results.nc").exists()
    ds = open_results(out)
    kl = ds["final_center_kl"].mean("seed").transpose("kernel.ratio", "lr.disc").values
    assert np.isfinite(kl).all() and summary["center_kl"] == np.round(kl.T, 4).tolist()
    assert "T = 2 instead of 1000" in summary["reduced"] and "grid 2 × 2 instead of 26 × 18" in summary["reduced"]
    fig, _ = figures.render(companion.mnist_phase_plot(ds))
    dots = next(c for c in fig.axes[0].collections if len(c.get_offsets()) == 4)
    np.testing.assert_allclose(np.asarray(dots.get_array()), kl.ravel(), rtol=1e-6)
    phi = ds["kernel.ratio"].values
    xs = np.asarray(dots.get_offsets())[:, 0]
    np.testing.assert_allclose(xs, np.repeat(np.where(phi > 0, phi, companion.zero_at(phi)), 2))
    assert dots.get_clim() == pytest.approx((0.0, math.log(100)))         # K = the 100 target images


def test_listed_in_the_gallery():
    e = EXPERIMENTS["mnist-phase"]
    assert e.sweep and e.paper == "main" and "3 × 3 grid, T = 20" in e.doc


def test_a_sweep_keeps_the_mnist_scores_only_where_every_target_is_a_point_set():
    from dynamics.knobs import ConfigError
    ok = parse_spec('base = "mnist"\nmetrics = ["center_kl", "mean_abs_cos"]\n[axes]\n"kernel.ratio" = [0.1]\n')
    assert {"center_kl", "mean_abs_cos"} <= set(ok.metrics)
    for text in ('base = "ring8"\nmetrics = ["center_kl"]\n[axes]\n"kernel.ratio" = [0.1]\n',
                 'base = "mnist"\nmetrics = ["center_kl"]\n[axes]\n"target.kind" = ["mnist", "ring"]\n'):
        with pytest.raises(ConfigError, match="metrics: unknown metric 'center_kl'; allowed"):
            parse_spec(text)
