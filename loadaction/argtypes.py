"""Command-line value types shared by every subcommand: each refuses what
makes no sense (nan, inf, zero, negatives) with a message argparse prints as
one line, exit 2."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loadaction.plan.segments import ExecutionTuple


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def positive(kind: type) -> object:
    """A positive, finite number: `nan` or `inf` would cap nothing."""
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value
    return parse


def duration(text: str) -> float:
    from loadaction.plan.durations import parse_duration
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port_number(text: str) -> int:
    """A TCP port, 0 for any free one."""
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), got {text!r}")
    return int(text)


def add_plan_arguments(p: argparse.ArgumentParser, *, profile_help: str) -> None:
    """The plan and what every command that loads one takes beside it (run,
    validate, capacity): one definition, so the commands cannot drift apart."""
    p.add_argument("plan", help="the plan file (YAML)")
    p.add_argument("--target", help="base URL of the system under test (overrides the plan's)")
    p.add_argument("--profile", help=profile_help)
    p.add_argument("--var", action="append", default=[], type=key_value, metavar="KEY=VALUE",
                   help="set a plan variable (repeatable)")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                   help="also allow requests to this host (repeatable)")
    p.add_argument("--allow-live-keys", action="store_true",
                   help="allow live Stripe keys (sk_live_, rk_live_) in secrets and vars")
    p.add_argument("--max-rps", type=positive(float), help="never send more requests per second")


def _segment_type(parse_name: str) -> object:
    """An argparse type from a plan/segments parser: its ValueError is the one line."""
    def parse(text: str) -> object:
        from loadaction.plan import segments
        try:
            return getattr(segments, parse_name)(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = parse_name.removeprefix("parse_").replace("_", " ")
    return parse


def add_segment_arguments(p: argparse.ArgumentParser) -> None:
    """k6's execution segments (run, validate, demo): this process runs one
    share of the plan, so processes or machines that run the other shares of
    the same sequence together run the whole plan exactly once."""
    p.add_argument("--execution-segment", type=_segment_type("parse_segment"), metavar="A:B",
                   help="run only this share of the plan's VUs, iterations, rates and unique "
                        "data rows, as k6 (1/4:1/2, 25%%:50%%, 0.25:0.5; a lone 1/4 is 0:1/4)")
    p.add_argument("--execution-segment-sequence", type=_segment_type("parse_sequence"),
                   metavar="0,...,1",
                   help="how the whole run is cut (0,1/4,1/2,3/4,1), so the segments' shares "
                        "sum exactly to the whole; default 0,A,B,1")
    p.add_argument("--shard", type=_segment_type("parse_shard"), metavar="I/N",
                   help="run shard I of N equal ones (I from 1): --shard 2/4 is "
                        "--execution-segment 1/4:2/4 --execution-segment-sequence 0,1/4,1/2,3/4,1")


def execution_from_args(args: argparse.Namespace) -> ExecutionTuple:
    """The ExecutionTuple the segment flags ask for (the full run without them);
    a conflicting or mismatched pair is a PlanError (exit 2, one line)."""
    from loadaction.errors import PlanError
    from loadaction.plan.segments import FULL_TUPLE, ExecutionTuple
    segment = getattr(args, "execution_segment", None)
    sequence = getattr(args, "execution_segment_sequence", None)
    sharded = getattr(args, "shard", None)
    if sharded is not None:
        if segment is not None or sequence is not None:
            raise PlanError("--shard cannot be combined with --execution-segment or "
                            "--execution-segment-sequence (it sets both)")
        segment, sequence = sharded
    if segment is None:
        if sequence is not None:
            raise PlanError(f"--execution-segment-sequence {sequence} needs "
                            "--execution-segment (which of its segments this process runs)")
        return FULL_TUPLE
    try:
        return ExecutionTuple(segment, sequence)
    except ValueError as exc:
        raise PlanError(f"--execution-segment: {exc}") from None


WORKERS_ENV = "LOADACTION_WORKERS"
"""--workers' default when the flag is not given (else `auto`): a machine or
CI image that must stay in one process (or use a fixed count) says so once."""


def workers(text: str) -> int | str:
    """--workers: a positive count, or `auto` (the CPUs this process may use)."""
    if text.strip() == "auto":
        return "auto"
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of workers (1 or more) or auto, "
                                         f"got {text!r}")
    return int(text)


def default_workers(environ: Mapping[str, str]) -> int | str:
    """--workers when the flag is absent: LOADACTION_WORKERS, else auto. A
    bad value is a PlanError naming the variable (exit 2)."""
    from loadaction.errors import PlanError
    text = environ.get(WORKERS_ENV, "").strip()
    if not text:
        return "auto"
    try:
        return workers(text)
    except argparse.ArgumentTypeError as exc:
        raise PlanError(f"{WORKERS_ENV}: {exc}") from None


def add_workers_argument(p: argparse.ArgumentParser) -> None:
    """`--workers` (run, demo)."""
    p.add_argument("--workers", type=workers, default=None, metavar="N|auto",
                   help="run the load in N processes on this machine, each one execution "
                        "segment of it, merged exactly (auto: one per CPU this process may "
                        "use); setup, teardown, probes, fault actions and thresholds stay in "
                        f"this one (default: ${WORKERS_ENV}, else auto)")


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?(?P<zone>[Zz]|[+-]\d{2}:\d{2})?")
START_AT_MAX_AHEAD = timedelta(hours=24)
START_AT_TOLERANCE_S = 10.0


def rfc3339(text: str) -> datetime:
    """An RFC 3339 date-time with its offset (`2026-12-01T19:00:00Z`). One
    without is refused: a local time is a different instant on each machine
    of a sharded run. ValueError with a one-line message."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"expected an RFC 3339 time such as 2026-12-01T19:00:00Z, got {text!r}")
    if match["zone"] is None:
        raise ValueError(f"{text!r} has no timezone: add Z (UTC) or an offset such as +02:00 "
                         f"(a local time is a different instant on each machine)")
    return datetime.fromisoformat(match[0].upper().replace("Z", "+00:00"))


def start_at_problem(at: datetime, tolerance_s: float, now: datetime) -> str | None:
    """Why `--start-at` cannot be waited for, known before anything is sent:
    already past beyond the tolerance, or more than 24 h ahead (a typo in the
    date would keep a runner waiting for days)."""
    if (now - at).total_seconds() > tolerance_s:
        return (f"{at.isoformat()} passed {(now - at).total_seconds():.0f}s ago, more than the "
                f"--start-at-tolerance of {tolerance_s:g}s")
    if at - now > START_AT_MAX_AHEAD:
        return f"{at.isoformat()} is more than 24 h ahead"
    return None


def add_start_at_arguments(p: argparse.ArgumentParser) -> None:
    """`--start-at` and its tolerance (run, demo)."""
    p.add_argument("--start-at", type=_start_at, metavar="TIME",
                   help="after setup, wait until this RFC 3339 time (e.g. 2026-12-01T19:00:00Z; "
                        "a timezone is required) before the load starts, so shards launched at "
                        "different times begin together (hosts' clocks synchronised by NTP); "
                        "at most 24 h ahead")
    p.add_argument("--start-at-tolerance", type=duration, default=START_AT_TOLERANCE_S,
                   metavar="DURATION",
                   help=f"with --start-at: a time already past by at most this much starts at "
                        f"once (noted in the results); later is refused, exit 2 before setup, "
                        f"exit 3 after it (default {START_AT_TOLERANCE_S:g}s)")


def _start_at(text: str) -> datetime:
    try:
        return rfc3339(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
