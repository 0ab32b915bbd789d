"""Execution segments (k6's semantics): parsing, striping, every executor's
share summing exactly to the whole plan, unique data rows, the flags, and
real sharded runs on a loopback server summing to the unsegmented run."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from loadaction.cli import main
from loadaction.engine.data import Feeder
from loadaction.engine.executors.stages import arrival_offsets, value_at
from loadaction.plan import load_plan
from loadaction.plan.data import segment_rows
from loadaction.plan.executors import segment_share
from loadaction.plan.model import (
    ConstantArrivalRate, ConstantVUs, DataSource, ExecutorSpec, PerVUIterations,
    RampingArrivalRate, RampingVUs, SharedIterations, Stage,
)
from loadaction.plan.segments import (
    FULL_TUPLE, ExecutionSegment, ExecutionTuple, SegmentSequence, parse_segment,
    parse_sequence, parse_shard, shard,
)
from loadaction.errors import Source
from tests.target import SCANS

SEQUENCES = ("0,1/2,1", "0,1/3,2/3,1", "0,1/4,1", "0,1/4,1/2,3/4,1", "0,0.3,0.5,0.6,0.7,0.8,0.9,1")


def tuples(sequence: str) -> list[ExecutionTuple]:
    seq = parse_sequence(sequence)
    return [ExecutionTuple(segment, seq) for segment in seq.segments()]


# ------------------------------------------------------------------ parsing

@pytest.mark.parametrize(("text", "expected"), [
    ("1/4:2/4", "1/4:1/2"), ("0:25%", "0:1/4"), ("0.25:0.5", "1/4:1/2"), ("1/4", "0:1/4"),
    ("0:1", "0:1"), ("50%:100%", "1/2:1"), (" 2/6 : 4/6 ", "1/3:2/3"),
])
def test_segment_forms_are_k6s(text: str, expected: str) -> None:
    assert str(parse_segment(text)) == expected


@pytest.mark.parametrize("text", ["", "a:b", "1/2:1/4", "0:2", "-1/4:1/2", "1/0", "1/4:1/4"])
def test_bad_segments_are_one_line_errors(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_segment(text)
    assert "\n" not in str(caught.value) and str(caught.value)


def test_sequences_print_canonically_and_must_cover_0_to_1_increasing() -> None:
    assert str(parse_sequence("0,1/4,2/4,3/4,1")) == "0,1/4,1/2,3/4,1"
    assert str(parse_sequence("0, 25%, 0.5, 1")) == "0,1/4,1/2,1"
    for bad in ("0,1/2", "1/4,1", "0,1/2,1/2,1", "0,3/4,1/2,1", "1", "", "0,x,1"):
        with pytest.raises(ValueError) as caught:
            parse_sequence(bad)
        assert "\n" not in str(caught.value)


def test_shard_is_the_ith_of_n_equal_segments() -> None:
    segment, sequence = shard(2, 4)
    assert (str(segment), str(sequence)) == ("1/4:1/2", "0,1/4,1/2,3/4,1")
    assert parse_shard("1/1") == (ExecutionSegment(Fraction(0), Fraction(1)),
                                  SegmentSequence((Fraction(0), Fraction(1))))
    for bad in ("0/4", "5/4", "2", "a/b", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_a_segment_without_a_sequence_gets_k6s_and_one_outside_it_is_refused() -> None:
    assert str(ExecutionTuple(parse_segment("1/4:1/2")).sequence) == "0,1/4,1/2,1"
    assert str(ExecutionTuple(parse_segment("0:1/2")).sequence) == "0,1/2,1"
    assert str(FULL_TUPLE.sequence) == "0,1" and str(FULL_TUPLE.segment) == "0:1"
    with pytest.raises(ValueError, match="not in the sequence"):
        ExecutionTuple(parse_segment("1/3:1/2"), parse_sequence("0,1/2,1"))


# ------------------------------------------------------------------ striping

@pytest.mark.parametrize(("sequence", "segment", "start", "offsets", "lcd"), [
    # k6's lib/execution_segment_test.go TestGetStripedOffsets
    ("0,0.3,0.5,0.6,0.7,0.8,0.9,1", "0:0.3", 0, (4, 3, 3), 10),
    ("0,0.3,0.5,0.6,0.7,0.8,0.9,1", "0.3:0.5", 1, (4, 6), 10),
    ("0,0.3,0.5,0.6,0.7,0.8,0.9,1", "0.8:0.9", 8, (10,), 10),
    ("0,0.2,0.5,0.6,0.7,0.8,0.9,1", "0:0.2", 1, (4, 6), 10),
    (None, "0:0.4", 1, (2, 3), 5),
    (None, "2/5:4/5", 1, (3, 2), 5),
    (None, "1/10:5/10", 1, (2, 2, 4, 2), 10),
])
def test_striped_offsets_match_k6(sequence: str | None, segment: str, start: int,
                                  offsets: tuple[int, ...], lcd: int) -> None:
    execution = ExecutionTuple(parse_segment(segment),
                               parse_sequence(sequence) if sequence else None)
    assert execution.striped_offsets() == (start, offsets, lcd)


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_scale_sums_exactly_and_indices_are_dealt_once(sequence: str) -> None:
    parts = tuples(sequence)
    for value in range(0, 61):
        assert sum(part.scale(value) for part in parts) == value
    owners = [[part.owns(i) for part in parts].count(True) for i in range(200)]
    assert owners == [1] * 200
    for part in parts:  # a segment's iteration numbers are exactly the indices it owns
        owned = [i for i in range(200) if part.owns(i)]
        assert [part.global_index(n) for n in range(len(owned))] == owned


# ------------------------------------------------------------ planned shares

STAGES = (Stage(2.0, 7.0), Stage(3.0, 7.0), Stage(1.5, 2.0), Stage(1.0, 11.0))
EXECUTORS: list[ExecutorSpec] = [
    ConstantVUs(duration=5.0, vus=7),
    RampingVUs(stages=STAGES, start_vus=3),
    PerVUIterations(vus=5, iterations=3),
    SharedIterations(vus=5, iterations=17),
    SharedIterations(vus=2, iterations=9),  # fewer VUs than segments: some get nothing
    ConstantArrivalRate(rate=13.0, duration=3.0, pre_allocated_vus=5, max_vus=9),
    RampingArrivalRate(stages=STAGES, pre_allocated_vus=2, max_vus=3, start_rate=4.0),
]


def planned_iterations(spec: ExecutorSpec, execution: ExecutionTuple) -> int:
    """Iterations the segment is planned to start (arrival rate: the whole
    schedule's offsets it owns)."""
    share = segment_share(spec, execution)
    if not share.runs or share.stripe is None:
        return 0
    if isinstance(spec, ConstantArrivalRate):
        offsets = arrival_offsets(spec.rate, (Stage(spec.duration, spec.rate),), spec.time_unit)
        end = spec.duration
    else:
        assert isinstance(spec, RampingArrivalRate)
        offsets = arrival_offsets(spec.start_rate, spec.stages, spec.time_unit)
        end = sum(stage.duration for stage in spec.stages)
    return sum(1 for i, t in enumerate(offsets) if t < end and share.stripe.owns(i))


@pytest.mark.parametrize("sequence", SEQUENCES)
@pytest.mark.parametrize("spec", EXECUTORS, ids=lambda spec: spec.kind)
def test_the_segments_planned_shares_sum_to_the_whole(spec: ExecutorSpec, sequence: str) -> None:
    parts = tuples(sequence)
    shares = [segment_share(spec, part) for part in parts]
    whole = segment_share(spec, FULL_TUPLE)
    assert sum(share.max_vus for share in shares) == whole.max_vus
    if isinstance(spec, (ConstantVUs, RampingVUs, PerVUIterations)):
        assert sum(share.vus for share in shares) == whole.vus
    if isinstance(spec, PerVUIterations):
        assert [share.iterations for share in shares] == [share.vus * 3 for share in shares]
    if isinstance(spec, (PerVUIterations, SharedIterations)):
        assert sum(share.iterations or 0 for share in shares) == whole.iterations
        assert all(share.vus == 0 or (share.iterations or 0) >= share.vus for share in shares)
    if isinstance(spec, RampingVUs):  # at every stage point and in between
        for step in range(0, 76):
            t = step / 10
            vus = math.floor(value_at(spec.start_vus, spec.stages, t) + 1e-9)
            assert sum(part.scale(vus) for part in parts) == vus, t
    if isinstance(spec, (ConstantArrivalRate, RampingArrivalRate)):
        assert sum(share.vus for share in shares) == spec.pre_allocated_vus
        assert sum(share.rate for share in shares) == 1  # exact fractions of the rate
        counts = [planned_iterations(spec, part) for part in parts]
        total = planned_iterations(spec, FULL_TUPLE)
        assert sum(counts) == total
        for share, count in zip(shares, counts):
            assert abs(count - share.rate * total) <= 1
            assert count == 0 or share.max_vus > 0  # no iteration without a VU to run it


def test_unique_rows_are_dealt_disjointly_and_cover_every_row() -> None:
    rows = tuple({"id": i} for i in range(23))
    unique = DataSource("rows", rows, "unique", Source("plan.yml", 1))
    sequential = DataSource("rows", rows, "sequential", Source("plan.yml", 1))
    for sequence in SEQUENCES:
        drawn = Counter(row["id"] for part in tuples(sequence)
                        for row in segment_rows(unique, part))
        assert drawn == Counter(range(23)), sequence
        assert all(segment_rows(sequential, part) == rows for part in tuples(sequence))


def test_sequential_rows_follow_the_whole_tests_draws_so_segments_start_apart() -> None:
    """A segment's n-th draw is the whole test's draw its striping numbers: the
    segments of a sequence together draw 0, 1, 2, ... (mod the rows) once each,
    and side by side they start on different rows when there are enough (one
    process's VUs do too)."""
    rows = tuple({"id": i} for i in range(7))
    sequential = DataSource("rows", rows, "sequential", Source("plan.yml", 1))
    whole = Feeder(sequential, random.Random(0))
    assert [whole.draw()["id"] for _ in range(9)] == [0, 1, 2, 3, 4, 5, 6, 0, 1]
    for sequence in SEQUENCES:
        parts = tuples(sequence)
        draws = [part.scale(70) for part in parts]  # each segment's share of 70 draws
        seen = Counter()
        for part, count in zip(parts, draws):
            feeder = Feeder(sequential, random.Random(0), part)
            seen.update(feeder.draw()["id"] for _ in range(count))
        assert seen == Counter({i: 10 for i in range(7)}), sequence
        many = DataSource("rows", tuple({"id": i} for i in range(23)), "sequential",
                          Source("plan.yml", 1))
        firsts = [Feeder(many, random.Random(0), p).draw()["id"] for p in parts]
        assert len(set(firsts)) == len(parts), sequence


# ------------------------------------------------------------------ flags

def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("flags", [
    ["--shard", "0/4"], ["--shard", "two"], ["--execution-segment", "1/2:1/4"],
    ["--execution-segment-sequence", "0,1/2"],
    ["--shard", "2/4", "--execution-segment", "0:1/2"],
    ["--execution-segment", "1/3:1/2", "--execution-segment-sequence", "0,1/2,1"],
    ["--execution-segment-sequence", "0,1/2,1"],
])
def test_bad_segment_flags_exit_2_with_one_line(flags: list[str], write_plan: Any,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan("""
        target: http://127.0.0.1:1
        scenarios:
          s: {executor: constant-vus, vus: 4, duration: 1s, exec: f}
        flows:
          f: [{request: {url: /ok}}]
    """)
    for command in ("validate", "run"):
        code, err = _cli([command, str(plan), *flags], capsys)
        assert code == 2, (command, flags, err)
        assert len(err.strip().splitlines()) == 1, err
        assert "segment" in err or "shard" in err


def test_validate_shows_the_segments_share(write_plan: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    plan = write_plan("""
        target: http://127.0.0.1:1
        scenarios:
          s: {executor: shared-iterations, vus: 4, iterations: 10, exec: f}
          lone: {executor: per-vu-iterations, vus: 1, iterations: 2, exec: f}
        flows:
          f: [{request: {url: /ok}}]
    """)
    assert main(["validate", str(plan), "--shard", "2/4"]) == 0
    out = capsys.readouterr().out
    assert "execution segment: 1/4:1/2 of sequence 0,1/4,1/2,3/4,1" in out
    assert "this segment: 3 iterations shared by 1 VUs" in out
    assert "this segment: nothing" in out


# ------------------------------------------------------------------ real runs

SHARDED_PLAN = """
    target: {url}
    data:
      rows: {{file: rows.json, mode: unique}}
    scenarios:
      pervu: {{executor: per-vu-iterations, vus: 5, iterations: 3, exec: pervu}}
      shared: {{executor: shared-iterations, vus: 3, iterations: 12, exec: shared}}
      lone: {{executor: per-vu-iterations, vus: 1, iterations: 2, exec: lone}}
      car: {{executor: constant-arrival-rate, rate: 30, timeUnit: 1s, duration: 1s,
            preAllocatedVUs: 4, maxVUs: 8, exec: car}}
      rar: {{executor: ramping-arrival-rate, startRate: 10, timeUnit: 1s,
            stages: [{{duration: 1s, target: 40}}], preAllocatedVUs: 4, maxVUs: 8, exec: rar}}
    flows:
      pervu: [{{request: {{method: POST, url: /scan,
                json: {{ticket: "pervu-{{{{ scenario.iteration }}}}"}}}}}}]
      shared: [{{request: {{method: POST, url: /scan, json: {{ticket: "{{{{ data.rows.id }}}}"}}}}}}]
      lone: [{{request: {{url: /status/202}}}}]
      car: [{{request: {{url: /ok}}}}]
      rar: [{{request: {{url: /status/204}}}}]
"""


def _run(plan: Path, out: Path, *flags: str) -> dict[str, Any]:
    assert main(["run", str(plan), "--out", str(out), "--quiet", *flags]) == 0
    return json.loads((out / "results.json").read_text())


def _iterations(doc: dict[str, Any]) -> dict[str, int]:
    return {s["name"]: s["iterations"] for s in doc["scenarios"]}


def test_three_shards_run_exactly_what_one_unsegmented_run_does(target: Any, write_plan: Any,
                                                                tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text(json.dumps([{"id": f"t{i}"} for i in range(12)]))
    plan = write_plan(SHARDED_PLAN.format(url=target.url))
    whole = _run(plan, tmp_path / "whole")
    assert (whole["execution"]["segment"], whole["execution"]["sequence"]) == ("0:1", "0,1")
    full = _iterations(whole)
    assert (full["pervu"], full["shared"], full["lone"]) == (15, 12, 2)
    target.app[SCANS].clear()
    target.hits.clear()

    shards = []
    for index in (1, 2, 3):
        doc = _run(plan, tmp_path / f"shard{index}", "--shard", f"{index}/3")
        assert doc["execution"]["segment"] == str(shard(index, 3)[0])
        assert doc["execution"]["sequence"] == "0,1/3,2/3,1"
        shards.append(doc)
    counts = [_iterations(doc) for doc in shards]
    for name in ("pervu", "shared", "lone"):  # exact, as k6's
        assert sum(c[name] for c in counts) == full[name], name
    assert sum(s["vus_max"] for doc in shards for s in doc["scenarios"]
               if s["name"] == "pervu") == 5
    assert target.hits["/status/202"] == 2  # one shard ran `lone`, the others skipped it
    # the unique rows were dealt disjointly (every scan a first one), and
    # scenario.iteration numbers the iterations uniquely across the shards
    assert target.hits["/scan"] == 27 and len(target.app[SCANS]) == 27
    assert {f"t{i}" for i in range(12)} <= target.app[SCANS]

    # arrival rate: each shard within 1 of its planned share of the whole schedule
    for index, counted in zip((1, 2, 3), counts):
        loaded = load_plan(plan, execution=ExecutionTuple(*shard(index, 3)))
        for scenario in loaded.scenarios:
            if scenario.name in ("car", "rar"):
                planned = planned_iterations(scenario.executor, loaded.execution)
                assert abs(counted[scenario.name] - planned) <= 1, (index, scenario.name)
    for name in ("car", "rar"):
        assert abs(sum(c[name] for c in counts) - full[name]) <= 3, name


def test_vu_numbers_are_unique_across_shards(target: Any, write_plan: Any,
                                                                     tmp_path: Path) -> None:
    """A plan keying accounts on `vu` (the bundled ticket purchase's emails) must
    never have two shards use one: each shard's VUs take its striped numbers."""
    plan = write_plan(f"""
        target: {target.url}
        scenarios:
          a: {{executor: per-vu-iterations, vus: 5, iterations: 1, exec: f}}
          b: {{executor: per-vu-iterations, vus: 2, iterations: 1, exec: f}}
        flows:
          f: [{{request: {{method: POST, url: /scan, json: {{ticket: "vu-{{{{ vu }}}}"}}}}}}]
    """)
    _run(plan, tmp_path / "whole")
    whole = set(target.app[SCANS])
    assert whole == {f"vu-{n}" for n in range(1, 8)}
    target.app[SCANS].clear()
    target.hits.clear()
    for index in (1, 2, 3):
        _run(plan, tmp_path / f"shard{index}", "--shard", f"{index}/3")
    # seven VUs, seven numbers: none used twice (a shard's are its striped ones, so they
    # need not be 1..7 as in the whole run)
    assert target.hits["/scan"] == 7 and len(target.app[SCANS]) == 7
