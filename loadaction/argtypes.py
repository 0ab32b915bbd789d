"""Command-line value types shared by every subcommand: each refuses what
makes no sense (nan, inf, zero, negatives) with a message argparse prints as
one line, exit 2."""

from __future__ import annotations

import argparse
import math


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
