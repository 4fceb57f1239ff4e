"""The one torch thread policy of the library (build(), init(), the CLI): one intra-op thread
for small problems, torch's default for large ones, unless the user chose a count.

A second OpenMP thread spinning on a busy shared core slows a B = 1 step many times over
(BENCHMARKS.md: the README's 500 steps took 15-44 s instead of 1.9 s on 2 shared cores);
large batches still use every core. The user chose when OMP_NUM_THREADS / MKL_NUM_THREADS is
set or torch.set_num_threads gave a count other than torch's default (and other than the
count this policy set last): then the policy never touches threads.
"""
from __future__ import annotations

import functools
import glob
import os

import torch

SMALL_WORK = 2_000_000      # B · (N + M) · disc.width below this: one thread
ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_set_by_policy: list[int] = []       # the count this policy set last (empty: it never set one)


@functools.cache
def torch_default() -> int:
    """The intra-op count torch starts with when no variable is set: its physical cores
    (cpuinfo's count, read here from the same sysfs topology), else the logical ones."""
    cores = set()
    for path in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology"):
        try:
            with open(f"{path}/physical_package_id") as pkg, open(f"{path}/core_id") as core:
                cores.add((pkg.read().strip(), core.read().strip()))
        except OSError:
            return os.cpu_count() or 1
    return len(cores) or os.cpu_count() or 1


def user_chose() -> bool:
    if any(os.environ.get(v) for v in ENV):
        return True
    now = torch.get_num_threads()
    return now != (_set_by_policy[-1] if _set_by_policy else torch_default())


def policy_threads(cfg: dict, batch: int = 1) -> int:
    """The count the policy gives a config run as a batch of `batch` members."""
    small = batch * (cfg["particles"] + (cfg["real"] or cfg["particles"])) * cfg["disc.width"] < SMALL_WORK
    return 1 if small else torch_default()


def apply(cfg: dict, batch: int = 1) -> None:
    """Set torch's intra-op threads to the policy's count, unless the user chose one."""
    if user_chose():
        return
    n = policy_threads(cfg, batch)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _set_by_policy[:] = [n]
