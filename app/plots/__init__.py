"""Offline figures (HoloViews, matplotlib backend) for sweeps, runs and the companion papers."""
