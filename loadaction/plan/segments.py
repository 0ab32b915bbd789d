"""Execution segments, with k6's semantics (lib/execution_segment.go).

A segment `a:b` of the unit interval is the share of a test one process
runs; a sequence `0,1/4,1/2,3/4,1` says how the whole test is cut, so that
the segments' shares of every integer (VUs, iterations, rows) sum exactly to
it. As in k6 the shares are striped rather than contiguous: for the sequence's
least common denominator `lcd`, each run of `lcd` consecutive indices is dealt
out by a fixed pattern, so that a segment of length 1/4 owns one index in
four from the start, not the last quarter. That keeps every prefix of a count
(a ramp that stops half way, an arrival-rate test cut by its duration) split
in proportion, within one per segment. A shard run in worker processes
nests: each worker takes a segment of the shard's own striping
(NestedExecution), so the workers' shares sum exactly to the shard's.

Pure and exact (`Fraction`s): the plan loader and the engine both read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from math import lcm
from typing import Protocol

ZERO = Fraction(0)
ONE = Fraction(1)


def _fraction(text: str) -> Fraction:
    """k6's forms: `1/4`, `0.25`, `25%`."""
    raw = text.strip()
    try:
        if raw.endswith("%"):
            return Fraction(raw[:-1].strip()) / 100
        return Fraction(raw)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text.strip()!r} is not a valid percentage, decimal or fraction")\
            from None


def _ratio(value: Fraction) -> str:
    """k6's RatString: `1/4`, `1`, `0`."""
    return str(value)


@dataclass(frozen=True, slots=True)
class ExecutionSegment:
    """The share `start:end` (0 <= start < end <= 1) of a test one process runs."""

    start: Fraction
    end: Fraction

    def __post_init__(self) -> None:
        if self.start < 0:
            raise ValueError(f"segment start must be at least 0, not {_ratio(self.start)}")
        if self.end > 1:
            raise ValueError(f"segment end must be at most 1, not {_ratio(self.end)}")
        if self.start >= self.end:
            raise ValueError(f"segment start ({_ratio(self.start)}) must be less than "
                             f"its end ({_ratio(self.end)})")

    @property
    def length(self) -> Fraction:
        return self.end - self.start

    @property
    def is_full(self) -> bool:
        return self.start == 0 and self.end == 1

    def __str__(self) -> str:
        return f"{_ratio(self.start)}:{_ratio(self.end)}"


FULL_SEGMENT = ExecutionSegment(ZERO, ONE)


def parse_segment(text: str) -> ExecutionSegment:
    """`1/4:2/4`, `0:25%`, `0.25:0.5`, or a lone end `1/4` (meaning `0:1/4`)."""
    raw = text.strip()
    if not raw:
        raise ValueError("execution segment is empty (expected e.g. 1/4:1/2)")
    start_text, sep, end_text = raw.partition(":")
    if not sep:
        start_text, end_text = "0", raw
    return ExecutionSegment(_fraction(start_text), _fraction(end_text))


@dataclass(frozen=True, slots=True)
class SegmentSequence:
    """How a whole test is cut: boundaries from 0 to 1, strictly increasing."""

    points: tuple[Fraction, ...]

    def __post_init__(self) -> None:
        if len(self.points) < 2:
            raise ValueError("an execution segment sequence needs at least 2 points, "
                             f"{len(self.points)} given")
        if self.points[0] != 0 or self.points[-1] != 1:
            raise ValueError(f"execution segment sequence {self} must start at 0 and end at 1")
        for before, after in zip(self.points, self.points[1:]):
            if after <= before:
                raise ValueError(f"execution segment sequence {self} must be strictly "
                                 f"increasing ({_ratio(after)} after {_ratio(before)})")

    def segments(self) -> tuple[ExecutionSegment, ...]:
        return tuple(ExecutionSegment(a, b) for a, b in zip(self.points, self.points[1:]))

    def index(self, segment: ExecutionSegment) -> int:
        """The segment's position; ValueError if it is not one of the sequence's."""
        for position, candidate in enumerate(self.segments()):
            if candidate == segment:
                return position
        raise ValueError(f"execution segment {segment} is not in the sequence {self}")

    def __str__(self) -> str:
        return ",".join(_ratio(point) for point in self.points)


FULL_SEQUENCE = SegmentSequence((ZERO, ONE))


def parse_sequence(text: str) -> SegmentSequence:
    """`0,1/4,2/4,3/4,1` (any of the segment forms for each point)."""
    raw = text.strip()
    if not raw:
        raise ValueError("execution segment sequence is empty (expected e.g. 0,1/2,1)")
    return SegmentSequence(tuple(_fraction(point) for point in raw.split(",")))


