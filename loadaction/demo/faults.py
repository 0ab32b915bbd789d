"""Fault knobs of the demo target: added latency, injected errors, three
deliberate bugs (a non-atomic scan, a non-idempotent webhook, a checkout that
ignores its Idempotency-Key), a slow or lossy realtime feed, a memory leak
and a tiny database pool.

They exist so tests can prove each budget catches what it should. Faults set
with `expires_in_s` revert by themselves: a chaos run that dies before its
rollback cannot leave the target broken. Expiry is checked lazily on every
read against a monotonic clock, so there are no timers to cancel.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

FAULT_KEYS = ("latency_ms", "error_rate", "race", "double_webhook", "no_idempotency",
              "realtime_lag_ms", "realtime_drop_rate", "leak_kb", "pool_size")
MAX_LATENCY_MS = 60_000
MAX_LEAK_KB = 65_536                # per request
LEAK_CAP_BYTES = 1 << 30            # the leak stops growing at 1 GiB, so a long run cannot sink the machine
MAX_POOL_SIZE = 100                 # PostgreSQL's default max_connections
_MILLISECONDS = ("latency_ms", "realtime_lag_ms")
_RATES = ("error_rate", "realtime_drop_rate")
# pool_size 0 (the default size) is only the unset value: asking for 0 slots is refused
_COUNTS = {"leak_kb": (0, MAX_LEAK_KB), "pool_size": (1, MAX_POOL_SIZE)}
# --fault NAME=VALUE spellings and the keys they set; the other flags are switches.
_VALUE_FLAGS = {"latency": "latency_ms", "errors": "error_rate",
                "realtime-lag": "realtime_lag_ms", "realtime-drop": "realtime_drop_rate",
                "leak": "leak_kb", "pool": "pool_size"}
_INTEGERS = (*_MILLISECONDS, *_COUNTS)
_SWITCH_FLAGS = ("race", "double-webhook", "no-idempotency")


@dataclass(frozen=True, slots=True)
class Faults:
    """The faults in force; the default is a healthy target."""

    latency_ms: int = 0
    error_rate: float = 0.0
    race: bool = False
    double_webhook: bool = False
    no_idempotency: bool = False
    realtime_lag_ms: int = 0         # every postgres_changes message waits this long
    realtime_drop_rate: float = 0.0  # the chance that a message is lost, per subscriber
    leak_kb: int = 0                 # every request keeps this much memory for good (capped)
    pool_size: int = 0               # database pool slots; 0: the default (pool.DEFAULT_POOL_SIZE)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


HEALTHY = Faults()


@dataclass(frozen=True, slots=True)
class FaultUpdate:
    """Keys to replace, and optionally when they revert."""

    values: Mapping[str, Any]
    expires_in_s: float | None = None


@dataclass(frozen=True, slots=True)
class Invalid:
    """A rejected input, with a one-line message for the caller."""

    message: str


def _check(key: str, value: Any) -> Any | Invalid:
    if key in _COUNTS:
        low, high = _COUNTS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return Invalid(f"{key} must be an integer from {low} to {high}, got {value!r}")
        return value
    if key in _MILLISECONDS:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LATENCY_MS:
            return Invalid(f"{key} must be an integer from 0 to {MAX_LATENCY_MS}, got {value!r}")
        return value
    if key in _RATES:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            return Invalid(f"{key} must be a number from 0 to 1, got {value!r}")
        return float(value)
    if not isinstance(value, bool):
        return Invalid(f"{key} must be true or false, got {value!r}")
    return value


def parse_update(body: Any) -> FaultUpdate | Invalid:
    """Validate a `PUT /_control/faults` body."""
    if not isinstance(body, dict):
        return Invalid("expected a JSON object of faults")
    unknown = sorted(set(body) - set(FAULT_KEYS) - {"expires_in_s"})
    if unknown:
        return Invalid(f"unknown fault {unknown[0]!r} (known: {', '.join(FAULT_KEYS)}, expires_in_s)")
    values: dict[str, Any] = {}
    for key in FAULT_KEYS:
        if key in body:
            checked = _check(key, body[key])
            if isinstance(checked, Invalid):
                return checked
            values[key] = checked
    if not values:
        return Invalid(f"no fault given (known: {', '.join(FAULT_KEYS)})")
    expires = body.get("expires_in_s")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, (int, float))
                                or expires <= 0):
        return Invalid(f"expires_in_s must be a positive number of seconds, got {expires!r}")
    return FaultUpdate(values, None if expires is None else float(expires))


FLAG_HELP = ("latency=MS, errors=RATE, race, double-webhook, no-idempotency, realtime-lag=MS, "
             "realtime-drop=RATE, leak=KB (kept per request, capped at 1 GiB in all), "
             "pool=N (database connections; 503 after a 2 s wait)")


def parse_flags(specs: Iterable[str]) -> Faults | Invalid:
    """Read the CLI's `--fault` values (see FLAG_HELP)."""
    faults = HEALTHY
    for spec in specs:
        name, sep, raw = spec.partition("=")
        name = name.strip().lower()
        if name in _SWITCH_FLAGS and not sep:
            faults = replace(faults, **{name.replace("-", "_"): True})
            continue
        if name in _VALUE_FLAGS and sep:
            key = _VALUE_FLAGS[name]
            try:
                number: Any = int(raw) if key in _INTEGERS else float(raw)
            except ValueError:
                return Invalid(f"--fault {spec}: {raw!r} is not a number")
            checked = _check(key, number)
            if isinstance(checked, Invalid):
                return Invalid(f"--fault {spec}: {checked.message}")
            faults = replace(faults, **{key: checked})
            continue
        return Invalid(f"--fault {spec!r}: expected one of {FLAG_HELP}")
    return faults


