"""Capacity search (`loadaction capacity`): the highest arrival rate a
scenario sustains within its budgets, found step by step, each step a run of
its own. Composition level: it drives the engine and writes results; nothing
below it imports it."""
