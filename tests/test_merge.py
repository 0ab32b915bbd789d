"""`loadaction merge`: shards' results documents merged exactly.

The property: however a sample set is split among shards, the merged
document's sinks equal one sink fed every sample (HDR percentiles, min, max,
count and mean of trends; counters; rates; a gauge's last, extremes, mean and
slope). Then real runs on a loopback target: the plan run whole and as two
segments, merged, gives the whole run's counts and verdicts, and a budget
that only the merged data breaks fails the merge (exit 99). Every refusal is
exit 2 and one line naming the file.
"""

from __future__ import annotations

import json
import textwrap
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadaction.cli import main
from loadaction.errors import PlanError
from loadaction.merge_command import merge_files
from loadaction.metrics.sinks import CounterSink, GaugeSink, RateSink, TrendSink
from loadaction.results.merge import merge_documents
from loadaction.results.schema import results_problem
from tests.target import serve

START = "2026-01-01T00:00:00+00:00"
PERCENTILES = (1, 10, 50, 90, 95, 99, 99.9, 100)


def _doc(metrics: dict[str, Any], *, segment: str = "0:1", sequence: str = "0,1",
         name: str = "p", profile: str | None = None, started: str = START,
         duration: float = 10.0, thresholds: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """A minimal results document around `metrics` (name -> sink)."""
    return {
        "schema": 1, "plan": {"name": name, "profile": profile}, "status": "complete",
        "started_at": started, "duration_s": duration,
        "timing": {"setup_s": None, "load_s": duration, "teardown_s": None},
        "execution": {"segment": segment, "sequence": sequence},
        "scenarios": [], "checks": [], "errors": [],
        "thresholds": [{"metric": m, "expression": e, "verdict": "pass",
                        "source": {"file": "p.yml", "line": 3}} for m, e in thresholds],
        "metrics": {n: {"type": s.kind, "total": s.summary(duration),
                        "by_tags": [{"tags": {}, "sink": s.summary(duration)}]}
                    for n, s in metrics.items()},
    }


def _sequence(parts: int) -> tuple[list[str], str]:
    points = ["0", *(f"{k}/{parts}" for k in range(1, parts)), "1"]
    return [f"{a}:{b}" for a, b in zip(points, points[1:])], ",".join(points)


def _sinks() -> dict[str, Any]:
    return {"d": TrendSink(), "c": CounterSink(), "r": RateSink(), "g": GaugeSink()}


samples = st.lists(st.tuples(st.floats(0, 60_000, allow_nan=False), st.booleans(),
                             st.integers(1, 5), st.integers(0, 3)), min_size=1, max_size=300)


@settings(max_examples=40, deadline=None)
@given(samples=samples, parts=st.integers(1, 4))
def test_any_split_merges_to_one_sink_fed_every_sample(samples, parts):
    whole = _sinks()
    shards = [_sinks() for _ in range(parts)]
    for t, (value, flag, count, owner) in enumerate(samples):
        for sinks in (whole, shards[owner % parts]):
            sinks["d"].add(value)
            sinks["c"].add(count)
            sinks["r"].add(flag)
            sinks["g"].add(value, t=float(t))
    segments, sequence = _sequence(parts)
    merged = merge_documents([(f"s{i}.json", _doc(s, segment=seg, sequence=sequence))
                              for i, (s, seg) in enumerate(zip(shards, segments))])
    assert results_problem(merged) is None
    m = {name: entry["total"] for name, entry in merged["metrics"].items()}
    d = TrendSink.from_summary(m["d"])
    assert d.count == whole["d"].count
    assert (d.min(), d.max(), d.avg()) == (whole["d"].min(), whole["d"].max(), whole["d"].avg())
    assert d.percentiles(PERCENTILES) == whole["d"].percentiles(PERCENTILES)
    assert m["c"] == whole["c"].summary(10.0)
    assert m["r"] == whole["r"].summary(10.0)
    g, want = m["g"], whole["g"].summary(10.0)
    assert (g["count"], g["min"], g["max"], g["last"]) == (
        want["count"], want["min"], want["max"], want["last"])
    assert g["avg"] == pytest.approx(want["avg"], rel=1e-9)
    assert (g["slope"] is None) == (want["slope"] is None)
    if want["slope"] is not None:
        assert g["slope"] == pytest.approx(want["slope"], rel=1e-6, abs=1e-6)


def test_shards_are_lined_up_on_wall_clock_time():
    """The second shard's load began 3 s later (--start-at): its series points, its gauge's
    last value and the merged duration are on the first one's clock."""
    early, late = TrendSink(), TrendSink()
    early.add(5)
    late.add(7)
    g_early, g_late = GaugeSink(), GaugeSink()
    g_early.add(1, t=9.0)  # read last by the early shard's clock, at 9 s
    g_late.add(2, t=7.0)  # at 7 s of the late one's: 10 s of the early one's
    a = _doc({"d": early, "g": g_early}, segment="0:1/2", sequence="0,1/2,1")
    b = _doc({"d": late, "g": g_late}, segment="1/2:1", sequence="0,1/2,1")
    b["execution"]["start_at"] = {"at": "2026-01-01T00:00:02+00:00",  # --start-at, 1 s late
                                  "began_at": "2026-01-01T00:00:03+00:00"}
    for doc, reqs in ((a, 4), (b, 6)):
        doc["series"] = {"interval_s": 1.0, "scenarios": {"s": [
            {"t": 1.002, "reqs": reqs, "failed": 0, "iterations": reqs, "vus": 1,
             "hdr": doc["metrics"]["d"]["total"]["hdr"], "max": doc["metrics"]["d"]["total"]["max"]}]}}
    merged = merge_documents([("a.json", a), ("b.json", b)])
    assert merged["duration_s"] == 13.0
    assert [(p["t"], p["reqs"]) for p in merged["series"]["scenarios"]["s"]] == [
        (1.002, 4), (4.002, 6)]
    assert merged["metrics"]["g"]["total"]["last"] == 2
    assert [s["offset_s"] for s in merged["merge"]["shards"]] == [0.0, 3.0]


def test_thresholds_are_judged_again_on_the_merged_data_and_no_data_fails():
    shards = []
    for segment in ("0:1/2", "1/2:1"):
        c = CounterSink()
        c.add(5)
        shards.append(_doc({"c": c}, segment=segment, sequence="0,1/2,1",
                           thresholds=(("c", "count<8"), ("http_req_duration", "p(95)<100"))))
    merged = merge_documents([(f"{i}.json", d) for i, d in enumerate(shards)])
    verdicts = {(t["metric"], t["expression"]): (t["verdict"], t["observed"])
                for t in merged["thresholds"]}
    assert verdicts == {("c", "count<8"): ("fail", 10.0),
                        ("http_req_duration", "p(95)<100"): ("no data", None)}


# ----------------------------------------------------------- real runs

PLAN = """
    name: merge-me
    target: {target}
    scenarios:
      users:
        executor: per-vu-iterations
        vus: 4
        iterations: 3
        exec: buy
      pool:
        executor: shared-iterations
        vus: 4
        iterations: 10
        exec: buy
    flows:
      buy:
        - request: {{url: /ok, name: ok}}
        - check: {{status: 200}}
    thresholds:
      http_req_duration: ["max<5000"]
      checks: ["rate==1"]
      "iterations{{scenario:users}}": ["count<10"]
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The plan run whole and as its two halves; {name: (exit code, path)}."""
    root = tmp_path_factory.mktemp("merge")
    with serve() as target:
        plan = root / "plan.yml"
        plan.write_text(textwrap.dedent(PLAN.format(target=target.url)).lstrip())
        out: dict[str, Any] = {"root": root, "plan": plan}
        for name, flags in (("whole", []), ("one", ["--shard", "1/2"]),
                            ("two", ["--shard", "2/2"])):
            code = main(["run", str(plan), "--out", str(root / name), "--quiet", *flags])
            out[name] = (code, root / name / "results.json")
        out["hits"] = target.hits["/ok"]
        yield out


def _doc_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _counts(doc: dict[str, Any]) -> dict[str, Any]:
    metrics = doc["metrics"]
    return {
        "reqs": metrics["http_reqs"]["total"]["count"],
        "iterations": {s["name"]: s["iterations"] for s in doc["scenarios"]},
        "durations": metrics["http_req_duration"]["total"]["count"],
        "vus_max": metrics["vus_max"]["total"]["max"],
        "checks": [(c["name"], c["scenario"], c["passes"], c["fails"]) for c in doc["checks"]],
        "verdicts": [(t["metric"], t["expression"], t["verdict"]) for t in doc["thresholds"]],
    }


def test_two_shards_merge_to_the_whole_run(runs, tmp_path, capsys):
    (whole_code, whole), (one_code, one), (two_code, two) = runs["whole"], runs["one"], runs["two"]
    assert runs["hits"] == 2 * 22  # the whole run's 22 requests, and the halves' 22
    assert whole_code == 99  # 12 iterations of `users`: count<10 fails
    assert (one_code, two_code) == (0, 0)  # 6 each: every shard alone holds it
    code = main(["merge", str(one), str(two), "--out", str(tmp_path / "m")])
    assert code == 99
    merged = _doc_of(tmp_path / "m" / "results.json")
    assert _counts(merged) == _counts(_doc_of(whole))
    assert merged["merge"]["partial"] is False
    assert merged["execution"] == {"segment": "0:1", "sequence": "0,1/2,1", "workers": 2}
    text = capsys.readouterr().out
    assert "1 budget(s) violated" in text and "partial merge" not in text
    assert (tmp_path / "m" / "report.md").read_text().startswith("### ❌")


def test_a_single_document_merges_to_itself(runs):
    doc, code = merge_files([runs["whole"][1]])
    whole = _doc_of(runs["whole"][1])
    assert code == 99
    assert _counts(doc) == _counts(whole)
    assert doc["series"] == whole["series"]
    assert doc["metrics"]["http_req_duration"] == whole["metrics"]["http_req_duration"]


def test_a_partial_merge_is_refused_unless_allowed_and_then_says_so(runs, tmp_path, capsys):
    one = runs["one"][1]
    assert main(["merge", str(one), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "segments 1/2:1 of 0,1/2,1 missing" in err and "--allow-partial" in err
    assert not (tmp_path / "m" / "results.json").exists()
    assert main(["merge", str(one), "--out", str(tmp_path / "m"), "--allow-partial"]) == 0
    merged = _doc_of(tmp_path / "m" / "results.json")
    assert merged["merge"]["partial"] is True and merged["merge"]["missing"] == ["1/2:1"]
    assert merged["execution"]["segment"] == "0:1/2"
    line = "partial merge: segments 1/2:1 of 0,1/2,1 missing"
    assert line in capsys.readouterr().out
    assert line in (tmp_path / "m" / "report.md").read_text()


def _edited(runs: dict[str, Any], tmp_path: Path, name: str, edit: Any) -> Path:
    doc = _doc_of(runs[name][1])
    edit(doc)
    path = tmp_path / f"{name}-edited.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("edit, says", [
    (lambda d: d["plan"].update(name="other"), "another plan ('other')"),
    (lambda d: d["plan"].update(sha256="0" * 64), "another version of plan 'merge-me'"),
    (lambda d: d["plan"].update(profile="pr"), "profile 'pr', not None"),
    (lambda d: d["execution"].update(segment="1/3:1", sequence="0,1/3,1"),
     "segment sequence 0,1/3,1, not 0,1/2,1"),
    (lambda d: d["execution"].update(segment="0:1/2"), "segment 0:1/2 overlaps 0:1/2"),
    (lambda d: d["thresholds"].pop(), "other thresholds than"),
    (lambda d: d["execution"].update(segment="1/4:1"), "segment 1/4:1 is not in its sequence"),
])
def test_mismatched_shards_are_refused_in_one_line(runs, tmp_path, capsys, edit, says):
    edited = _edited(runs, tmp_path, "two", edit)
    assert main(["merge", str(runs["one"][1]), str(edited), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and str(edited) in err, err
    assert "Traceback" not in err


def test_two_shards_that_both_ran_chaos_are_refused(runs, tmp_path):
    chaos = {"faults": [], "phases": [], "recovery": []}
    one = _edited(runs, tmp_path, "one", lambda d: d.update(chaos=chaos))
    two = _edited(runs, tmp_path, "two", lambda d: d.update(chaos=chaos))
    with pytest.raises(PlanError, match="ran chaos faults as .* did"):
        merge_files([one, two])
    doc, _ = merge_files([one, runs["two"][1]])
    assert doc["chaos"] == chaos


@pytest.mark.invalid_results
@pytest.mark.parametrize("content, says", [
    ("[1, 2]", "not a loadaction results document (expected a JSON object, got array)"),
    ("{nope", "invalid JSON"),
    ('{"schema": 7}', "unsupported results schema 7"),
])
def test_what_is_not_a_results_document_is_one_line(runs, tmp_path, capsys, content, says):
    bad = tmp_path / "results.json"
    bad.write_text(content)
    assert main(["merge", str(runs["one"][1]), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and str(bad) in err, err


def test_a_directory_is_every_results_json_under_it(runs, tmp_path):
    doc, code = merge_files([runs["root"] / "one", runs["root"] / "two", runs["two"][1]])
    assert code == 99 and [s["segment"] for s in doc["merge"]["shards"]] == ["0:1/2", "1/2:1"]


def test_regression_budgets_are_judged_against_baselines(runs, tmp_path):
    """The shards carry the plan's budget definitions (`plan.regressions`):
    the merge judges them against its --baseline, here the whole run."""
    budget = [{"metric": "http_reqs", "expression": "count <= +10%", "required": False,
               "source": {"file": "plan.yml", "line": 20}}]
    edit = lambda d: d["plan"].update(regressions=budget)  # noqa: E731
    one, two = (_edited(runs, tmp_path, n, edit) for n in ("one", "two"))
    whole = _doc_of(runs["whole"][1])
    whole["status"] = "complete"
    doc, _ = merge_files([one, two], baselines=[whole])
    (row,) = doc["regressions"]
    assert (row["metric"], row["value"], row["baseline_value"]) == ("http_reqs", 22.0, 22.0)
    assert row["verdict"] in ("no evidence", "insufficient data") and not row["failed"]


def test_a_partial_merge_merges_again_with_the_missing_shard(runs, tmp_path):
    partial, _ = merge_files([runs["one"][1]], allow_partial=True)
    path = tmp_path / "partial.json"
    path.write_text(json.dumps(partial))
    doc, code = merge_files([path, runs["two"][1]])
    assert code == 99 and doc["merge"]["partial"] is False
    assert _counts(doc) == _counts(_doc_of(runs["whole"][1]))


def test_the_fan_in_job_gets_the_github_step(runs, tmp_path, monkeypatch, capsys):
    """`merge --github` (the action's merge mode): the job summary and the
    outputs are the merged run's."""
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    for key in ("GITHUB_TOKEN", "GITHUB_EVENT_PATH", "GITHUB_REPOSITORY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    code = main(["merge", str(runs["one"][1]), str(runs["two"][1]), "--github",
                 "--out", str(tmp_path / "m")])
    assert code == 99
    assert "1 of 3 budgets violated" in summary.read_text()
    written = outputs.read_text()
    assert "passed" in written and "false" in written and "violations" in written
    assert "::error" in capsys.readouterr().out  # the violated budget, annotated


def test_four_shard_processes_started_at_one_time_merge_to_one_process(runs, tmp_path):
    """The issue's check: 4 processes with one --start-at, merged, give the
    counts and verdicts of the one process that ran the whole plan."""
    with serve() as target:
        plan = tmp_path / "plan.yml"
        plan.write_text(textwrap.dedent(PLAN.format(target=target.url)).lstrip())
        # late starters (a busy runner) begin at once within the tolerance
        at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        shards = [subprocess.Popen(
            [sys.executable, "-m", "loadaction", "run", str(plan), "--shard", f"{i}/4",
             "--start-at", at, "--start-at-tolerance", "60s", "--quiet",
             "--out", str(tmp_path / f"shard{i}")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(1, 5)]
        errors = [p.communicate(timeout=120)[1] for p in shards]
        assert [p.returncode for p in shards] == [0] * 4, errors
        assert target.hits["/ok"] == 22
    starts = {_doc_of(tmp_path / f"shard{i}" / "results.json")["execution"]["start_at"]["at"]
              for i in range(1, 5)}
    assert starts == {datetime.fromisoformat(at).isoformat()}
    doc, code = merge_files([tmp_path])
    assert code == 99
    assert _counts(doc) == _counts(_doc_of(runs["whole"][1]))
    assert doc["merge"]["sequence"] == "0,1/4,1/2,3/4,1" and not doc["merge"]["partial"]


def test_a_partial_merge_with_a_hole_has_no_execution_span():
    seq = "0,1/4,1/2,3/4,1"
    merged = merge_documents([("a.json", _doc({}, segment="0:1/4", sequence=seq)),
                              ("b.json", _doc({}, segment="1/2:3/4", sequence=seq))],
                             allow_partial=True)
    assert "execution" not in merged and results_problem(merged) is None
    assert merged["merge"]["missing"] == ["1/4:1/2", "3/4:1"]
    assert merged["merge"]["segments"] == ["0:1/4", "1/2:3/4"]


def test_the_worst_shard_status_is_the_merge_s_and_exits_like_run(runs, tmp_path):
    two = _edited(runs, tmp_path, "two",
                  lambda d: d.update(status="cancelled", status_reason="SIGINT"))
    doc, code = merge_files([runs["one"][1], two])
    assert (doc["status"], doc["status_reason"], code) == ("cancelled", f"{two}: SIGINT", 3)
