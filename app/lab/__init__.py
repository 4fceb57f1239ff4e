"""The Panel lab: `effgan serve` (server.py) or `panel serve app/lab/main.py`."""
