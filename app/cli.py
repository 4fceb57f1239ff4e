"""`effgan`: the command line. Each subcommand lives in its own module, imported only when
used (so `effgan run` never loads the web stack); a module gives `add_arguments(parser)` and
`main(args) -> int`. Bad input exits with code 2 and one line naming the field."""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import textwrap
from typing import Any

from dynamics import presets
from dynamics.knobs import KNOBS, ConfigError, check_applies, parse_assignment, resolve, show

COMMANDS = {
    "run": ("app.cli", "run one simulation (or a batch of seeds) and print or save its metrics"),
    "presets": ("app.cli_presets", "list the presets"),
    "knobs": ("app.cli_presets", "list every config key with its default, range and meaning"),
    "serve": ("app.lab.server", "start the live lab in the browser"),
    "sweep": ("app.cli_sweep", "run a parameter sweep from a TOML spec (resumable)"),
    "figure": ("app.plots.figures", "draw a figure from sweep or run results"),
    "reproduce": ("app.cli_reproduce", "run a named experiment end to end and write its figure and data"),
}


class WholeNames(argparse.HelpFormatter):
    """Help text wrapped between words only: a name such as double-descent stays whole."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["--version"], ["-V"]):
        from importlib.metadata import PackageNotFoundError, version
        try:
            print(f"effgan {version('effgan')}")
        except PackageNotFoundError:                  # run from a checkout that was never installed
            print("effgan (not installed: running from a checkout)")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: effgan COMMAND [options]   (effgan COMMAND --help for its options; effgan --version)\n\n"
              "commands:")
        for name, (_, doc) in COMMANDS.items():
            print(f"  {name:<10} {doc}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"effgan: error: unknown command {name!r}; allowed {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, doc = COMMANDS[name]
    mod = importlib.import_module(module)
    parser = OneLineParser(prog=f"effgan {name}", description=doc, formatter_class=WholeNames)
    getattr(mod, f"add_{name}_arguments", getattr(mod, "add_arguments", lambda p: None))(parser)
    args = parser.parse_args(argv[1:])
    previous = signal.signal(signal.SIGTERM, _terminated)    # a SIGTERM unwinds like Ctrl-C: pools shut down
    try:
        return int(getattr(mod, f"main_{name}", getattr(mod, "main", None))(args) or 0)
    except ConfigError as e:
        print(f"effgan {name}: error: {e}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as e:         # a file the user named: say which, in one line
        print(f"effgan {name}: error: {_describe(e)}", file=sys.stderr)
        return 2
    except RecursionError:                              # input nested past what a parser can recurse
        print(f"effgan {name}: error: the input is nested too deeply to read; allowed files and values nested "
              "a few levels deep", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"effgan {name}: error: out of memory; allowed smaller inputs (see `effgan knobs` for the sizes)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        hint = " (--resume continues it)" if name in ("sweep", "reproduce") else ""
        print(f"effgan {name}: interrupted{hint}", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _describe(e: Exception) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({e.reason} at byte {e.start}); allowed UTF-8 text files"
    where = f" {e.filename}" if getattr(e, "filename", None) else ""
    return f"cannot use{where} ({e.strerror or type(e).__name__})"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so `finally` blocks run (what is on disk stays)."""
    signum = signal.SIGTERM


def _terminated(signum, frame):
    raise Terminated()


# ---------------------------------------------------------------- effgan run
def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """The options every command that builds a config shares."""
    p.add_argument("--preset", default=None, help=f"start from a preset ({', '.join(presets.names())}); "
                   f"default {presets.DEFAULT}")
    p.add_argument("--config", default=None, metavar="FILE.json", help="a JSON object of dotted keys, applied "
                   "after the preset")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one knob, e.g. --set kernel.ratio=0.5 (repeatable; see `effgan knobs`)")
    p.add_argument("--steps", type=knob_type("steps"), default=None, help="number of particle updates")
    p.add_argument("--seed", type=knob_type("seed"), default=None, help="random seed")
    p.add_argument("--device", type=knob_type("device"), default=None, help="auto, cpu or cuda")


FLAGS = ("steps", "seed", "device")                     # knobs that have a flag of their own


