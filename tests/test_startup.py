"""Start-up: what a fresh process imports, never how long it takes. The compiler (dynamo,
inductor), plotting, scipy, the tabular/netCDF and web stacks load only when used."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow          # fresh interpreters

HEAVY = ("torch._dynamo", "torch._inductor", "sympy", "scipy", "matplotlib", "panel", "bokeh", "holoviews",
         "xarray", "pandas")


def loaded_after(code: str) -> list[str]:
    """The HEAVY modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_engine_loads_no_compiler_scipy_or_plotting():
    assert loaded_after("import dynamics.engine, dynamics.run") == []


def test_a_short_run_loads_no_compiler_scipy_or_tables():
    assert loaded_after("from app.cli import main\nassert main(['run', '--steps', '2']) == 0") == []

