"""The action's inputs as a `loadaction run` (or, with mode capacity,
`loadaction capacity`; with mode merge, `loadaction merge`) command line.

`entrypoint.py` reads `INPUT_*` through `invocation`, which checks each
value's shape (so a bad input is named as the input the user wrote, not as
a CLI flag), and hands the argv to the CLI; `input_error` is the one line it
prints instead when an input is bad. The token goes in the environment,
never argv. This module knows nothing of the CLI: entrypoint.py wires the two.
"""

from __future__ import annotations

import argparse
import glob
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from loadaction.argtypes import rfc3339
from loadaction.argtypes import workers as parse_workers
from loadaction.errors import PlanError
from loadaction.github import commands
from loadaction.github.baselines import (
    AUTO,
    artifact_problem,
    runs_problem,
    workflow_name,
    workflow_problem,
)
from loadaction.github.cli import TOKEN_ENV
from loadaction.github.comments import key_problem
from loadaction.github.environment import input_value
from loadaction.github.step import COMMENT_MODES
from loadaction.plan.durations import parse_duration
from loadaction.writable import check_output_dir

# Defaults for when the runner sets no INPUT_* at all (a test, a local
# `docker run`); they agree with action.yml, which a test checks.
DEFAULTS: Mapping[str, str] = {
    "plan": "",
    "target": "",
    "profile": "pr",
    "scenarios": "",
    "vars": "",
    "baseline": "",
    "baseline-workflow": "",
    "baseline-artifact": "loadaction-results",
    "baseline-runs": "5",
    "github-token": "",
    "comment": "always",
    "comment-key": "default",
    "summary": "true",
    "fail-on-violation": "true",
    "results-dir": "loadaction-results",
    "allowed-hosts": "",
    "max-rps": "",
    "mode": "run",
    "scenario": "",
    "min-rate": "",
    "vus": "",
    "duration": "",
    "stages": "",
    "iterations": "",
    "shard": "",
    "workers": "",
    "start-at": "",
    "merge-from": "",
    "allow-partial": "false",
}
MODES = ("run", "capacity", "merge")
_SHARD = re.compile(r"(\d+)/(\d+)")


class InputError(ValueError):
    """An input the action cannot use; the message names it."""


@dataclass(frozen=True, slots=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]  # variables to add to the environment (the token)