def knob_type(key: str):
    """An argparse type checking a flag's value against its knob, so that argparse's error
    ('argument --seed: ...') names the allowed range."""
    def parse(text: str):
        try:
            return KNOBS[key].coerce(text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    parse.__name__ = key                                # argparse names the type in some messages
    return parse


def config_from_args(args) -> dict[str, Any]:
    layers = [presets.load(args.preset if args.preset is not None else presets.DEFAULT)]
    given: list[tuple[str, dict]] = []
    if args.config is not None:
        given.append(("--config", {k: v for k, v in presets.read_json(args.config, "--config").items()
                                   if not k.startswith("_")}))
    sets: dict[str, Any] = {}
    for text in args.set:
        key, value = parse_assignment(text)
        if key in sets and sets[key] != value:
            raise ConfigError(f"--set {key}: given twice ({show(sets[key])}, then {show(value)}); allowed once")
        sets[key] = value
    given.append(("--set", sets))
    flags = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    for key, value in flags.items():
        if key in sets and sets[key] != value:
            raise ConfigError(f"--{key}: {show(value)} contradicts --set {key}={show(sets[key])}; allowed one of them")
    given.append(("--" + "/--".join(FLAGS), flags))
    cfg = resolve(*layers, *(layer for _, layer in given))
    for where, layer in given:
        check_applies(cfg, layer, where)
    return cfg


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--seeds", default=None, metavar="S1,S2,...",
                   help="run several seeds as one batch (each member exactly as if run alone)")
    p.add_argument("--json", action="store_true", help="print one JSON object: the config and final metrics")
    p.add_argument("--out", default=None, metavar="FILE.nc", help="write metrics, snapshots and config (netCDF)")
    p.add_argument("--no-progress", action="store_true", help="no estimate or progress lines on stderr (a run "
                   "longer than ~10 s gives them; --json too turns them off)")


def _seeds(text: str | None) -> list[dict] | None:
    if text is None:
        return None
    allowed = f"allowed a comma-separated list of {KNOBS['seed'].describe()}, e.g. 1,2,3"
    if not text.strip():
        raise ConfigError(f"--seeds: empty list; {allowed}")
    items = text.split(",")
    if len(items) > MAX_SEEDS:
        raise ConfigError(f"--seeds: {len(items):,} seeds; allowed at most {MAX_SEEDS:,} in one batch")
    seeds = []
    for i, item in enumerate(items, 1):
        if not item.strip():
            raise ConfigError(f"--seeds: {show(text)!r} has an empty item at position {i}; {allowed}")
        try:
            seeds.append(KNOBS["seed"].coerce(item))
        except ConfigError:
            raise ConfigError(f"--seeds: {show(text)!r} is not a comma-separated list of integers (item {i}: "
                              f"{show(item.strip())}); {allowed}") from None
    return [{"seed": s} for s in seeds]


MAX_SEEDS = 100_000          # members of one batch; memory (budget.check) usually refuses fewer


def final_metrics(h, b: int = 0) -> dict[str, Any]:
    """The run summary of member b: the declared observables marked `summary`, in their order."""
    from dynamics.observables import OBSERVABLES, names       # here: `effgan --help` loads no torch
    out = {}
    for k in (k for k in names(when=("step", "end"), summary=True) if k in h.final):   # some: point sets only
        v, kind = h.final[k][b], OBSERVABLES[k].type
        out[k] = bool(v) if kind == "bool" else (int(v) if kind in ("count", "int") else float(v))
    return out


def main_run(args) -> int:
    from dynamics import budget, threads
    from dynamics.engine import resolve_device
    from dynamics.run import Progress, simulate
    cfg = config_from_args(args)
    members = _seeds(args.seeds)
    if members is not None and (args.seed is not None or any(s.partition("=")[0].strip() == "seed" for s in args.set)):
        raise ConfigError("--seeds: cannot be combined with --seed or --set seed=...; allowed one of them")
    threads.apply(cfg, len(members or [{}]))
    device = resolve_device(cfg["device"])
    if args.out:                                       # xarray (and pandas) load only when a file is written
        from dynamics.results import check_writable, to_dataset, write_netcdf
        check_writable(args.out)                       # before the run: its results must not be lost after
    n = len(members or [{}])
    budget.check(cfg, n)                               # before anything is allocated
    progress = None if args.no_progress or args.json else Progress(cfg["steps"], "effgan run")
    try:
        h = simulate(cfg, members, progress=progress)
    except Exception as e:                             # an allocation the estimate let through
        if budget.is_out_of_memory(e):
            raise budget.out_of_memory_error(cfg, n, e) from None
        raise
    finally:
        progress and progress.close()
    if args.out:
        write_netcdf(to_dataset(h, str(device)), args.out)
    result = [final_metrics(h, b) for b in range(n)]
    if args.json:
        out = {"config": cfg, "metrics": result[0] if members is None else result}
        if members is not None:
            out["seeds"] = [m["seed"] for m in members]
        print(json.dumps(out))
    else:
        for b, r in enumerate(result):
            head = f"seed {members[b]['seed']}: " if members else ""
            flag = f"  DIVERGED at step {r['diverged_step']}" if r["diverged"] else ""
            print(f"{head}modes {r['modes_covered']}/{r['modes_total']}  entropy {r['mode_entropy']:.3f}  "
                  f"high-quality {r['high_quality_fraction']:.2f}  spread {r['spread']:.3f}  "
                  f"hops {r['hops']}{flag}")
        if args.out:
            print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
