"""What probes hand the outcome, and the kinds their failures are counted by."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ProbeErrorKind(StrEnum):
    CONNECT = "connect"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http_status"
    PARSE = "parse"
    NO_SERIES = "no_series"
    HOST_NOT_ALLOWED = "host_not_allowed"
    QUERY = "query"
    COMMAND_FAILED = "command_failed"
    NOT_A_NUMBER = "not_a_number"


class ProbeFailure(Exception):
    """One failed reading: counted under `kind`, its message (masked) kept as the last error."""

    def __init__(self, kind: ProbeErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


Tags = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Reading:
    metric: str
    tags: Tags  # the series' own tags; the plugin adds probe:<name>
    value: float


@dataclass(slots=True)
class ProbeStatus:
    name: str
    kind: str
    interval_s: float
    enabled: bool = True
    samples: int = 0  # readings that became gauge samples
    errors: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class SeriesPoints:
    metric: str
    tags: Tags
    points: tuple[tuple[float, float], ...]  # (run-clock seconds, value)


@dataclass(frozen=True, slots=True)
class Statement:
    """One row of the postgres probe's top statements, as deltas over the run."""

    probe: str
    queryid: str
    query: str  # truncated and masked
    calls: int
    total_ms: float
    mean_ms: float | None
    max_ms: float | None


@dataclass(frozen=True, slots=True)
class ProbesReport:
    probes: tuple[ProbeStatus, ...]
    series: tuple[SeriesPoints, ...]
    statements: tuple[Statement, ...]
