"""Chaos: faults on the run's timeline, client-side faults, and the adapters
that inject infrastructure faults (see DESIGN.md §8)."""
