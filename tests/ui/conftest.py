"""Browser tests drive Debian's chromium through Playwright (no browser downloads here).

The lab is served in-process on a free port of 127.0.0.1 (a server thread), so tests can look
at the simulation workers directly while the page drives them.
"""
from __future__ import annotations

import shutil
import socket
import time

import pytest

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "headless": True,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--headless"]}


@pytest.fixture(scope="module")
def lab_url():
    import torch
    from app.lab import server
    from app.lab.worker import LIVE
    torch.set_num_threads(1)
    port = server.free_port()
    srv = server.serve(port, threaded=True)
    url = f"http://127.0.0.1:{port}/"
    end = time.monotonic() + 30
    while not _listening(port) and time.monotonic() < end:
        time.sleep(0.2)
    yield url
    srv.stop()
    for w in list(LIVE):
        w.stop()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # tall enough that the sidebar's drawing canvas is on screen without scrolling
    return {**browser_context_args, "viewport": {"width": 1440, "height": 1400}}
