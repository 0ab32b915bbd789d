"""A shard run in worker processes (`--shard` with `--workers`): each worker
takes a segment of the shard's own striping (NestedExecution), so the
workers' shares sum exactly to the shard's and N shards x M workers to the
whole test. Pure functions, and one short sharded run with two workers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from loadaction.cli import main
from loadaction.errors import Source
from loadaction.plan import load_plan
from loadaction.plan.data import segment_rows
from loadaction.plan.executors import segment_share
from loadaction.plan.model import (
    ConstantArrivalRate, ConstantVUs, DataSource, ExecutorSpec, Limits, PerVUIterations,
    RampingArrivalRate, RampingVUs, SharedIterations,
)
from loadaction.plan.segments import (
    FULL_TUPLE, Execution, ExecutionTuple, NestedExecution, parse_segment, parse_sequence, shard,
)
from loadaction.workers.launch import segment_tuple, split_limits, within_from_json, within_to_json
from tests.target import SCANS
from tests.test_segments import EXECUTORS, planned_iterations, tuples

OUTER = ("0,1/2,1", "0,1/3,2/3,1", "0,1/4,1", "0,1/4,1/2,3/4,1")
WORKERS = (1, 2, 3, 4)
VALUES = (*range(0, 201), 1_000_003, 123_456_789)


def grid(sequence: str, count: int) -> list[list[Execution]]:
    """For each shard of `sequence`, its `count` workers' shares."""
    return [[segment_tuple(j, count, shard_) for j in range(count)] for shard_ in tuples(sequence)]


@pytest.mark.parametrize("sequence", OUTER)
@pytest.mark.parametrize("count", WORKERS)
def test_workers_sum_exactly_to_their_shard_and_shards_to_the_whole(sequence: str,
                                                                    count: int) -> None:
    shards = tuples(sequence)
    for shard_, workers in zip(shards, grid(sequence, count)):
        for value in VALUES:
            assert sum(w.scale(value) for w in workers) == shard_.scale(value), (value, shard_)
    for value in VALUES:
        assert sum(w.scale(value) for row in grid(sequence, count) for w in row) == value


@pytest.mark.parametrize("sequence", OUTER)
@pytest.mark.parametrize("count", WORKERS)
def test_every_index_has_one_owner_and_global_index_enumerates_its_own(sequence: str,
                                                                       count: int) -> None:
    parts = [w for row in grid(sequence, count) for w in row]
    span = 400
    assert [sum(p.owns(i) for p in parts) for i in range(span)] == [1] * span
    for part in parts:
        for value in (0, 1, 7, 60, span):
            owned = [i for i in range(value) if part.owns(i)]
            # its n-th thing's number in the whole test (VU ids, iterationInTest)
            assert [part.global_index(n) for n in range(part.scale(value))] == owned


@pytest.mark.parametrize("sequence", OUTER)
@pytest.mark.parametrize("count", WORKERS)
def test_rescaled_shares_recut_the_shards_and_their_workers_exactly(sequence: str,
                                                                    count: int) -> None:
    """What shared iterations and arrival rates are striped by: the shares
    that got some of `vus` re-cut the whole test again, exactly."""
    parts = [w for row in grid(sequence, count) for w in row]
    for vus in range(1, 41):
        stripes = [p.rescaled(vus) for p in parts]
        assert [s is None for s in stripes] == [p.scale(vus) == 0 for p in parts], vus
        live = [s for s in stripes if s is not None]
        assert sum(s.segment.length for s in live) == 1  # the rates' fractions
        for iterations in (0, 1, 5, 17, 99):
            assert sum(s.scale(iterations) for s in live) == iterations
        assert [sum(s.owns(i) for s in live) for i in range(120)] == [1] * 120


