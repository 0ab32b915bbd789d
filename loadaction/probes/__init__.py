"""Probes: the target's side of the run (its /metrics, its PostgreSQL, a
command's number), sampled at an interval while the load runs and recorded
as gauges that budgets judge like any other metric. A plugin of the engine
(engine/hooks.py); the engine never imports it."""