def invocation(env: Mapping[str, str], bundled_plan: Path) -> Invocation:
    """argv for `loadaction run` and the environment additions; raises InputError."""
    def get(name: str) -> str:
        value = input_value(env, name)
        return DEFAULTS[name] if value is None else value

    mode = get("mode").lower() or DEFAULTS["mode"]
    target = get("target")
    if not target and mode != "merge":
        raise InputError("input 'target' is required (the base URL of the system under test)")
    results_dir = get("results-dir") or DEFAULTS["results-dir"]
    try:  # before anything is sent: results that cannot be written would be lost
        check_output_dir(Path(results_dir), "input 'results-dir':",
                         contents=("results.json", "report.md"))
    except PlanError as exc:
        raise InputError(exc.message) from None
    if mode not in MODES:
        raise InputError(f"input 'mode' must be {', '.join(MODES[:-1])} or {MODES[-1]}; "
                         f"got {mode!r}")
    if mode == "merge":
        return _github(get, env, ["merge", *_merge(get), "--github", "--out", results_dir,
                                  *_baseline(get)])
    argv = [mode, get("plan") or str(bundled_plan), "--github", "--target", target,
            "--out", results_dir]
    if profile := get("profile"):
        argv += ["--profile", profile]
    if mode == "capacity":
        argv += _capacity(get)
    elif get("scenario") or get("min-rate"):
        raise InputError("inputs 'scenario' and 'min-rate' are for mode capacity")
    else:
        for scenario in _items(get("scenarios")):
            argv += ["--scenario", scenario]
    argv += _shard(get, mode)
    quick = _quick_overrides(get)
    if quick and mode != "run":
        raise InputError("inputs 'vus', 'duration', 'stages' and 'iterations' are for mode run")
    argv += quick
    if workers := get("workers").strip():
        if mode != "run":
            raise InputError("input 'workers' is for mode run")
        try:
            parse_workers(workers)  # the flag's own rule
        except argparse.ArgumentTypeError:
            raise InputError(f"input 'workers' must be a number of processes (1 or more) or "
                             f"auto, got {workers!r}") from None
        argv += ["--workers", workers]
    for number, line in enumerate(get("vars").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            # never echo the line: it may hold a secret
            raise InputError(f"input 'vars', line {number}: expected KEY=VALUE")
        argv += ["--var", f"{key.strip()}={value.strip()}"]
    baseline = _baseline(get)
    if baseline and get("shard"):
        raise InputError("input 'baseline' is for the mode merge job when 'shard' is set: a "
                         "shard's share of the load is not comparable with a whole run's")
    if mode == "run":
        argv += baseline
    elif baseline:
        raise InputError("input 'baseline' is for mode run; a capacity search is not compared "
                         "with baselines")
    caps = [arg for host in _items(get("allowed-hosts")) for arg in ("--allow-host", host)]
    if max_rps := get("max-rps"):
        caps += ["--max-rps", _positive("max-rps", max_rps)]
    return _github(get, env, argv, caps)


def _github(get: Callable[[str], str], env: Mapping[str, str], argv: list[str],
            after: list[str] | None = None) -> Invocation:
    """The step's GitHub flags, for every mode, then `after`. A shard
    (`shard` set) neither comments nor fails on a budget: its budgets were
    judged on its share of the load only; the merge job posts the one
    comment and gates."""
    sharded = "--shard" in argv
    comment = get("comment").lower()
    if comment not in COMMENT_MODES:
        raise InputError(f"input 'comment' must be {', '.join(COMMENT_MODES)}; got {comment!r}")
    argv += ["--comment", "never" if sharded else comment]
    key = get("comment-key") or DEFAULTS["comment-key"]
    if problem := key_problem(key):
        raise InputError(f"input 'comment-key': {problem}")
    argv += ["--comment-key", key]
    if not _boolean(get, "summary"):
        argv.append("--no-summary")
    if not _boolean(get, "fail-on-violation") or sharded:
        argv.append("--no-fail-on-violation")
    argv += after or []
    token = get("github-token") or env.get(TOKEN_ENV, "")
    return Invocation(argv, {TOKEN_ENV: token} if token else {})


def _baseline(get: Callable[[str], str]) -> list[str]:
    """`baseline`: `auto`, or paths (files or directories), one per line. The
    lookup's inputs are checked whatever `baseline` says, so a typo shows
    the day it is made rather than the day `auto` is switched on."""
    workflow = get("baseline-workflow")
    if workflow and (problem := workflow_problem(workflow)):
        raise InputError(f"input 'baseline-workflow' {problem}; got {workflow!r}")
    artifact = get("baseline-artifact") or DEFAULTS["baseline-artifact"]
    if problem := artifact_problem(artifact):
        raise InputError(f"input 'baseline-artifact' {problem}; got {artifact!r}")
    runs = get("baseline-runs") or DEFAULTS["baseline-runs"]
    if problem := runs_problem(runs):
        raise InputError(f"input 'baseline-runs' {problem}; got {runs!r}")
    paths = [line.strip() for line in get("baseline").splitlines() if line.strip()]
    if [p.lower() for p in paths] == [AUTO]:
        argv = ["--baseline", AUTO, "--baseline-artifact", artifact, "--baseline-runs", runs]
        return argv + (["--baseline-workflow", workflow_name(workflow)] if workflow else [])
    if AUTO in (p.lower() for p in paths):
        raise InputError("input 'baseline' is either auto or paths, not both "
                         "(a file called auto: ./auto)")
    return [arg for path in paths for arg in ("--baseline", path)]


def _shard(get: Callable[[str], str], mode: str) -> list[str]:
    """`shard` (I/N, I from 1) and `start-at`, checked for shape here; the
    CLI judges the time against the clock (past, too far ahead)."""
    argv = []
    if shard := get("shard"):
        match = _SHARD.fullmatch(shard)
        if match is None or not 1 <= int(match[1]) <= int(match[2]):
            raise InputError(f"input 'shard' must be I/N with 1 <= I <= N (e.g. 2/4); "
                             f"got {shard!r}")
        argv += ["--shard", shard]
    if start_at := get("start-at"):
        try:
            rfc3339(start_at)
        except ValueError as exc:
            raise InputError(f"input 'start-at': {exc}") from None
        argv += ["--start-at", start_at]
    if argv and mode != "run":
        raise InputError("inputs 'shard' and 'start-at' are for mode run")
    return argv


def _merge(get: Callable[[str], str]) -> list[str]:
    """Mode merge: the shards' results (`merge-from`: files, directories or
    globs, one per line, read relative to the workspace) and
    `allow-partial`. Inputs that only make sense for a run are refused, so
    a merge job copied from a shard job does not silently ignore them."""
    for name in ("scenarios", "vars", "shard", "start-at", "scenario", "min-rate", "vus",
                 "duration", "stages", "iterations", "max-rps", "allowed-hosts"):
        if get(name):
            raise InputError(f"input '{name}' is not for mode merge (it merges the shards' "
                             f"results; set it on the shard jobs)")
    patterns = [line.strip() for line in get("merge-from").splitlines() if line.strip()]
    if not patterns:
        raise InputError("input 'merge-from' is required with mode merge (the shards' "
                         "results: a directory, files or globs such as shards/*/results.json)")
    paths = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise InputError(f"input 'merge-from': nothing matches {pattern!r}")
        paths += found
    return paths + (["--allow-partial"] if _boolean(get, "allow-partial") else [])


def _quick_overrides(get: Callable[[str], str]) -> list[str]:
    """k6's quick overrides, checked for shape here so a bad one is named as the
    input; how they combine (a lone `vus`, one scenario) the CLI judges."""
    argv = []
    for name in ("vus", "iterations"):
        if value := get(name).strip():
            if not value.isdigit() or int(value) < 1:
                raise InputError(f"input '{name}' must be a whole number of at least 1; "
                                 f"got {value!r}")
            argv += [f"--{name}", value]
    if value := get("duration").strip():
        if not _is_duration(value):
            raise InputError(f"input 'duration' must be a duration (e.g. 30s, 5m); got {value!r}")
        argv += ["--duration", value]
    for stage in _items(get("stages")):
        duration, sep, target = (part.strip() for part in stage.partition(":"))
        if not sep or not _is_duration(duration) or not target.isdigit():
            raise InputError(f"input 'stages': expected DURATION:TARGET (e.g. 30s:100), "
                             f"one per line or comma-separated; got {stage!r}")
        argv += ["--stage", f"{duration}:{target}"]
    return argv


def _is_duration(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


def _positive(name: str, text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise InputError(f"input '{name}' must be a positive number; got {text!r}")
    return text


def _capacity(get: Callable[[str], str]) -> list[str]:
    """Mode capacity: one `scenario` (the `scenarios` list is for mode run), and the gate."""
    scenario = get("scenario").strip()
    if not scenario:
        raise InputError("input 'scenario' is required with mode capacity (the scenario to search)")
    if get("scenarios").strip():
        raise InputError("input 'scenarios' is for mode run; mode capacity searches one "
                         "'scenario'")
    argv = ["--scenario", scenario]
    if min_rate := get("min-rate"):
        argv += ["--min-rate", _positive("min-rate", min_rate)]
    return argv


def _items(text: str) -> list[str]:
    """A comma- or newline-separated list, blanks dropped."""
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


def _boolean(get: Callable[[str], str], name: str) -> bool:
    value = get(name).lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise InputError(f"input '{name}' must be true or false; got {value!r}")


def input_error(exc: InputError) -> str:
    """The annotation line for a bad input."""
    return commands.error(str(exc), title="Invalid input")