@dataclass(slots=True)
class FaultState:
    """The faults of one target instance (never module-global: tests run many).

    `base` is what the target was started with (`--fault`); the control
    endpoint layers transient faults over it, and clearing or expiry goes back
    to `base`, so a target started slow stays slow whatever a chaos run undoes.
    """

    base: Faults = HEALTHY
    clock: Callable[[], float] = time.monotonic
    _set: dict[str, Any] = field(default_factory=dict)
    _expiry: dict[str, float] = field(default_factory=dict)
    _error_credit: float = 0.0

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, deadline in self._expiry.items() if deadline <= now]:
            self._set.pop(key, None)
            del self._expiry[key]

    def current(self) -> Faults:
        self._expire()
        return replace(self.base, **self._set)

    def describe(self) -> dict[str, Any]:
        """Current faults plus seconds left for those that expire."""
        faults = self.current()
        now = self.clock()
        return {**faults.as_dict(),
                "expires_in_s": {k: round(d - now, 3) for k, d in sorted(self._expiry.items())}}

    def apply(self, update: FaultUpdate) -> None:
        self._expire()
        for key, value in update.values.items():
            self._set[key] = value
            if update.expires_in_s is None:
                self._expiry.pop(key, None)
            else:
                self._expiry[key] = self.clock() + update.expires_in_s
        if "error_rate" in update.values:
            self._error_credit = 0.0

    def clear(self) -> None:
        self._set.clear()
        self._expiry.clear()
        self._error_credit = 0.0

    def should_fail(self) -> bool:
        """Fail exactly `error_rate` of calls, evenly spread (every Nth at 1/N).

        An accumulator rather than a random draw, so a test that sends 100
        requests at 0.1 sees exactly 10 failures, every run.
        """
        rate = self.current().error_rate
        if rate <= 0:
            return False
        self._error_credit += rate
        if self._error_credit >= 1 - 1e-9:
            self._error_credit -= 1
            return True
        return False


@dataclass(slots=True)
class Leak:
    """What the `leak` fault keeps: real, written bytes (untouched zero pages
    would not count in RSS), held by the target instance until it stops."""

    cap_bytes: int = LEAK_CAP_BYTES
    _kept: list[bytes] = field(default_factory=list)
    held_bytes: int = 0

    def keep(self, kb: int) -> None:
        size = min(kb * 1024, self.cap_bytes - self.held_bytes)
        if size > 0:
            self._kept.append(b"\xa5" * size)
            self.held_bytes += size
