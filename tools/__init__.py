"""Thin command-line mains over the library: `python tools/X.py` (with
hournas_tf installed or on PYTHONPATH) or `python -m tools.X`."""
