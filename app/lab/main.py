"""Entry point for `panel serve app/lab/main.py` (the page of `effgan serve`).

Add `--check-unused-sessions 1000 --unused-session-lifetime 10000` to stop the simulation of a
closed tab within seconds rather than Bokeh's default quarter minute.
"""
from app.lab.page import create

create().servable(title="effgan lab")
