"""Your own target points in a share link: float32 rows, zlib, base64url, under a size limit.

The payload is a 6-byte header (format version, dimension, point count) and the points as
little-endian float32. Decoding is strict: a link is user input, so every length, the
decompressed size and the values are checked, and anything wrong is one ConfigError on `points`.
"""
from __future__ import annotations

import base64
import binascii
import struct
import zlib

import numpy as np

from dynamics.knobs import ConfigError
from dynamics.targets import check_points

KEY = "points"                 # the URL parameter
LINK_CHARS_MAX = 6000          # encoded points; the whole address then stays under the 8 KB request
                               # line that common servers and proxies accept (about 600 points in 2-D)
VERSION = 1
HEADER = struct.Struct("<BBI")
DIM_MAX = 255
RAW_MAX = 2**20                # decompressed bytes: 6000 chars cannot honestly hold more (no zip bombs)


def encode(pts: np.ndarray) -> str | None:
    """The link text for (n, d) points, or None when it would exceed LINK_CHARS_MAX."""
    pts = np.asarray(pts, dtype="<f4")
    if pts.ndim != 2 or pts.shape[1] > DIM_MAX or len(pts) * pts.shape[1] * 4 > RAW_MAX:
        return None
    raw = HEADER.pack(VERSION, pts.shape[1], len(pts)) + pts.tobytes()
    text = base64.urlsafe_b64encode(zlib.compress(raw, 9)).rstrip(b"=").decode("ascii")
    return text if len(text) <= LINK_CHARS_MAX else None


def _bad(why: str) -> ConfigError:
    return ConfigError(f"{KEY}: {why}; allowed the points of a link the lab made "
                       f"(at most {LINK_CHARS_MAX} characters)")


def decode(text: str) -> np.ndarray:
    """(n, d) float64 points from link text; ConfigError naming `points` on anything wrong."""
    if len(text) > LINK_CHARS_MAX:
        raise _bad(f"{len(text)} characters is too long")
    try:
        packed = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        z = zlib.decompressobj()
        raw = z.decompress(packed, RAW_MAX)
        complete = z.eof and not z.unconsumed_tail and not z.unused_data
    except (binascii.Error, ValueError, zlib.error):
        raise _bad("not valid compressed base64url data") from None
    if not complete:
        raise _bad("the data are truncated, too large or followed by extra bytes")
    if len(raw) < HEADER.size:
        raise _bad("the data are too short")
    version, dim, n = HEADER.unpack_from(raw)
    if version != VERSION or dim < 1 or n < 1 or len(raw) != HEADER.size + 4 * dim * n:
        raise _bad(f"the header (version {version}, {n} points of dimension {dim}) does not fit the data")
    pts = np.frombuffer(raw, dtype="<f4", offset=HEADER.size).reshape(n, dim)
    try:
        return check_points(pts, "the link's points")
    except ConfigError as e:
        raise _bad(str(e).split(": ", 1)[1].split(";")[0]) from None
