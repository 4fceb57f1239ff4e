"""Parameter sweeps: a TOML spec -> a grid of configs -> batched runs -> an xarray Dataset in Zarr.

  spec.py     parse and check the TOML spec against `dynamics.knobs`
  plan.py     expand the grid, group configs sharing struct knobs, cut rectangular chunks
  task.py     run one chunk as one batch (`run_chunk`, the unit of work anywhere)
  store.py    the Zarr template, region writes, resume detection, netCDF export, reading back
  execute.py  in-process / worker processes / dask.distributed execution with a progress bar
  theory.py   closed-form predictions the experiments are compared with
  cli.py      `effgan sweep`
"""
from .execute import Report, run_sweep
from .plan import Plan, make_plan
from .spec import Spec, load_spec, parse_spec
from .store import open_results

__all__ = ["Report", "run_sweep", "Plan", "make_plan", "Spec", "load_spec", "parse_spec", "open_results"]