@pytest.mark.parametrize("sequence", OUTER)
def test_a_shards_workers_stripe_what_the_shard_alone_would(sequence: str) -> None:
    """A shard's iterations are the same whether one process or its workers
    run them: the workers' re-cut shares sum to the shard's re-cut share."""
    for shard_, workers in zip(tuples(sequence), grid(sequence, 3)):
        for vus in range(1, 25):
            alone = shard_.rescaled(vus)
            stripes = [s for s in (w.rescaled(vus) for w in workers) if s is not None]
            for iterations in (0, 1, 13, 50):
                assert sum(s.scale(iterations) for s in stripes) == \
                    (0 if alone is None else alone.scale(iterations)), (vus, iterations)


@pytest.mark.parametrize("sequence", OUTER)
@pytest.mark.parametrize("count", (2, 3))
def test_striped_offsets_walk_the_owned_indices(sequence: str, count: int) -> None:
    for part in (w for row in grid(sequence, count) for w in row):
        first, gaps, cycle = part.striped_offsets()
        assert sum(gaps) == cycle
        walked, at = [], first
        for k in range(3 * len(gaps)):
            walked.append(at)
            at += gaps[k % len(gaps)]
        assert walked == [part.global_index(n) for n in range(len(walked))]
    for shard_ in tuples(sequence):  # one worker: the shard's own offsets
        assert NestedExecution(shard_, FULL_TUPLE).striped_offsets() == shard_.striped_offsets()


def test_a_worker_of_a_shard_shows_as_the_shards_sequence_with_a_composed_segment() -> None:
    outer = ExecutionTuple(*shard(2, 4))
    assert segment_tuple(1, 3) == ExecutionTuple(*shard(2, 3))  # not sharded: plain
    worker = segment_tuple(1, 2, outer)
    assert isinstance(worker, NestedExecution) and not worker.is_full
    assert str(worker.segment) == "3/8:1/2" and worker.scale(400) == 50
    assert worker.sequence == worker.full_sequence == outer.sequence  # results and merge read it
    assert str(worker) == "1/2:1 of 1/4:1/2 in 0,1/4,1/2,3/4,1"
    assert NestedExecution(FULL_TUPLE, FULL_TUPLE).is_full


def test_the_within_pair_round_trips_through_json() -> None:
    assert within_to_json(FULL_TUPLE) is None and within_from_json(None) == FULL_TUPLE
    for outer in (ExecutionTuple(*shard(3, 4)),
                  ExecutionTuple(parse_segment("0.3:0.5"),
                                 parse_sequence("0,0.3,0.5,0.6,0.7,0.8,0.9,1")),
                  ExecutionTuple(parse_segment("1/4:1/2"))):  # k6's default sequence
        pair = json.loads(json.dumps(within_to_json(outer)))
        assert within_from_json(pair) == outer
    with pytest.raises(TypeError):
        within_to_json(segment_tuple(0, 2, ExecutionTuple(*shard(1, 2))))


def test_a_shards_caps_are_split_among_its_workers(write_plan: Any) -> None:
    """--max-requests given to a shard is that shard process's cap: its
    workers' shares sum to it (not to the shard's share of it)."""
    from loadaction.plan import load_plan
    limits = Limits(max_rps=30.0, max_requests=101, max_duration=90.0)
    outer = ExecutionTuple(*shard(2, 3))
    plan = load_plan(write_plan("""
        target: http://127.0.0.1:1
        scenarios:
          s: {executor: constant-vus, vus: 30, duration: 1s, exec: f}
        flows:
          f: [{request: {url: /ok}}]
    """), limits=limits, execution=outer)
    shares = [split_limits(plan, j, 3, outer) for j in range(3)]
    assert sum(s.max_requests or 0 for s in shares) == 101
    assert sum(s.max_rps or 0 for s in shares) == pytest.approx(30.0)
    assert {s.max_duration for s in shares} == {90.0}


