"""k6's quick command-line overrides: `--vus`, `--duration`, `--stage`, `--iterations`.

A k6 user sizes a run from the command line (`k6 run --vus 10 --duration 30s`,
`--stage 5m:500`) without editing the script; loadaction takes the same flags
for one scenario. They replace its executor the way k6 derives a scenario from
these shortcuts (k6's `DeriveScenariosFromShortcuts`):

- `--iterations N` (with `--vus`, `--duration`): shared-iterations, N
  iterations shared by the VUs (default 1), `--duration` as its maxDuration;
- `--duration D` (with `--vus`): constant-vus;
- `--stage D:TARGET`, repeatable (with `--vus` as the VUs to start with):
  ramping-vus;
- `--iterations` or `--duration` with `--stage` is refused, as k6 refuses it;
  a lone `--vus` too (k6 ignores it with a warning; a flag that does nothing
  is a mistake worth stopping for).

Every executor option the scenario had is dropped (k6 builds a fresh
scenario); what the scenario is about stays: its flow (`exec`), startTime,
gracefulStop, tags, thresholds and regression budgets. The values are put
into the scenario as plan nodes whose source is the flag, before the scenario
is validated, so a bad one (`--vus 0`) is reported by the same checks as a
plan's, naming the flag. A profile still scales what the flags leave (its
startTime), never the flags' own numbers.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from loadaction.errors import PlanError, Source
from loadaction.plan.executors import EXECUTOR_OPTIONS
from loadaction.plan.profiles import Profile
from loadaction.plan.source import Entry, Map, Scalar, ScalarValue, Seq

_EXECUTOR_KEYS = frozenset({"executor", *(key for keys in EXECUTOR_OPTIONS.values() for key in keys)})


@dataclass(frozen=True, slots=True)
class FlagSource(Source):
    """A value that came from a command-line flag (or the action input behind
    it): errors print the flag as the user typed it; line 0, there is no line."""

    def __str__(self) -> str:
        return self.file


@dataclass(frozen=True, slots=True)
class QuickOverrides:
    """The flags as given, unparsed: their values are checked as plan values."""

    vus: str | None = None
    duration: str | None = None
    stages: tuple[str, ...] = ()
    iterations: str | None = None

    def __bool__(self) -> bool:
        return any(value is not None for value in (self.vus, self.duration, self.iterations)) \
            or bool(self.stages)

    def flags(self) -> str:
        given = [flag for flag, value in (("--vus", self.vus), ("--duration", self.duration),
                                          ("--iterations", self.iterations)) if value is not None]
        return ", ".join(given + (["--stage"] if self.stages else []))


def overridden_scenario(overrides: QuickOverrides, scenarios: Collection[str],
                        selected: Sequence[str]) -> str | None:
    """The one scenario the flags apply to: the plan's only one, or the one
    `--scenario` names; None without flags."""
    if not overrides:
        return None
    chosen = list(dict.fromkeys(selected))
    if len(chosen) > 1:
        raise PlanError(f"{overrides.flags()} size one scenario; --scenario names "
                        f"{len(chosen)} ({', '.join(chosen)})", hint="name one of them")
    if chosen:
        return chosen[0]
    if len(scenarios) != 1:
        raise PlanError(f"{overrides.flags()} size one scenario; the plan has {len(scenarios)} "
                        f"({', '.join(scenarios)})", hint="choose one with --scenario NAME")
    return next(iter(scenarios))


def apply_quick_overrides(entry: Entry, overrides: QuickOverrides,
                          profile: Profile | None, name: str) -> tuple[Entry, Profile | None]:
    """The scenario with its executor replaced, and the profile to parse it with.

    The flags' keys go into the profile's override for this scenario when
    there is a profile (override keys are never scaled), and the executor
    keys the profile or the scenario wrote are dropped from both."""
    options = _executor_options(overrides)
    node = entry.value
    if isinstance(node, Map):  # anything else is reported as the plan's own error
        kept = {key: item for key, item in node.items() if key not in _EXECUTOR_KEYS}
        node = Map(kept if profile is not None else {**kept, **options}, node.source)
    if profile is None:
        return Entry(entry.key_source, node), None
    written = profile.overrides.get(name)
    kept_override = {key: item for key, item in written.items()
                     if key not in _EXECUTOR_KEYS} if written else {}
    override = Map({**kept_override, **options}, written.source if written else entry.key_source)
    return Entry(entry.key_source, node), replace(profile, overrides={**profile.overrides,
                                                                      name: override})


def _executor_options(overrides: QuickOverrides) -> dict[str, Entry]:
    if overrides.stages and overrides.iterations is not None:
        raise PlanError("--iterations and --stage cannot be used together (as in k6): "
                        "--stage ramps VUs for a time, --iterations shares a count")
    if overrides.stages and overrides.duration is not None:
        raise PlanError("--duration and --stage cannot be used together (as in k6): "
                        "the stages' durations are the run's length")
    options: dict[str, Entry] = {}
    if overrides.iterations is not None:
        options["executor"] = _flag_entry("--iterations", overrides.iterations, "shared-iterations")
        options["iterations"] = _flag_entry("--iterations", overrides.iterations, _number(overrides.iterations))
        if overrides.vus is not None:
            options["vus"] = _flag_entry("--vus", overrides.vus, _number(overrides.vus))
        if overrides.duration is not None:
            options["maxDuration"] = _flag_entry("--duration", overrides.duration,
                                                 _duration(overrides.duration))
    elif overrides.duration is not None:
        options["executor"] = _flag_entry("--duration", overrides.duration, "constant-vus")
        options["duration"] = _flag_entry("--duration", overrides.duration, _duration(overrides.duration))
        if overrides.vus is not None:
            options["vus"] = _flag_entry("--vus", overrides.vus, _number(overrides.vus))
    elif overrides.stages:
        first = FlagSource(f"--stage {overrides.stages[0]}", 0)
        options["executor"] = Entry(first, Scalar("ramping-vus", first))
        options["stages"] = Entry(first, Seq(tuple(_stage(text) for text in overrides.stages), first))
        if overrides.vus is not None:
            options["startVUs"] = _flag_entry("--vus", overrides.vus, _number(overrides.vus))
    else:
        raise PlanError(f"--vus {overrides.vus} needs --duration, --iterations or --stage "
                        "(k6 ignores a lone --vus)",
                        hint="e.g. --vus 10 --duration 30s")
    return options


def _stage(text: str) -> Map:
    """`30s:100` -> {duration: 30s, target: 100}; k6's `--stage` syntax."""
    source = FlagSource(f"--stage {text}", 0)
    duration, sep, target = text.partition(":")
    if not sep or not duration.strip() or not target.strip():
        raise PlanError("expected DURATION:TARGET, e.g. 30s:100", source)
    return Map({"duration": Entry(source, Scalar(_duration(duration), source)),
                "target": Entry(source, Scalar(_number(target), source))}, source)