def filled_sequence(segment: ExecutionSegment) -> SegmentSequence:
    """The sequence k6 assumes when only a segment is given: 0,start,end,1."""
    points = [ZERO, segment.start, segment.end, ONE]
    return SegmentSequence(tuple(sorted(set(points))))


def shard(index: int, count: int) -> tuple[ExecutionSegment, SegmentSequence]:
    """`--shard i/N` (i from 1): the i-th of N equal segments, and their sequence."""
    if count < 1:
        raise ValueError(f"shard count must be at least 1, not {count}")
    if not 1 <= index <= count:
        raise ValueError(f"shard index must be between 1 and {count}, not {index}")
    sequence = SegmentSequence(tuple(Fraction(k, count) for k in range(count + 1)))
    return ExecutionSegment(Fraction(index - 1, count), Fraction(index, count)), sequence


def parse_shard(text: str) -> tuple[ExecutionSegment, SegmentSequence]:
    """`2/4` -> shard(2, 4)."""
    index_text, sep, count_text = text.strip().partition("/")
    try:
        if not sep:
            raise ValueError
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ValueError(f"shard {text.strip()!r} is not of the form i/N (e.g. 2/4)") from None
    return shard(index, count)


MAX_CYCLE = 1_000_000
"""Dealing a cycle costs time per index: a sequence of decimals with many
digits would make the tuple take seconds (k6 has no bound; fractions with
small denominators are what segments are written as)."""


def _stripes(sequence: SegmentSequence) -> tuple[int, tuple[tuple[int, ...], ...]]:
    """(lcd, for each segment the indices in [0, lcd) it owns).

    k6's dealing: every index goes to the first segment (largest first, ties in
    sequence order) that is behind its proportional share, so each segment's
    indices are spread evenly over the cycle.
    """
    lengths = [segment.length for segment in sequence.segments()]
    cycle = lcm(*(length.denominator for length in lengths))
    if cycle > MAX_CYCLE:
        raise ValueError(f"execution segment sequence {sequence} is cut too finely (its "
                         f"common denominator {cycle} is above {MAX_CYCLE}); use fractions")
    numerators = [int(length * cycle) for length in lengths]
    order = sorted(range(len(lengths)), key=lambda i: -numerators[i])  # stable
    chosen = [0] * len(lengths)
    owned: list[list[int]] = [[] for _ in lengths]
    for index in range(cycle):
        for rank, position in enumerate(order):
            share, rest = divmod(chosen[rank] * cycle, numerators[position])
            if index > share or (index == share and rest == 0):
                chosen[rank] += 1
                owned[position].append(index)
                break
    return cycle, tuple(tuple(indices) for indices in owned)


@dataclass(frozen=True, slots=True)
class ExecutionTuple:
    """A segment together with the sequence it is one of: what an executor
    needs to know which of the whole test's VUs and iterations are its own.
    With `sequence=None` the sequence is k6's default, 0,start,end,1."""

    segment: ExecutionSegment = FULL_SEGMENT
    sequence: SegmentSequence | None = None
    index: int = field(init=False)
    lcd: int = field(init=False)
    _stripes: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)
    _owned_set: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sequence = self.sequence or filled_sequence(self.segment)
        object.__setattr__(self, "sequence", sequence)
        position = sequence.index(self.segment)
        cycle, owned = _stripes(sequence)
        object.__setattr__(self, "index", position)
        object.__setattr__(self, "lcd", cycle)
        object.__setattr__(self, "_stripes", owned)
        object.__setattr__(self, "_owned_set", frozenset(owned[position]))

    @property
    def full_sequence(self) -> SegmentSequence:
        """The sequence, never None (for type checkers)."""
        assert self.sequence is not None
        return self.sequence

    @property
    def is_full(self) -> bool:
        """The whole test: nothing is scaled."""
        return self.segment.is_full

    def scale(self, value: int) -> int:
        """k6's ScaleInt64: this segment's share of `value` things (indices
        0..value-1), so that the shares of a sequence's segments sum to it."""
        return self._share(self.index, value)

    def _share(self, position: int, value: int) -> int:
        owned = self._stripes[position]
        whole, rest = divmod(value, self.lcd)
        return whole * len(owned) + sum(1 for index in owned if index < rest)

    def rescaled(self, value: int) -> ExecutionTuple | None:
        """k6's GetNewExecutionTupleFromValue: the sequence re-cut by each
        segment's share of `value` (segments with none dropped), so what is
        striped next (shared iterations, arrival-rate iterations) goes only to
        segments that got some of `value` (their VUs). None: this one got none."""
        if value < 1:
            return None
        if value % self.lcd == 0:
            return self
        points, mine = [0], None
        for position in range(len(self._stripes)):
            share = self._share(position, value)
            if share == 0:
                continue
            if position == self.index:
                mine = ExecutionSegment(Fraction(points[-1], value),
                                        Fraction(points[-1] + share, value))
            points.append(points[-1] + share)
        if mine is None:
            return None
        return ExecutionTuple(mine, SegmentSequence(tuple(Fraction(p, value) for p in points)))

    def global_index(self, n: int) -> int:
        """The whole test's index of this segment's `n`-th thing (from 0):
        its iterations' numbers are then unique across the segments (k6's
        SegmentedIndex, behind exec.scenario.iterationInTest)."""
        owned = self._stripes[self.index]
        whole, k = divmod(n, len(owned))
        return whole * self.lcd + owned[k]

    def owns(self, index: int) -> bool:
        """Whether global index `index` (from 0) of a striped count is this segment's."""
        return index % self.lcd in self._owned_set

    def striped_offsets(self) -> tuple[int, tuple[int, ...], int]:
        """k6's GetStripedOffsets: (first index, gaps to each next one, cycle)."""
        owned = self._stripes[self.index]
        gaps = tuple(b - a for a, b in zip(owned, owned[1:])) + (owned[0] + self.lcd - owned[-1],)
        return owned[0], gaps, self.lcd

    def __str__(self) -> str:
        return f"{self.segment} in {self.sequence}"