def test_unique_rows_are_dealt_once_across_shards_and_workers() -> None:
    rows = tuple({"id": i} for i in range(37))
    unique = DataSource("rows", rows, "unique", Source("plan.yml", 1))
    for sequence in OUTER:
        for count in WORKERS:
            drawn = Counter(row["id"] for row_ in grid(sequence, count) for part in row_
                            for row in segment_rows(unique, part))
            assert drawn == Counter(range(37)), (sequence, count)


@pytest.mark.parametrize("sequence", ("0,1/2,1", "0,1/3,2/3,1", "0,1/4,1"))
@pytest.mark.parametrize("spec", EXECUTORS, ids=lambda spec: spec.kind)
def test_every_executors_planned_shares_over_shards_and_workers_sum_to_the_whole(
        spec: ExecutorSpec, sequence: str) -> None:
    whole = segment_share(spec, FULL_TUPLE)
    for count in (2, 3):
        parts = [w for row in grid(sequence, count) for w in row]
        shares = [segment_share(spec, part) for part in parts]
        assert sum(s.max_vus for s in shares) == whole.max_vus
        if isinstance(spec, (ConstantVUs, RampingVUs, PerVUIterations)):
            assert sum(s.vus for s in shares) == whole.vus
        if isinstance(spec, (PerVUIterations, SharedIterations)):
            assert sum(s.iterations or 0 for s in shares) == whole.iterations
            assert all(s.vus == 0 or (s.iterations or 0) >= s.vus for s in shares)
        if isinstance(spec, (ConstantArrivalRate, RampingArrivalRate)):
            assert sum(s.vus for s in shares) == spec.pre_allocated_vus
            assert sum(s.rate for s in shares) == 1
            counts = [planned_iterations(spec, part) for part in parts]
            total = planned_iterations(spec, FULL_TUPLE)
            assert sum(counts) == total
            for share, planned in zip(shares, counts):
                # striped twice: within one of its share at each level
                assert abs(planned - share.rate * total) < 2
                assert planned == 0 or share.max_vus > 0


# ------------------------------------------------------------------ a real run

NESTED_PLAN = """
    target: {url}
    data:
      rows: {{file: rows.json, mode: unique}}
    scenarios:
      pervu: {{executor: per-vu-iterations, vus: 5, iterations: 3, exec: pervu}}
      shared: {{executor: shared-iterations, vus: 4, iterations: 13, exec: shared}}
    flows:
      pervu: [{{request: {{method: POST, url: /scan,
                json: {{ticket: "pervu-{{{{ scenario.iteration }}}}"}}}}}}]
      shared: [{{request: {{method: POST, url: /scan, json: {{ticket: "{{{{ data.rows.id }}}}"}}}}}}]
"""


def test_a_shard_on_two_workers_sends_exactly_the_shards_share(target: Any, write_plan: Any,
                                                              tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text(json.dumps([{"id": f"r{i}"} for i in range(40)]))
    plan = write_plan(NESTED_PLAN.format(url=target.url))
    out = tmp_path / "out"
    assert main(["run", str(plan), "--out", str(out), "--quiet", "--shard", "2/3",
                 "--workers", "2"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert (doc["execution"]["segment"], doc["execution"]["sequence"]) == \
        ("1/3:2/3", "0,1/3,2/3,1")  # the shard's: what merge compares
    assert doc["execution"]["workers"] == 2
    own = load_plan(plan, execution=ExecutionTuple(*shard(2, 3)))
    expected = {s.name: segment_share(s.executor, own.execution).iterations
                for s in own.scenarios}
    assert expected == {"pervu": 6, "shared": 3}  # 2 of 5 VUs x 3; 3 of 13
    assert {s["name"]: s["iterations"] for s in doc["scenarios"]} == expected
    # every ticket scanned once: iteration numbers and unique rows are the
    # shard's, dealt disjointly to its two workers
    assert target.hits["/scan"] == 9 and len(target.app[SCANS]) == 9
    assert doc["metrics"]["http_reqs"]["total"]["count"] == 9

