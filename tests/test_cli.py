"""`effgan run` / `effgan presets`: JSON output, netCDF output, one-line errors with exit code 2."""
import json
import subprocess
import sys

import pytest
import xarray as xr

from app.cli import main


def test_run_json_has_config_and_final_metrics(capsys):
    assert main(["run", "--steps", "60", "--set", "kernel.ratio=0.3", "--seed", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["kernel.ratio"] == 0.3 and out["config"]["seed"] == 4 and out["config"]["steps"] == 60
    m = out["metrics"]
    for k in ("modes_covered", "modes_total", "high_quality_fraction", "mode_entropy", "spread", "diverged",
              "diverged_step"):
        assert k in m
    assert m["modes_total"] == 8 and m["diverged"] is False and m["diverged_step"] == -1


def test_run_same_seed_is_reproducible(capsys):
    outs = []
    for _ in range(2):
        main(["run", "--steps", "40", "--json"])
        outs.append(json.loads(capsys.readouterr().out)["metrics"])
    assert outs[0] == outs[1]


def test_run_writes_netcdf_with_series_snapshots_and_config(tmp_path, capsys):
    path = tmp_path / "run.nc"
    assert main(["run", "--preset", "collapse", "--steps", "100", "--seeds", "1,2", "--out", str(path)]) == 0
    ds = xr.open_dataset(path)
    assert ds.sizes["member"] == 2 and ds.sizes["step"] == 11
    assert ds["positions"].dims == ("member", "snapshot", "particle", "axis") and ds.sizes["particle"] == 64
    assert json.loads(ds.attrs["config"])["kernel.ratio"] == 0.9
    assert ds["seed"].values.tolist() == [1, 2]
    assert float(ds["spread"].isel(step=0).mean()) < float(ds["spread"].isel(step=-1).mean()) + 10
    assert "torch" in json.loads(ds.attrs["versions"])


def test_diverging_run_is_reported_not_crashed(capsys):
    assert main(["run", "--steps", "200", "--set", "lr.gen=5000", "--set", "lr.disc=50",
                 "--set", "reg.kind=none", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    assert m["diverged"] is True and m["diverged_step"] >= 1


def test_presets_lists_the_defaults(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("ring8 (default)", "collapse", "damping", "digits", "sigmoid"):
        assert name in out


@pytest.mark.parametrize("args,first", [
    (["run", "--set", "kernel.ratio=1.5"], "kernel.ratio: 1.5 is out of range; allowed numbers in [0, 1]"),
    (["run", "--set", "nonsense=1"], "nonsense: unknown key; allowed keys: particles"),
    (["run", "--set", "kernal.ratio=0.1"], "--set: kernal.ratio: unknown key (did you mean kernel.ratio?); allowed keys:"),
    (["run", "--set", "particles=many"], "particles: 'many' is not an integer"),
    (["run", "--set", "kernel.ratio"], "--set: 'kernel.ratio' is not KEY=VALUE"),
    (["run", "--preset", "nope"], "--preset: unknown preset 'nope'; allowed"),
    (["run", "--seeds", "1,x"], "--seeds: '1,x' is not a comma-separated list of integers"),
    (["run", "--steps", "-3"], "steps: -3 is out of range; allowed integers in [0, 100000000]"),
    (["run", "--device", "tpu"], "device: tpu is not allowed; allowed one of auto, cpu, cuda"),
    (["run", "--out", "x.txt"], "--out: 'x.txt' does not end in .nc"),
    (["run", "--out", "/nonexistent-dir/x.nc", "--steps", "1"], "--out: folder /nonexistent-dir does not exist"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["run", "--config", "."], "--config: . is a directory; allowed a JSON file of dotted keys"),
    (["run", "--out", "/proc/x.nc", "--steps", "1"], "--out: cannot write /proc/x.nc; allowed a writable .nc path"),
    (["serve", "--port", "70000"], "--port: 70000 is not allowed; allowed 0 (any free port) to 65535"),
])
def test_bad_input_exits_2_with_one_line(args, first):
    p = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and first in lines[0], p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("content,first", [("{", "is not valid JSON (line 1"), ("[1]", "holds a list"),
                                           ('{"kernel.ratio": 7}', "kernel.ratio: 7 is out of range"),
                                           ('{"kernal.ratio": 0.1}', "kernal.ratio: unknown key in")])
def test_malformed_config_file_exits_2(tmp_path, content, first):
    f = tmp_path / "c.json"
    f.write_text(content)
    p = subprocess.run([sys.executable, "-m", "app.cli", "run", "--config", str(f)], capture_output=True,
                       text=True)
    assert p.returncode == 2 and first in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_config_file_that_is_not_text_exits_2(tmp_path):
    f = tmp_path / "c.json"
    f.write_bytes(b"\xff\xfe{}")
    p = subprocess.run([sys.executable, "-m", "app.cli", "run", "--config", str(f)], capture_output=True,
                       text=True)
    assert p.returncode == 2 and "--config: c.json is not UTF-8 text" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_unwritable_out_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    """The run's results must not be lost to a bad --out: the path is checked before simulating."""
    import dynamics.run

    def never(*a, **k):
        raise AssertionError("simulated before checking --out")
    monkeypatch.setattr(dynamics.run, "simulate", never)
    (tmp_path / "dir.nc").mkdir()
    assert main(["run", "--out", str(tmp_path / "dir.nc")]) == 2
    assert "--out: cannot write" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.part"))


def test_version_and_the_experiment_names_in_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("effgan ")
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in ("collapse-phase", "critical-damping", "kernel-universality", "separation", "ipm-vs-kl",
                 "ct-balance", "double-descent"):
        assert name in text


def test_integral_floats_are_integers_and_fractions_are_refused(tmp_path, capsys):
    """Decided: an int knob takes a number written as a float when it is exactly integral
    (JSON 1e2, --set particles=1e2 -> 100); 1.5 or 1e-3 is refused in one line."""
    f = tmp_path / "c.json"
    f.write_text('{"particles": 1e2, "steps": 2}')
    assert main(["run", "--config", str(f), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["particles"] == 100
    assert main(["run", "--set", "particles=1e2", "--steps", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["particles"] == 100
    f.write_text('{"particles": 1.5}')
    assert main(["run", "--config", str(f)]) == 2
    assert "particles: 1.5 is not an integer" in capsys.readouterr().err


def test_empty_batch_is_a_config_error():
    from dynamics.engine import build
    from dynamics.knobs import ConfigError
    with pytest.raises(ConfigError, match="members: the batch is empty"):
        build({"steps": 1}).init([])


@pytest.mark.parametrize("err", ["oom", "cpu", "memory"])
def test_an_allocation_that_fails_is_one_line_naming_the_knobs(monkeypatch, capsys, err):
    import torch

    import dynamics.run
    raised = {"oom": torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB"),
              "cpu": RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: "
                                  "you tried to allocate 80000000000 bytes.\nmore"),
              "memory": MemoryError()}[err]

    def simulate(*a, **k):
        raise raised
    monkeypatch.setattr(dynamics.run, "simulate", simulate)
    assert main(["run", "--set", "disc.width=2000", "--set", "disc.depth=3"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "out of memory" in lines[0] and "disc.width = 2000" in lines[0], lines


def test_a_long_run_says_how_long_it_will_take(monkeypatch, capsys):
    import dynamics.run
    monkeypatch.setattr(dynamics.run, "LONG_S", 0.0)
    assert main(["run", "--steps", "30"]) == 0
    err = capsys.readouterr().err
    assert "effgan run: about " in err and "for 30 steps" in err and "s a step" in err
    assert "of 30 steps, about" in err                  # off a terminal: a line at every tenth
    monkeypatch.setattr(dynamics.run, "LONG_S", 1e9)
    assert main(["run", "--steps", "5"]) == 0            # a short run stays quiet
    assert capsys.readouterr().err == ""


def test_progress_draws_a_bar_on_a_terminal_and_warns_of_a_slow_first_step():
    import io
    import threading
    import time

    from dynamics.run import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    out = Terminal()
    p = Progress(100, "effgan run", stream=out, long_s=0.05)
    p(0)
    deadline = time.monotonic() + 60
    while "the first of 100 steps is taking over" not in out.getvalue() and time.monotonic() < deadline:
        threading.Event().wait(0.02)                    # the timer thread says so while the step runs
    for i in range(1, 101):
        p(i)
    p.close()
    text = out.getvalue()
    assert "the first of 100 steps is taking over" in text and "effgan run: about" in text
    assert "100/100" in text                            # tqdm's bar reached the end


def test_reproduce_experiments_are_one_registry_of_one_contract_without_argparse():
    """Every `effgan reproduce` experiment is one `Experiment` in one `EXPERIMENTS` registry
    (an unknown name fails naming the field), each with its own headline and a cited paper, and
    the command-line code stays in the app."""
    from pathlib import Path

    from dynamics.experiments import EXPERIMENTS, Experiment
    from dynamics.papers import CITATIONS
    from test_architecture import imported_modules
    names = list(EXPERIMENTS)
    assert names[:3] == ["collapse-phase", "critical-damping", "kernel-universality"] and len(names) == 8
    for name in names:
        e = EXPERIMENTS[name]
        assert isinstance(e, Experiment) and e.name == name and e.paper in CITATIONS
        assert callable(e.run) and callable(e.headline) and "\n" not in e.doc
    with pytest.raises(KeyError, match="NAME: unknown choice 'collapse'; allowed collapse-phase"):
        EXPERIMENTS["collapse"]
    folder = Path(__file__).resolve().parent.parent / "dynamics" / "experiments"
    assert not [p.name for p in folder.glob("*.py") for _, m in imported_modules(p) if m == "argparse"]


def test_progress_lines_are_off_with_json_or_no_progress(monkeypatch, capsys):
    import dynamics.run
    monkeypatch.setattr(dynamics.run, "LONG_S", 0.0)        # every run counts as long
    for flag in ("--json", "--no-progress"):
        assert main(["run", "--steps", "30", flag]) == 0
        assert capsys.readouterr().err == "", flag


@pytest.mark.slow
def test_reproduce_says_what_each_phase_does(tmp_path, capsys):
    """An in-process experiment prints a line per phase on stderr, none with --no-progress."""
    assert main(["reproduce", "double-descent", "--quick", "--out", str(tmp_path / "a"), "--no-figures"]) == 0
    assert "double-descent: W2² errors over" in capsys.readouterr().err
    assert main(["reproduce", "double-descent", "--quick", "--out", str(tmp_path / "b"), "--no-figures",
                 "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
