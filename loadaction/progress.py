"""The live progress line, printed every few seconds while a run goes on
(the terminal side of the engine's `Progress`, so it lives with the session)."""

from __future__ import annotations

from loadaction.engine.runner import Progress


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def progress_lines(p: Progress) -> list[str]:
    """One line per scenario the runner reports (running, or just done):
    `purchase  1m05s/3m00s  vus=100  152.3 req/s  p95=212.41ms  errors=0.00%  checks=100.00%`."""
    checks = f"{p.checks_rate * 100:.2f}%" if p.checks_rate is not None else "-"
    width = max((len(s.name) for s in p.scenarios), default=0)
    lines = []
    for s in p.scenarios:
        state = "" if s.running else "  (done)"
        p95 = f"{s.p95_ms:.2f}ms" if s.p95_ms is not None else "-"
        err = f"{s.error_rate * 100:.2f}%" if s.error_rate is not None else "-"
        lines.append(
            f"{s.name:<{width}}  {_clock(s.elapsed_s)}/{_clock(s.planned_s)}  vus={s.vus:<4} "
            f"{s.rps:8.1f} req/s  p95={p95:<10} errors={err:<7} checks={checks}{state}"
        )
    return lines
