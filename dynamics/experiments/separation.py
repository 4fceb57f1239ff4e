"""separation (Domingo-Enrich & Mroueh 2021): F1 (one learned ReLU neuron) against F2 (a fixed
arc-cosine kernel) on the Legendre pair of S^(d-1): the noise-free ratio d_F1/d_F2 is
sqrt(N_{k,d}), finite samples and the engine's particle flow show F1 sees and moves towards
what F2 cannot."""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from ..papers import f1_ipm, f2_ipm_features, gegenbauer, pair_theory, sample_sphere_pair
from ..papers.spheres import QUAD, _phi_grid, _zonal_mean
from .base import Experiment, Hooks, done_in, finish, phase, register, seeded, steps_progress

F64 = torch.float64


SEPARATION = {
    "quick": dict(k=6, theory_dims=[6, 8, 10, 12, 14, 16], sample_dims=[8], n=10_000, seeds=2,
                  restarts=16, ascent_steps=50, features=1000,
                  flow_dim=8, particles=200, steps=100, lr_gen=30.0, critic_restarts=16, flow_seeds=1),
    "full": dict(k=6, theory_dims=[6, 8, 10, 12, 14, 16], sample_dims=[6, 8, 10, 12, 14, 16],
                 n=10_000, seeds=5, restarts=64, ascent_steps=200, features=4000,
                 flow_dim=8, particles=1000, steps=400, lr_gen=150.0, critic_restarts=16,
                 flow_seeds=3),
}


def pair_means(d: int, k: int) -> tuple[float, float]:
    """E_ν P_{k,d}(x_d) and E_μ P_{k,d}(x_d) of the Legendre pair, by quadrature."""
    phi, w = _phi_grid(d, QUAD)
    p = gegenbauer(k, d, torch.cos(phi))
    c_plus = _zonal_mean(p.clamp_min(0), w, phi)
    return (_zonal_mean(p.clamp_min(0) ** 2, w, phi) / c_plus,
            -_zonal_mean((-p).clamp_min(0) ** 2, w, phi) / c_plus)


def _separation_static(c: dict, gen: torch.Generator) -> dict:
    k, s = c["k"], c["seeds"]
    theory = [pair_theory(d, k) for d in c["theory_dims"]]
    rows = {key: [] for key in ("f1", "f1_null", "f2", "f2_null", "align")}
    for d in c["sample_dims"]:
        nu, mu, nu2 = (sample_sphere_pair(c["n"], d, k, sign, gen, batch=s)
                       for sign in (+1, -1, +1))
        kw = dict(bias=False, restarts=c["restarts"], steps=c["ascent_steps"])
        f1, theta = f1_ipm(nu, mu, gen, **kw)
        rows["f1"].append(f1)
        rows["f1_null"].append(f1_ipm(nu, nu2, gen, **kw)[0])
        rows["align"].append(theta[:, -1].abs())  # |θ*·e_d|: the hidden direction found?
        rows["f2"].append(f2_ipm_features(nu, mu, gen, m=c["features"], bias=False))
        rows["f2_null"].append(f2_ipm_features(nu, nu2, gen, m=c["features"], bias=False))
    return dict(theory=theory, **{key: torch.stack(v).numpy() for key, v in rows.items()})


