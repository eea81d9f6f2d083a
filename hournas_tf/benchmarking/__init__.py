"""Benchmarks of the search (`tools/benchmark.py`, `tools/build_time.py`):
`steps` measures supernet steps, `figures` turns the results into the
issue-10 figures with goals and verdicts. Above `nas/` in the layering and
never imported by the search."""
