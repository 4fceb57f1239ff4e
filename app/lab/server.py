"""`effgan serve`: start the live lab (one page per browser session, see `app.lab.page`).

A session whose browser went away pauses its simulation at once and is reclaimed within about
ten seconds (Bokeh's defaults take up to half a minute), which stops its worker thread; a
shorter lifetime would expire fresh sessions that a slow browser has not connected to yet.
`panel serve app/lab/main.py` serves the same page.
"""
from __future__ import annotations

import argparse
import errno
import logging
import socket

from dynamics.knobs import ConfigError

CHECK_UNUSED_MS = 1000
UNUSED_LIFETIME_MS = 10000


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=5006, help="port to listen on (default 5006; 0 picks a free one)")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only; 0.0.0.0 for a classroom)")
    p.add_argument("--show", action="store_true", help="open the lab in a browser")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per simulation step (default: the library's policy, dynamics.threads: one "
                        "for a small simulation, every core for a large one)")
    p.add_argument("--allow-websocket-origin", action="append", default=None, metavar="HOST[:PORT]",
                   help="host names the page may be reached under (repeatable; default: the bound address)")


def origins(address: str, port: int, extra: list[str] | None) -> list[str]:
    if extra:
        return extra
    if address in ("0.0.0.0", "::", ""):
        return ["*"]
    return [f"{h}:{port}" for h in {address, "localhost", "127.0.0.1"}]


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def bind_error(e: OSError, address: str, port: int) -> ConfigError:
    """The one-line error for a port or address the server cannot listen on."""
    if e.errno == errno.EADDRINUSE:
        return ConfigError(f"--port: {port} is busy on {address} (another server listens there); "
                           "allowed a free port, or 0 to pick one")
    if e.errno in (errno.EACCES, errno.EPERM):
        return ConfigError(f"--port: {port} needs privileges this user lacks; allowed 1024 to 65535, or 0")
    return ConfigError(f"--address: {address!r} cannot be listened on ({e.strerror or e}); allowed an address "
                       "of this machine, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every network)")


class ClosedTab(logging.Filter):
    """Drops the traceback of a write to a tab that has just closed: routine, one per closed tab.
    Every other record, errors included, passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        from tornado.iostream import StreamClosedError
        from tornado.websocket import WebSocketClosedError
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, (StreamClosedError, WebSocketClosedError))


QUIET_LOGGERS = ("asyncio", "tornado.application", "tornado.general", "bokeh.server.views.ws",
                 "bokeh.server.protocol_handler", "bokeh.server.session")


def quiet_closed_tabs() -> None:
    for name in QUIET_LOGGERS:
        lg = logging.getLogger(name)
        if not any(isinstance(f, ClosedTab) for f in lg.filters):
            lg.addFilter(ClosedTab())


def serve(port: int = 5006, address: str = "127.0.0.1", show: bool = False, threaded: bool = False,
          websocket_origin: list[str] | None = None, threads: int | None = None, **kw):
    """Start the server; returns it (a thread with `.stop()` when threaded, else blocks).
    threads: torch's intra-op threads for every session; None leaves them to the library's
    policy (`dynamics.threads`, applied as each simulation is built)."""
    import panel as pn
    import torch
    if threads:
        torch.set_num_threads(threads)

    from .page import create
    quiet_closed_tabs()
    kw.setdefault("check_unused_sessions_milliseconds", CHECK_UNUSED_MS)
    kw.setdefault("unused_session_lifetime_milliseconds", UNUSED_LIFETIME_MS)
    try:
        port = port or free_port(address if address not in ("0.0.0.0", "::", "") else "127.0.0.1")
        check_bind(address, port)
        return pn.serve(create, port=port, address=address, show=show, threaded=threaded,
                        websocket_origin=origins(address, port, websocket_origin), title="effgan lab",
                        verbose=not threaded, **kw)
    except OSError as e:           # socket.gaierror too: an address that does not resolve
        raise bind_error(e, address, port) from None


def check_bind(address: str, port: int) -> None:
    """Bind once before the server does, so a busy port or a bad address is an OSError here,
    not an exception inside the server's thread."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)      # as Tornado binds
        s.bind((address, port))


def main_serve(args) -> int:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: {args.port} is not allowed; allowed 0 (any free port) to 65535")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads: {args.threads} is not allowed; allowed an integer >= 1")
    serve(args.port, args.address, args.show, websocket_origin=args.allow_websocket_origin, threads=args.threads)
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m app.lab.server")
    add_serve_arguments(ap)
    raise SystemExit(main_serve(ap.parse_args()))
