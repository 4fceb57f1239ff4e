"""Read a small text file a user named (a config, a sweep spec) safely: regular files only,
a size limit, UTF-8, a nesting limit, and every failure a one-line ConfigError naming the
field. A path to /dev/zero (or a symlink to it) would otherwise be read until memory runs
out, a FIFO would block forever, and `[[[[...` nested 100,000 deep ends in RecursionError."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .knobs import ConfigError

MAX_BYTES = 1 << 20            # configs and specs are a few KiB; a megabyte is generous
MAX_NESTING = 64               # brackets/braces open at once; real files use 3 or 4

KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
         (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in KINDS if test(mode)), "not a regular file")


def read_text(path: str | Path, field: str, allowed: str, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of the regular file `path`, at most `limit` bytes, nested at most
    MAX_NESTING deep; else ConfigError '<field>: <what is wrong>; allowed <allowed>'."""
    p = Path(path)
    try:
        st = os.stat(p)                                          # follows symlinks: their target counts
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{field}: {p} is {_kind(st.st_mode)}; allowed {allowed} (a regular file)")
        if st.st_size > limit:
            raise ConfigError(f"{field}: {p} has {st.st_size:,} bytes; allowed {allowed} of at most {limit:,} bytes")
        # O_NONBLOCK: should the path turn into a FIFO after the check, opening it does not wait
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{field}: {p} is not a regular file; allowed {allowed}")
            data = f.read(limit + 1)
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError(f"{field}: {p} does not exist; allowed {allowed}") from None
    except OSError as e:
        reason = e.strerror or errno.errorcode.get(e.errno or 0, type(e).__name__)
        raise ConfigError(f"{field}: cannot read {p} ({reason}); allowed {allowed}") from None
    except ValueError:                                           # a NUL byte in the path
        raise ConfigError(f"{field}: {str(p)!r} is not a usable path; allowed {allowed}") from None
    if len(data) > limit:
        raise ConfigError(f"{field}: {p} has more than {limit:,} bytes; allowed {allowed} of at most {limit:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{field}: {p.name} is not UTF-8 text (byte {e.start}); allowed {allowed}") from None
    check_nesting(text, f"{field}: {p.name}", allowed)
    return text


def check_nesting(text: str, where: str, allowed: str) -> None:
    """ConfigError when more than MAX_NESTING brackets or braces are open at once (strings
    skipped, so quoted brackets do not count): JSON and TOML parsers recurse per level."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return
    depth, quote, escaped, comment = 0, "", False, False
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote or ch == "\n":                      # single-line strings end by then
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":                                          # a TOML comment (JSON has # only in strings)
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise ConfigError(f"{where} is nested more than {MAX_NESTING} levels deep; allowed {allowed} "
                                  f"nested at most {MAX_NESTING} levels")
        elif ch in "]}":
            depth -= 1