def _separation_flow(c: dict, seed: int, hooks: Hooks) -> dict:
    """Particles start on μ and follow each critic through the engine (same steps, seeds)."""
    from ..run import simulate
    d, k = c["flow_dim"], c["k"]
    cfg = {"target.kind": "sphere_pair", "target.sphere_dim": d, "target.sphere_k": k,
           "init.kind": "pair", "particles": c["particles"], "lr.gen": c["lr_gen"],
           "critic.restarts": c["critic_restarts"], "steps": c["steps"],
           "record.every": max(1, c["steps"] // 20), "record.snapshots": 21, "device": "cpu"}
    members = [{"seed": seed + 1 + i} for i in range(c["flow_seeds"])]
    out = {}
    for i, kind in enumerate(("f1_neuron", "f2_features"), 2):
        phase(hooks, "separation", f"{i} of 3: particles following the {kind} critic ({len(members)} members × "
              f"{c['steps']:,} steps, N = {c['particles']}, d = {d}; full size minutes, --quick seconds)")
        progress = steps_progress(hooks, f"separation {kind}", c["steps"])
        try:
            h = simulate({**cfg, "disc.kind": kind}, members, progress=progress)
        finally:
            progress and progress.close()
        x = torch.as_tensor(h.snapshots, dtype=F64)  # (B, S, N, d)
        t = x[..., -1] / x.norm(dim=-1).clamp_min(1e-12)  # <e, x/|x|>
        out[kind] = dict(mean_p=gegenbauer(k, d, t).mean(-1).numpy(),
                         displacement=(x - x[:, :1]).norm(dim=-1).mean(-1).numpy(),
                         radius=x.norm(dim=-1).mean(-1).numpy(),
                         critic_ipm=-h.series["loss_d"], snap_steps=h.snap_steps, steps=h.steps)
    return out


def run_separation(out: Path, quick: bool, hooks: Hooks, seed: int = 0) -> dict:
    started = time.perf_counter()
    c = SEPARATION["quick" if quick else "full"]
    phase(hooks, "separation", f"1 of 3: F1 and F2 IPMs of the sphere pair at d = {', '.join(map(str, c['sample_dims']))}"
          f" ({c['seeds']} seeds; full size ~1 min, --quick seconds)")
    static = _separation_static(c, seeded(seed))
    flow = _separation_flow(c, seed, hooks)
    nu_p, mu_p = pair_means(c["flow_dim"], c["k"])
    critics = ["f1_neuron", "f2_features"]
    th = static["theory"]
    f = flow["f1_neuron"]
    ds = xr.Dataset(
        {"theory_ratio": ("d_theory", [t["ratio"] for t in th]),
         "sqrt_n_harmonics": ("d_theory", [math.sqrt(t["n_harmonics"]) for t in th]),
         "theory_f1": ("d_theory", [t["f1"] for t in th]),
         "theory_f2": ("d_theory", [t["f2"] for t in th]),
         "c_plus": ("d_theory", [t["c_plus"] for t in th]),
         **{key: (("d_sample", "seed"), static[key])
            for key in ("f1", "f1_null", "f2", "f2_null", "align")},
         **{key: (("critic", "member", "snapshot"), np.stack([flow[cr][key] for cr in critics]))
            for key in ("mean_p", "displacement", "radius")},
         "critic_ipm": (("critic", "member", "step"), np.stack([flow[cr]["critic_ipm"] for cr in critics]))},
        coords={"d_theory": c["theory_dims"], "d_sample": c["sample_dims"], "seed": np.arange(c["seeds"]),
                "critic": critics, "member": np.arange(c["flow_seeds"]), "step": f["steps"],
                "snapshot": np.arange(len(f["snap_steps"])), "snapshot_step": ("snapshot", f["snap_steps"])},
        attrs={"nu_mean_p": nu_p, "mu_mean_p": mu_p, "n": c["n"], "k": c["k"]})
    ratio_dev = np.abs(ds.theory_ratio / ds.sqrt_n_harmonics - 1)

    def progress(cr, i=-1):
        """Fraction of the way from the start's mean P_k to ν's, per member, at snapshot i."""
        p = flow[cr]["mean_p"]
        return (p[:, i] - p[:, 0]) / (nu_p - p[:, 0])
    mid = len(f["snap_steps"]) // 2
    summary = {
        "k": c["k"], "d": c["theory_dims"], "theory_ratio": ds.theory_ratio.values,
        "sqrt_n_harmonics": ds.sqrt_n_harmonics.values,
        "ratio_over_sqrt_n_max_deviation": float(ratio_dev.max()),
        "theory_f1": ds.theory_f1.values, "theory_f2": ds.theory_f2.values,
        "finite_sample": {"d": c["sample_dims"], "n": c["n"],
                          "f1_mean": static["f1"].mean(1),
                          "f1_over_null_min": (static["f1"] / static["f1_null"]).min(1),
                          "f2_over_null_median": np.median(static["f2"] / static["f2_null"], 1),
                          "f1_over_f2_mean": (static["f1"] / static["f2"]).mean(1),
                          "align_min": static["align"].min(1)},
        "flow": {"d": c["flow_dim"], "particles": c["particles"], "steps": c["steps"], "lr.gen": c["lr_gen"],
                 "nu_mean_p": nu_p, "mu_mean_p": mu_p,
                 **{cr: {"mean_p_start": flow[cr]["mean_p"][:, 0].mean(),
                         "mean_p_end": flow[cr]["mean_p"][:, -1].mean(),
                         "progress_to_nu": progress(cr).mean(), "progress_to_nu_halfway": progress(cr, mid).mean(),
                         "displacement_end": flow[cr]["displacement"][:, -1].mean()} for cr in critics},
                 "progress_ratio_f1_over_f2": float(progress("f1_neuron").mean()
                                                    / max(abs(progress("f2_features").mean()), 1e-9))},
    }
    return finish("separation", ds, c, summary, out, "separation", hooks, started)


register(Experiment("separation", (
    "F1 (one learned neuron) vs F2 (fixed arc-cosine kernel) on the Legendre pair on S^(d-1), k = 6: "
    "the noise-free ratio d_F1/d_F2 equals sqrt(N_{6,d}) (18 -> 225 for d = 6..16; quadrature); at "
    "n = 10^4 the F1 estimate is 3-4x its null and finds the hidden axis while F2 sits at its noise "
    "floor (F2/null ~ 1); in the engine (target sphere_pair, init pair, particles start on mu) "
    "f1_neuron moves the particles' mean P_6(x_d) 20-30% of the way to nu's, f2_features 4-7% "
    "(its unit-RKHS-norm witness is mostly sampling noise; it is slow, not blind: at N = 1000 "
    "it keeps drifting, 24% after 1000 steps while F1 plateaus at ~35%, where the F1 IPM "
    "reaches its null). --quick: finite samples at d = 8 (2 seeds), flow N = 200, 100 steps, "
    "lr.gen = 30, 1 seed. full: all six d x 5 seeds, 64 restarts x 200 ascent steps, flow "
    "N = 1000, 400 steps, lr.gen = 150, 3 seeds; the F2 critic's N^2 kernels dominate its run time."),
    "A", run_separation, lambda s: done_in(s, (
        f"F1/F2 = sqrt(N_k,d) for d = {s['d'][0]}-{s['d'][-1]} (largest relative deviation "
        f"{s['ratio_over_sqrt_n_max_deviation']:.0e}); "
        f"the F1 critic moves the particles {s['flow']['progress_ratio_f1_over_f2']:.1f}x as far towards nu as F2"))))
