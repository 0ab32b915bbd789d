"""loadaction: chaos-and-load testing with k6-style budgets, built for GitHub Actions."""

__version__ = "0.1.0"
