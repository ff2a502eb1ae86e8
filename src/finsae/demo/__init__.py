"""``python -m finsae.demo`` (``make demo``): the whole offline study as a graph of one-thread jobs, two at a
time on two cores, each skipped when its output exists; timed into ``artifacts/report/timing.json``."""
