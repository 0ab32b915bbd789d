"""Profiles: one plan, several sizes (`smoke`, `pr`, `full`).

A profile scales durations, VUs, rates and iterations by factors, then
replaces individual scenario keys. Overrides are merged into the YAML
before the scenario is validated, so a bad override is reported at its own
line, and overridden keys are left unscaled (they are already the size the
profile wants).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from loadaction.errors import PlanError, Source, did_you_mean
from loadaction.plan.fields import check_keys, expect_map, expect_number
from loadaction.plan.model import Stage
from loadaction.plan.source import Entry, Map

SCALE_KEYS = ("duration", "vus", "rate", "iterations")
_DURATION_OPTIONS = ("duration", "maxDuration", "startTime")
_VU_OPTIONS = ("vus", "startVUs", "preAllocatedVUs", "maxVUs")
_RATE_OPTIONS = ("rate", "startRate")


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    source: Source
    duration: float = 1.0
    vus: float = 1.0
    rate: float = 1.0
    iterations: float = 1.0
    overrides: Mapping[str, Map] = field(default_factory=dict)
    factor_sources: Mapping[str, Source] = field(default_factory=dict)  # factor -> its line


def parse_profiles(node: Map | None, scenarios: Collection[str]) -> dict[str, Profile]:
    """All profiles, checked even when unused, so a typo fails before the
    scheduled run that would have picked that profile."""
    if node is None:
        return {}
    profiles = {}
    for name, entry in expect_map(node, "profiles").items():
        profiles[name] = _profile(name, entry, scenarios)
    return profiles


def select_profile(profiles: Mapping[str, Profile], name: str | None) -> Profile | None:
    if name is None:
        return None
    if not profiles:
        raise PlanError(f"unknown profile '{name}': the plan defines no profiles")
    if name not in profiles:
        raise PlanError(f"unknown profile '{name}' (choices: {', '.join(profiles)})",
                        hint=did_you_mean(name, profiles))
    return profiles[name]


def apply_overrides(scenario: Map, override: Map | None) -> Map:
    """The scenario mapping with the profile's keys replacing its own."""
    if override is None:
        return scenario
    return Map({**scenario.entries, **override.entries}, scenario.source)


def scale_options(options: Mapping[str, Any], executor: str, profile: Profile | None,
                  frozen: Collection[str]) -> dict[str, Any]:
    """Options with the profile's factors applied, except `frozen` keys."""
    scaled = dict(options)
    if profile is None:
        return scaled
    for key, value in options.items():
        if key in frozen:
            continue
        if key in _DURATION_OPTIONS:
            scaled[key] = value * profile.duration
        elif key in _VU_OPTIONS:
            scaled[key] = _scale_count(value, profile.vus)
        elif key in _RATE_OPTIONS:
            scaled[key] = value * profile.rate
        elif key == "iterations":
            scaled[key] = _scale_count(value, profile.iterations)
        elif key == "stages":
            scaled[key] = tuple(_scale_stage(stage, executor, profile) for stage in value)
    return scaled


def _scale_stage(stage: Stage, executor: str, profile: Profile) -> Stage:
    if executor == "ramping-vus":
        target = float(_scale_count(int(stage.target), profile.vus))
    else:
        target = stage.target * profile.rate
    return replace(stage, duration=stage.duration * profile.duration, target=target)


_COUNT_CEILING = 1 << 62
"""Scaled counts stop here (the limits refuse them; floor() of inf would raise)."""


def _scale_count(value: int, factor: float) -> int:
    """Round half up; anything that was at least 1 stays at least 1."""
    if value == 0:
        return 0
    scaled = value * factor + 0.5
    if not scaled < _COUNT_CEILING:
        return _COUNT_CEILING
    return max(1, math.floor(scaled))


def _profile(name: str, entry: Entry, scenarios: Collection[str]) -> Profile:
    node = expect_map(entry.value, f"profile '{name}'")
    check_keys(node, ("scale", "scenarios"), f"in profile '{name}'")
    factors: dict[str, float] = {}
    factor_sources: dict[str, Source] = {}
    scale = node.get("scale")
    if scale is not None:
        scale_map = expect_map(scale, "scale")
        check_keys(scale_map, SCALE_KEYS, "in scale")
        for key, factor in scale_map.items():
            factors[key] = expect_number(factor.value, key, positive=True)
            factor_sources[key] = factor.key_source
    overrides: dict[str, Map] = {}
    section = node.get("scenarios")
    if section is not None:
        for scenario, override in expect_map(section, "scenarios").items():
            if scenario not in scenarios:
                raise PlanError(f"profile '{name}' overrides unknown scenario '{scenario}'",
                                override.key_source, did_you_mean(scenario, scenarios))
            overrides[scenario] = expect_map(override.value, f"scenario '{scenario}'")
    return Profile(name, entry.key_source, overrides=overrides, factor_sources=factor_sources,
                   **factors)
