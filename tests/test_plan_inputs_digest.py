"""A plan is identified by every file it was loaded from (`plan.inputs_sha256`).

Shard machines with different versions of an included file, an `extends`
base or a data file ran different tests, so `loadaction merge` must refuse
their results. The digest is over the bytes the loader read, listed by path
from the plan file's directory: the same tree in two places has one digest,
one changed byte in any file the plan read changes it, and files the plan
does not read do not count.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from loadaction.cli import main
from loadaction.errors import PlanError
from loadaction.plan.loader import load_plan
from loadaction.results.merge import merge_documents
from loadaction.results.schema import results_problem
from tests.target import serve
from tests.test_merge import _doc

FILES = {
    "plan.yml": """\
        name: checkout
        target: {target}
        extends: base/base.yml
        include: [parts/flows.yml]
        data:
          rows: {{file: data/rows.json}}
          more: {{file: data/more.csv}}
        scenarios:
          users:
            executor: shared-iterations
            vus: 2
            iterations: 2
            exec: buy
        """,
    "base/base.yml": """\
        defaults:
          timeout: 5s
        vars:
          greeting: hello
        """,
    "parts/flows.yml": """\
        flows:
          buy:
            - request: {url: "/ok?id={{ data.rows.id }}&sku={{ data.more.sku }}", name: ok}
            - check: {status: 200}
        """,
    "data/rows.json": '[{"id": 1}, {"id": 2}]\n',
    "data/more.csv": "sku\na\nb\n",
    "unread.yml": "flows: {}\n",  # beside the plan, named by nothing
}
READ = [name for name in FILES if name != "unread.yml"]


def _tree(root: Path, target: str = "http://127.0.0.1:9") -> Path:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = textwrap.dedent(text)
        path.write_text(text.format(target=target) if name == "plan.yml" else text)
    return root / "plan.yml"


def _digest(plan: Path) -> str | None:
    return load_plan(plan).inputs_sha256


def test_the_same_files_in_another_directory_have_the_same_digest(tmp_path, monkeypatch):
    one = _digest(_tree(tmp_path / "one"))
    shutil.copytree(tmp_path / "one", tmp_path / "elsewhere" / "two")
    assert one is not None and len(one) == 64 and set(one) <= set("0123456789abcdef")
    assert _digest(tmp_path / "elsewhere" / "two" / "plan.yml") == one
    monkeypatch.chdir(tmp_path / "elsewhere")  # a relative plan path names the same files
    assert _digest(Path("two/plan.yml")) == one


@pytest.mark.parametrize("name", [*READ, "unread.yml"])
def test_one_more_byte_in_a_file_the_plan_read_changes_the_digest_and_in_another_not(tmp_path, name):
    """A trailing newline parses to the same plan: the digest is of the bytes."""
    plan = _tree(tmp_path)
    before = load_plan(plan)
    with open(tmp_path / name, "ab") as handle:
        handle.write(b"\n")
    after = load_plan(plan)
    assert after.data["rows"].rows == before.data["rows"].rows  # the same plan, parsed
    assert (after.inputs_sha256 != before.inputs_sha256) == (name in READ)


def _listing_digest(root: Path, names: list[str]) -> str:
    """The digest as docs/results-schema.md defines it, computed here."""
    pairs = sorted([name, hashlib.sha256((root / name).read_bytes()).hexdigest()]
                   for name in names)
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def test_the_digest_is_the_documented_listing_and_a_file_reached_twice_counts_once(tmp_path):
    """Included from the plan and from another include (a diamond), and a data
    file declared twice through `../`: each file is one entry, by its path
    from the plan's directory."""
    plan = _tree(tmp_path)
    assert _digest(plan) == _listing_digest(tmp_path, READ)
    (tmp_path / "parts" / "shared.yml").write_text("data:\n  again: {file: ../data/rows.json}\n")
    with open(tmp_path / "parts" / "flows.yml", "a") as handle:
        handle.write("include: [../parts/./shared.yml]\n")
    plan.write_text(plan.read_text().replace("include: [parts/flows.yml]",
                                             "include: [parts/flows.yml, parts/shared.yml]"))
    assert load_plan(plan).data["again"].rows == ({"id": 1}, {"id": 2})
    assert _digest(plan) == _listing_digest(tmp_path, [*READ, "parts/shared.yml"])


def _run(plan: Path, out: Path, shard: str) -> dict:
    code = main(["run", str(plan), "--out", str(out), "--quiet", "--workers", "1",
                 "--shard", shard])
    assert code == 0
    return json.loads((out / "results.json").read_text())


def test_shards_of_checkouts_whose_data_differ_are_not_merged(tmp_path, capsys):
    """Two shard machines' checkouts of one plan: merged while their files
    are equal, refused in one line (exit 2) once one data file differs,
    though the plan file itself (`plan.sha256`) is the same."""
    with serve() as target:
        one, two = _tree(tmp_path / "one", target.url), _tree(tmp_path / "two", target.url)
        first = _run(one, tmp_path / "r1", "1/2")
        second = _run(two, tmp_path / "r2", "2/2")
        assert results_problem(first) is None
        assert first["plan"]["inputs_sha256"] == second["plan"]["inputs_sha256"] == _digest(one)
        assert first["plan"]["sha256"] == hashlib.sha256(one.read_bytes()).hexdigest()
        assert main(["merge", str(tmp_path / "r1"), str(tmp_path / "r2"),
                     "--out", str(tmp_path / "m")]) == 0
        merged = json.loads((tmp_path / "m" / "results.json").read_text())
        assert merged["plan"]["inputs_sha256"] == first["plan"]["inputs_sha256"]

        (tmp_path / "two" / "data" / "more.csv").write_text("sku\na\nc\n")
        changed = _run(two, tmp_path / "r3", "2/2")
        assert target.hits["/ok"] == 3  # one iteration in each shard's VU
    assert changed["plan"]["sha256"] == first["plan"]["sha256"]
    assert changed["plan"]["inputs_sha256"] != first["plan"]["inputs_sha256"]
    capsys.readouterr()
    shard_one, shard_two = tmp_path / "r1" / "results.json", tmp_path / "r3" / "results.json"
    assert main(["merge", str(shard_one), str(shard_two), "--out", str(tmp_path / "m2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{shard_two}: loaded other plan inputs than {shard_one}" in err
    assert "an included, base or data file of plan 'checkout' differs: its inputs_sha256" in err
    assert not (tmp_path / "m2" / "results.json").exists()


def _shard(segment: str, inputs: str | None, *, absent: bool = False) -> dict:
    doc = _doc({}, segment=segment, sequence="0,1/3,2/3,1")
    if not absent:
        doc["plan"]["inputs_sha256"] = inputs
    return doc


def test_documents_without_the_digest_are_not_refused_on_it():
    """Older documents (absent or null) merge with newer ones; the merged
    document carries the digest of the shards that have one, and shards that
    do are compared with each other even when the first one has none."""
    merged = merge_documents([("a.json", _shard("0:1/3", None, absent=True)),
                              ("b.json", _shard("1/3:2/3", None)),
                              ("c.json", _shard("2/3:1", "ab" * 32))])
    assert merged["plan"]["inputs_sha256"] == "ab" * 32
    with pytest.raises(PlanError) as refused:
        merge_documents([("a.json", _shard("0:1/3", None)),
                         ("b.json", _shard("1/3:2/3", "ab" * 32)),
                         ("c.json", _shard("2/3:1", "cd" * 32))])
    assert str(refused.value).startswith("c.json: loaded other plan inputs than b.json")
