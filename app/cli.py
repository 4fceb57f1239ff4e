"""`effgan`: the command line. Each subcommand lives in its own module, imported only when
used (so `effgan run` never loads the web stack); a module gives `add_arguments(parser)` and
`main(args) -> int`. Bad input exits with code 2 and one line naming the field."""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
from typing import Any

from dynamics import presets
from dynamics.knobs import KNOBS, ConfigError, parse_assignment, resolve

COMMANDS = {
    "run": ("app.cli", "run one simulation (or a batch of seeds) and print or save its metrics"),
    "presets": ("app.cli_presets", "list the presets"),
    "knobs": ("app.cli_presets", "list every config key with its default, range and meaning"),
    "serve": ("app.lab.server", "start the live lab in the browser"),
    "sweep": ("app.cli_sweep", "run a parameter sweep from a TOML spec (resumable)"),
    "figure": ("app.plots.figures", "draw a figure from sweep or run results"),
    "reproduce": ("app.cli_reproduce", "run a named experiment end to end and write its figure and data"),
}


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
    parser = OneLineParser(prog=f"effgan {name}", description=doc)
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
    p.add_argument("--steps", type=int, default=None, help="number of particle updates")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--device", default=None, help="auto, cpu or cuda")


def config_from_args(args) -> dict[str, Any]:
    layers = [presets.load(args.preset or presets.DEFAULT)]
    if args.config:
        layers.append({k: v for k, v in presets.read_json(args.config, "--config").items() if not k.startswith("_")})
    layers.append(dict(parse_assignment(s) for s in args.set))
    flags = {"steps": args.steps, "seed": args.seed, "device": args.device}
    layers.append({k: v for k, v in flags.items() if v is not None})
    return resolve(*layers)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--seeds", default=None, metavar="S1,S2,...",
                   help="run several seeds as one batch (each member exactly as if run alone)")
    p.add_argument("--json", action="store_true", help="print one JSON object: the config and final metrics")
    p.add_argument("--out", default=None, metavar="FILE.nc", help="write metrics, snapshots and config (netCDF)")


def _seeds(text: str | None) -> list[dict] | None:
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: {text!r} is not a comma-separated list of integers; allowed e.g. 1,2,3") from None
    if not seeds:
        raise ConfigError("--seeds: empty list; allowed e.g. 1,2,3")
    return [{"seed": KNOBS["seed"].coerce(s)} for s in seeds]


REPORTED = ["modes_covered", "modes_total", "high_quality_fraction", "mode_entropy", "mode_kl", "spread",
            "spread_rel", "com_distance", "mean_error", "hops", "modes_visited", "loss_d", "loss_g",
            "convergence_step", "diverged", "diverged_step"]


def final_metrics(h, b: int = 0) -> dict[str, Any]:
    out = {}
    for k in REPORTED:
        v = h.final[k][b]
        out[k] = bool(v) if k == "diverged" else (int(v) if k in ("modes_total", "modes_visited", "diverged_step",
                                                                  "convergence_step", "hops") else float(v))
    return out


def small_problem_threads(cfg, batch: int) -> None:
    """One thread for small problems: on 2 shared cores, a second OpenMP thread spinning on a
    busy core made a B = 1 run 20× slower; large batches still use every core."""
    import torch
    if batch * (cfg["particles"] + (cfg["real"] or cfg["particles"])) * cfg["disc.width"] < 2_000_000:
        torch.set_num_threads(1)


def main_run(args) -> int:
    from dynamics.engine import resolve_device
    from dynamics.results import check_writable, to_dataset, write_netcdf
    from dynamics.run import simulate
    cfg = config_from_args(args)
    members = _seeds(args.seeds)
    small_problem_threads(cfg, len(members or [{}]))
    device = resolve_device(cfg["device"])
    if args.out:
        check_writable(args.out)                       # before the run: its results must not be lost after
    h = simulate(cfg, members)
    if args.out:
        write_netcdf(to_dataset(h, str(device)), args.out)
    n = len(members or [{}])
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
            print(f"{head}modes {r['modes_covered']:.0f}/{r['modes_total']}  entropy {r['mode_entropy']:.3f}  "
                  f"high-quality {r['high_quality_fraction']:.2f}  spread {r['spread']:.3f}  "
                  f"hops {r['hops']}{flag}")
        if args.out:
            print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
