"""Every named experiment `effgan reproduce NAME` runs, in ONE registry, `EXPERIMENTS`, of one
contract, `base.Experiment` (name, doc, paper, run(out, quick, hooks) -> summary,
headline(summary)). One module per paper: `effective` (the main paper's sweeps, each built by
`base.sweep_experiment` from `assets/sweeps/NAME.toml` and a summary), `mnist_phase` (the main
paper's MNIST diagram: a sweep that draws its own figure), `separation`,
`ipm_vs_kl`, `ct_balance`, `double_descent` (the companion papers, run in this process, ending
in `base.finish`). A new experiment is a `register(...)` call in its paper's module; a new
paper's module is imported below. The import order is the order of `effgan reproduce --list`."""
from . import effective, mnist_phase, separation, ipm_vs_kl, ct_balance, double_descent  # noqa: F401  (each registers its experiments)
from .base import EXPERIMENTS, Experiment, Hooks

__all__ = ["EXPERIMENTS", "Experiment", "Hooks"]
