"""Hostile plans through the real CLI: each is refused with exit 2 and one
`file:line: message` line, no traceback, quickly, inside a memory limit.

Every case runs `loadaction validate` (some also `run`) in a subprocess with
1 GiB of address space and a timeout (tests/hostile.py), in a scratch
directory holding the plan and the files it names.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.hostile import Outcome, assert_rejected, run_cli

REJECTED_WITHIN_S = 5.0

TARGET = "target: http://127.0.0.1:9\n"
FLOW = "flows:\n  main: [{request: {url: /}}]\n"


def scenario(body: str) -> str:
    """A plan with one scenario `main` (line 4 onwards) whose mapping is `body`."""
    return TARGET + FLOW + "scenarios:\n  main:\n" + textwrap.indent(textwrap.dedent(body), "    ")


def billion_laughs() -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        name, previous = f"l{level}", "a" if level == 1 else f"l{level - 1}"
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


def wide_aliases() -> str:
    items = ", ".join(f"item{index}" for index in range(1000))
    return f"{TARGET}vars:\n  base: &base [{items}]\n  copies: [{', '.join(['*base'] * 200)}]\n"


def deep_block(levels: int) -> str:
    return TARGET + "vars:\n" + "".join(f"{'  ' * (depth + 1)}k{depth}:\n"
                                        for depth in range(levels)) + "  " * (levels + 1) + "x\n"


def sparse(size: int, head: bytes = TARGET.encode()) -> Callable[[Path], None]:
    """A file of `size` bytes that costs nothing to write (it is sparse)."""
    def write(path: Path) -> None:
        with open(path, "wb") as handle:
            handle.write(head)
            handle.truncate(size)
    return write


@dataclass(frozen=True)
class Case:
    plan: str | bytes | Callable[[Path], None]
    says: str | tuple[str, ...]
    where: str | None = "plan.yml"
    files: dict[str, str | bytes | Callable[[Path], None]] = field(default_factory=dict)
    args: tuple[str, ...] = ()


CASES: dict[str, Case] = {
    # ---- YAML tags outside the core schema
    "python object tag": Case(
        TARGET + 'name: !!python/object/apply:os.system ["touch pwned"]\n',
        "YAML tag '!!python/object/apply:os.system' is not allowed", "plan.yml:2"),
    "python name tag on a mapping": Case(
        TARGET + "vars: !!python/object:os.environ {a: 1}\n",
        "YAML tag '!!python/object:os.environ' is not allowed", "plan.yml:2"),
    "custom tag": Case(TARGET + "name: !include other.yml\n",
                       "YAML tag '!include' is not allowed", "plan.yml:2"),
    "binary tag": Case(TARGET + "name: !!binary aGVsbG8=\n",
                       "YAML tag '!!binary' is not allowed", "plan.yml:2"),
    "set tag": Case(TARGET + "vars: !!set {a, b}\n", "YAML tag '!!set' is not allowed",
                    "plan.yml:2"),
    "core tag on the wrong value": Case(TARGET + "name: !!int twelve\n",
                                        "'twelve' is not a valid !!int", "plan.yml:2"),
    # ---- aliases
    "billion laughs": Case(billion_laughs(), "aliases expand to more than 100,000 values"),
    "one anchor repeated 200 times": Case(wide_aliases(),
                                          "aliases expand to more than 100,000 values",
                                          "plan.yml:4"),
    "alias as a mapping key": Case(TARGET + "a: &k [x]\nvars: {*k : 1}\n",
                                   "a mapping key must be a plain value", "plan.yml:3"),
    # ---- nesting
    "100,000 nested lists": Case(TARGET + "vars: {x: " + "[" * 100_000 + "]" * 100_000 + "}\n",
                                 "nesting deeper than 100 levels", "plan.yml:2"),
    "100,000 nested mappings": Case(TARGET + "vars: " + "{a: " * 100_000 + "1" + "}" * 100_000
                                    + "\n", "nesting deeper than 100 levels", "plan.yml:2"),
    "150 indented levels": Case(deep_block(150), "nesting deeper than 100 levels"),
    # ---- size
    "a 50 MB plan": Case(sparse(50 << 20), "plan.yml is larger than 8 MiB (50 MiB)",
                         "plan.yml:1"),
    "an include of 9 MB": Case(TARGET + FLOW + "include: [big.yml]\n", "big.yml is larger than 8 MiB",
                               "plan.yml:4", files={"big.yml": sparse(9 << 20, b"")}),
    "includes adding up past 8 MiB": Case(
        TARGET + "include: [a.yml, b.yml]\n", "would take the plan and its includes past 8 MiB",
        "plan.yml:2", files={"a.yml": "vars: {}\n# " + "x" * (3 << 20) + "\n",
                             "b.yml": sparse(6 << 20, b"flows: {}\n")}),
    # ---- bytes that are not UTF-8 text
    "invalid UTF-8": Case(TARGET.encode() + b"name: ok\nvars: {a: caf\xe9}\n",
                          "not valid UTF-8 (byte 0xe9 at column 14)", "plan.yml:3"),
    "UTF-16": Case("target: http://127.0.0.1:9\n".encode("utf-16"),
                   "not valid UTF-8 (byte 0xff at column 1)", "plan.yml:1"),
    "a NUL byte": Case(TARGET.encode() + b"name: a\x00b\n", "unacceptable character #x0000",
                       "plan.yml:2"),
    "an included PNG": Case(TARGET + "include: [logo.png]\n", "not valid UTF-8 (byte 0x89",
                            "logo.png:1", files={"logo.png": b"\x89PNG\r\n\x1a\n\x00\x00"}),
    # ---- absurd load
    "a trillion VUs": Case(scenario("executor: constant-vus\nvus: 1000000000000\nduration: 10s\n"),
                           ("at most 50,000", "split the load across processes or machines"),
                           "plan.yml:7"),
    "rate 1e12": Case(scenario("executor: constant-arrival-rate\nrate: 1e12\nduration: 10s\n"
                               "preAllocatedVUs: 10\n"),
                      ("at most 100,000 iterations/s", "split the load"), "plan.yml:7"),
    "rate per millisecond": Case(scenario("executor: constant-arrival-rate\nrate: 1000\n"
                                          "timeUnit: 1ms\nduration: 10s\npreAllocatedVUs: 10\n"),
                                 "1,000,000/s", "plan.yml:7"),
    "10^15 shared iterations": Case(
        scenario("executor: shared-iterations\niterations: 1000000000000000\n"),
        "at most 1,000,000,000", "plan.yml:7"),
    "VUs times iterations": Case(
        scenario("executor: per-vu-iterations\nvus: 10000\niterations: 1000000\n"),
        "10,000,000,000 iterations (10,000 VUs x 1,000,000 each)", "plan.yml:8"),
    "a ramp to a billion VUs": Case(
        scenario("executor: ramping-vus\nstages: [{duration: 10s, target: 1000000000}]\n"),
        "a target of 1,000,000,000 VUs", "plan.yml:7"),
    "a ramp to a billion iterations/s": Case(
        scenario("executor: ramping-arrival-rate\npreAllocatedVUs: 1\n"
                 "stages: [{duration: 10s, target: 1e9}]\n"),
        "a target of 1,000,000,000 iterations/s", "plan.yml:8"),
    "ten million maxVUs": Case(
        scenario("executor: constant-arrival-rate\nrate: 10\nduration: 10s\n"
                 "preAllocatedVUs: 1\nmaxVUs: 10000000\n"), "10,000,000 VUs", "plan.yml:10"),
    "a profile scaling VUs a millionfold": Case(
        TARGET + FLOW + "profiles:\n  huge:\n    scale: {vus: 1000000}\n"
        "scenarios:\n  main: {executor: constant-vus, vus: 100, duration: 10s}\n",
        "profile 'huge' scales vus of scenario 'main' (x1e+06): 100,000,000 VUs", "plan.yml:6",
        args=("--profile", "huge")),
    "overlapping scenarios": Case(
        TARGET + FLOW + "scenarios:\n"
        "  a: {executor: constant-vus, vus: 40000, duration: 1m, exec: main}\n"
        "  b: {executor: constant-vus, vus: 40000, duration: 1m, exec: main, startTime: 30s}\n",
        "scenarios running at the same time need 80,000 VUs", "plan.yml:6"),
    "a billion copies of each request": Case(
        TARGET + "flows:\n  main: [{request: {name: home, url: /}}]\nscenarios:\n"
        "  main: {executor: constant-vus, duration: 10s}\nchaos:\n"
        "  - {name: f, kind: duplicate, duration: 1s, requests: [home], copies: 1000000000}\n",
        "copies: at most 100, got 1,000,000,000", "plan.yml:7"),
    # ---- durations
    "a duration of 10^29 s": Case(scenario("executor: constant-vus\nduration: 1e29\n"),
                                  "longer than 7 days", "plan.yml:7"),
    "a duration of 10^8 hours": Case(scenario("executor: constant-vus\nduration: 100000000h\n"),
                                     "longer than 7 days", "plan.yml:7"),
    "a start time 8 days away": Case(scenario("executor: constant-vus\nduration: 1s\n"
                                              "startTime: 192h\n"), "longer than 7 days",
                                     "plan.yml:8"),
    "stages adding up past 7 days": Case(
        scenario("executor: ramping-vus\nstages: [{duration: 100h, target: 1}, "
                 "{duration: 100h, target: 1}]\n"),
        "scenario 'main' runs until 720000s, longer than 7 days", "plan.yml:5"),
    "a think time of 10^20 s": Case(TARGET + "flows:\n  main:\n    - think: 1e20\n"
                                    "scenarios:\n  main: {executor: constant-vus, duration: 1s}\n",
                                    "longer than 7 days", "plan.yml:4"),
    # ---- nan, inf, integers too long
    "rate nan": Case(scenario("executor: constant-arrival-rate\nrate: .nan\nduration: 10s\n"
                              "preAllocatedVUs: 1\n"), "rate: expected a number, got nan",
                     "plan.yml:7"),
    "vus inf": Case(scenario("executor: constant-vus\nvus: .inf\nduration: 10s\n"),
                    "vus: expected an integer, got inf", "plan.yml:7"),
    "duration inf": Case(scenario("executor: constant-vus\nduration: .inf\n"),
                         "invalid duration inf", "plan.yml:7"),
    "a scale factor of inf": Case(
        TARGET + FLOW + "profiles:\n  p:\n    scale: {vus: .inf}\n"
        "scenarios:\n  main: {executor: constant-vus, duration: 10s}\n",
        "vus: expected a number, got inf", "plan.yml:6"),
    "a 5000-digit integer": Case(scenario("executor: constant-vus\nvus: " + "9" * 5000
                                          + "\nduration: 10s\n"),
                                 "integer with 5000 digits is too long", "plan.yml:7"),
    # ---- negative or zero where it makes no sense
    "zero VUs": Case(scenario("executor: constant-vus\nvus: 0\nduration: 10s\n"),
                     "vus: must be at least 1, got 0", "plan.yml:7"),
    "a negative duration": Case(scenario("executor: constant-vus\nduration: -5s\n"),
                                "invalid duration '-5s'", "plan.yml:7"),
    "rate zero": Case(scenario("executor: constant-arrival-rate\nrate: 0\nduration: 10s\n"
                               "preAllocatedVUs: 1\n"), "rate: must be greater than 0",
                      "plan.yml:7"),
    "a zero time unit": Case(scenario("executor: constant-arrival-rate\nrate: 1\ntimeUnit: 0s\n"
                                      "duration: 10s\npreAllocatedVUs: 1\n"),
                             "timeUnit: must be longer than 0s", "plan.yml:8"),
    # ---- structure
    "an unknown key deep in a request": Case(
        TARGET + "flows:\n  main:\n    - request:\n        url: /\n        hedaers: {a: b}\n"
        "scenarios:\n  main: {executor: constant-vus, duration: 1s}\n",
        "unknown key 'hedaers'", "plan.yml:6"),
    "an unknown key in a fault": Case(
        scenario("executor: constant-vus\nduration: 10s\n")
        + "chaos:\n  - {name: f, kind: abort, duration: 1s, requests: [/], copies: 2}\n",
        "unknown key 'copies' in fault 'f'", "plan.yml:9"),
    "scenarios as a list": Case(TARGET + FLOW + "scenarios: [main]\n",
                                "scenarios: expected a mapping, got a list", "plan.yml:4"),
    "vus as words": Case(scenario("executor: constant-vus\nvus: ten\nduration: 10s\n"),
                         "vus: expected an integer, got 'ten'", "plan.yml:7"),
    "a mapping as a key": Case(TARGET + "vars:\n  ? {a: 1}\n  : x\n",
                               "a mapping key must be a plain value", "plan.yml:3"),
    "two documents": Case(TARGET + "---\n" + TARGET, "expected a single document",
                          "plan.yml:2"),
    "a duplicate key": Case(TARGET + TARGET, "duplicate key 'target'", "plan.yml:2"),
    # ---- files that are not plans
    "an empty file": Case("", "plan: expected a mapping, got nothing", "plan.yml:1"),
    "only comments": Case("# nothing here\n", "plan: expected a mapping, got nothing",
                          "plan.yml:1"),
    "a directory": Case(lambda path: path.mkdir(), "cannot read plan.yml: Is a directory"),
    "a device": Case(lambda path: path.symlink_to("/dev/zero"),
                     "cannot read plan.yml: not a regular file"),
    "a missing file": Case(lambda path: None,
                           "cannot read plan.yml: No such file or directory"),
    "a plan including itself": Case(TARGET + "include: [plan.yml]\n",
                                    "include cycle: plan.yml -> plan.yml", "plan.yml:2"),
    "a plan extending itself": Case(TARGET + "extends: plan.yml\n",
                                    "extends cycle: plan.yml -> plan.yml", "plan.yml:2"),
    "an include of a missing file": Case(TARGET + "include: [nothere.yml]\n",
                                         "cannot read nothere.yml: No such file or directory",
                                         "plan.yml:2"),
    "an include of a directory": Case(TARGET + "include: [sub]\n",
                                      "cannot read sub: Is a directory", "plan.yml:2",
                                      files={"sub": lambda path: path.mkdir()}),
    "a data file nested 100,000 deep": Case(
        TARGET + FLOW + "data:\n  rows: {file: rows.json}\n"
        "scenarios:\n  main: {executor: constant-vus, duration: 1s}\n",
        "JSON nested too deeply", "plan.yml:5",
        files={"rows.json": "[" * 100_000 + "]" * 100_000}),
}


def _write(path: Path, content: str | bytes | Callable[[Path], None]) -> None:
    if callable(content):
        content(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def _run(case: Case, tmp_path: Path, command: str) -> Outcome:
    for name, content in case.files.items():
        _write(tmp_path / name, content)
    _write(tmp_path / "plan.yml", case.plan)
    return run_cli([command, "plan.yml", *case.args], cwd=tmp_path)


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 35


@pytest.mark.parametrize("name", list(CASES))
def test_validate_refuses(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    outcome = _run(case, tmp_path, "validate")
    assert_rejected(outcome, says=case.says, where=case.where)
    assert outcome.seconds < REJECTED_WITHIN_S, outcome.seconds
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("name", ["python object tag", "billion laughs", "100,000 nested lists",
                                  "a 50 MB plan", "a trillion VUs", "rate 1e12",
                                  "a duration of 10^29 s", "a plan including itself"])
def test_run_refuses_before_sending(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    outcome = _run(case, tmp_path, "run")
    assert_rejected(outcome, says=case.says, where=case.where)
    assert outcome.seconds < REJECTED_WITHIN_S, outcome.seconds
    assert not (tmp_path / "pwned").exists()


def test_anchors_aliases_and_merge_keys_still_work(tmp_path: Path) -> None:
    (tmp_path / "plan.yml").write_text(textwrap.dedent("""\
        target: http://127.0.0.1:9
        flows:
          main:
            - request: &get {name: home, url: /, headers: &common {X-Test: "1"}}
            - request: {<<: *get, name: again, headers: *common}
        scenarios:
          base: &base {executor: constant-vus, vus: 2, duration: 10s, exec: main}
          copy: {<<: *base, startTime: 10s}
        """))
    outcome = run_cli(["validate", "plan.yml"], cwd=tmp_path)
    assert outcome.code == 0, outcome.stderr
    assert "copy  constant-vus: 2 VUs for 10s" in outcome.stdout


def test_a_yaml_tag_runs_no_code_in_the_plan_or_its_includes(tmp_path: Path) -> None:
    (tmp_path / "part.yml").write_text('vars: {x: !!python/object/apply:os.system ["touch pwned"]}\n')
    (tmp_path / "plan.yml").write_text(TARGET + "include: [part.yml]\n")
    outcome = run_cli(["validate", "plan.yml"], cwd=tmp_path)
    assert_rejected(outcome, says="YAML tag '!!python/object/apply:os.system'", where="part.yml:1")
    assert not (tmp_path / "pwned").exists()