def _flag_entry(flag: str, text: str, value: ScalarValue) -> Entry:
    source = FlagSource(f"{flag} {text}", 0)
    return Entry(source, Scalar(value, source))


def _number(text: str) -> ScalarValue:
    """An int or float when the text is one (so `--vus 1.5` is "expected an
    integer, got 1.5"), else the text (so `--vus x` is "got 'x'")."""
    for kind in (int, float):
        try:
            return kind(text.strip())
        except ValueError:
            continue
    return text


def _duration(text: str) -> ScalarValue:
    """A bare number is seconds, as in plans; anything else is parsed there."""
    value = _number(text)
    return value if isinstance(value, int | float) else text.strip()



def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """The four flags, on every command that loads a plan (run, validate, demo)."""
    group = parser.add_argument_group(
        "quick overrides (k6's)", "replace one scenario's executor (the plan's only scenario, or "
        "the one --scenario names); its flow, startTime, tags and budgets stay")
    group.add_argument("--vus", metavar="N",
                       help="VUs for --duration or --iterations; the VUs to start with for --stage")
    group.add_argument("--duration", metavar="D",
                       help="constant-vus for D (e.g. 30s, 5m); with --iterations, their maxDuration")
    group.add_argument("--stage", action="append", default=[], metavar="D:TARGET",
                       help="ramping-vus: ramp to TARGET VUs over D (e.g. 30s:100; repeatable)")
    group.add_argument("--iterations", metavar="N",
                       help="shared-iterations: N iterations shared by --vus VUs (default 1)")


def overrides_from_args(args: argparse.Namespace) -> QuickOverrides:
    return QuickOverrides(vus=args.vus, duration=args.duration, stages=tuple(args.stage),
                          iterations=args.iterations)