FULL_TUPLE = ExecutionTuple()


class Execution(Protocol):
    """The share of a test one process runs, as executors, feeders, the VU
    numbering and the results read it: a plain ExecutionTuple, or a
    NestedExecution (one worker's share of a shard)."""

    @property
    def segment(self) -> ExecutionSegment: ...
    @property
    def sequence(self) -> SegmentSequence | None: ...
    @property
    def full_sequence(self) -> SegmentSequence: ...
    @property
    def is_full(self) -> bool: ...
    def scale(self, value: int) -> int: ...
    def rescaled(self, value: int) -> Execution | None: ...
    def global_index(self, n: int) -> int: ...
    def owns(self, index: int) -> bool: ...
    def striped_offsets(self) -> tuple[int, tuple[int, ...], int]: ...


@dataclass(frozen=True, slots=True)
class NestedExecution:
    """Segment `inner` of segment `outer`: worker j of n inside a shard owns
    the shard's things whose rank among the shard's is owned by `inner`
    (j/n of 0,1/n,...,1). Other shards may run other worker counts, so the
    whole test's sequence cannot be re-cut; nesting keeps each shard's
    striping and splits it again, so the workers' shares sum exactly to the
    shard's, and the shards' to the whole."""

    outer: ExecutionTuple
    inner: ExecutionTuple

    @property
    def segment(self) -> ExecutionSegment:
        """The composed interval (for display: the ownership is striped, and
        not that of this segment in any sequence)."""
        start, length = self.outer.segment.start, self.outer.segment.length
        return ExecutionSegment(start + length * self.inner.segment.start,
                                start + length * self.inner.segment.end)

    @property
    def sequence(self) -> SegmentSequence:
        """The outer sequence: what results.json records and merge compares."""
        return self.outer.full_sequence

    @property
    def full_sequence(self) -> SegmentSequence:
        return self.outer.full_sequence

    @property
    def is_full(self) -> bool:
        return self.outer.is_full and self.inner.is_full

    def scale(self, value: int) -> int:
        return self.inner.scale(self.outer.scale(value))

    def rescaled(self, value: int) -> NestedExecution | None:
        """The shard re-cut by the shards' shares of `value`, and within it the
        workers re-cut by theirs of the shard's share (as one shard process
        and its workers each would): None if this worker got none."""
        outer = self.outer.rescaled(value)
        inner = self.inner.rescaled(self.outer.scale(value))
        if outer is None or inner is None:
            return None
        return NestedExecution(outer, inner)

    def global_index(self, n: int) -> int:
        return self.outer.global_index(self.inner.global_index(n))

    def owns(self, index: int) -> bool:
        # outer.scale(index): how many of the shard's indices come before it, its rank
        return self.outer.owns(index) and self.inner.owns(self.outer.scale(index))

    def striped_offsets(self) -> tuple[int, tuple[int, ...], int]:
        """As ExecutionTuple's, over one period of both stripings: the shard's
        inner.lcd cycles hold len(inner owned) x len(outer owned) of this share."""
        cycle = self.inner.lcd * self.outer.lcd
        count = self.inner.scale(self.inner.lcd) * self.outer.scale(self.outer.lcd)
        owned = [self.global_index(n) for n in range(count)]
        gaps = tuple(b - a for a, b in zip(owned, owned[1:])) + (owned[0] + cycle - owned[-1],)
        return owned[0], gaps, cycle

    def __str__(self) -> str:
        return f"{self.inner.segment} of {self.outer}"
