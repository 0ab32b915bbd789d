"""Hostile templates through the real CLI, each in a bounded subprocess
(1 GiB of address space, a timeout): runaway loops, products, formats and
doubling are stopped with a one-line reason. Templates that can be tried at
load time make `validate` exit 2 at their line; the others end up as counted
errors of a run that ends on its own, or on SIGINT, with results.json written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.hostile import _limit_memory, assert_rejected, run_cli
from tests.target import Target

ROOT = Path(__file__).resolve().parent.parent
REJECTED_WITHIN_S = 10.0  # a rejection takes well under 2 s; this allows for a busy runner


def _plan(tmp_path: Path, template: str, *, target: str = "http://127.0.0.1:1",
          before: str = "", iterations: int = 1) -> Path:
    """A plan whose one request sends `template` as its body, at line 9 (a
    YAML literal block, so no quoting gets in the way)."""
    text = textwrap.dedent(f"""\
        target: {target}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 1, iterations: {iterations}, exec: f}}
        flows:
          f:
            - set: {{n: 99999, w: 1000000000, big: "{'x' * 1000}"}}
            - request:
                url: /ok
                body: |-
        """) + textwrap.indent(template, " " * 12) + "\n" + textwrap.dedent(before)
    path = tmp_path / "plan.yml"
    path.write_text(text)
    return path


# template -> the reason `validate` gives, at plan.yml:9 (the body)
AT_LOAD_TIME = {
    "nested-loops": ("{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}"
                     "{% endfor %}", "ran over 100 ms"),
    "nested-empty-loops": ("{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}"
                           "{% endfor %}", "ran over 100 ms"),
    "string-product": ("{{ 'x' * 10**10 }}",
                       "string product of 10000000000 characters is over the 1 MiB limit"),
    "format-filter-width": ("{{ '%99999999999s' | format('x') }}",
                            "format width 99999999999 is over the 1 MiB limit"),
    "percent-width": ("{{ '%999999999s' % 'x' }}", "format width 999999999 is over"),
    "percent-precision": ("{{ '%.999999999f' % 1.5 }}", "format width 999999999 is over"),
    "str-format-width": ("{{ '{:999999999}'.format('x') }}", "format width 999999999 is over"),
    "center-filter": ("{{ 'x' | center(1000000000) }}", "padding of 1000000000 characters"),
    "ljust-method": ("{{ 'x'.ljust(10**9) }}", "padding of 1000000000 characters"),
    "big-power": ("{{ 10 ** 100000 }}", "10 ** 100000 is over the 65536-bit number limit"),
    "list-product": ("{{ [0] * 10**9 }}", "list product of 1000000000 items"),
    "doubling-concat": ("{% set ns = namespace(s='x') %}{% for i in range(60) %}"
                        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
                        "joined text of 2097152 characters"),
    "doubling-list": ("{% set ns = namespace(l=[1]) %}{% for i in range(60) %}"
                      "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
                      "a list of 2097152 items"),
    "doubling-extend": ("{% set l = [1] %}{% for i in range(60) %}{{ l.extend(l) }}{% endfor %}",
                        "a list of 2097152 items"),
    "doubling-macro": ("{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x') }}",
                       "joined text of 2097152 characters"),
    "endless-macro": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
                      "calls nested too deeply"),
    "lipsum": ("{{ lipsum(1000000) }}", "lipsum of 1000000 paragraphs"),
    "batch-fill": ("{{ [1] | batch(1000000000, 'x') | list }}", "batches of 1000000000 items"),
    "slices": ("{{ [1] | slice(1000000000) | list }}", "1000000000 slices"),
    "wordwrap": ("{{ ('x' * 1000000) | wordwrap(1) }}",
                 "wordwrap of 1000000 characters is over the 128 KiB limit"),
    "indent": ("{{ ('\\n' * 100000) | indent(100000) }}", "indenting of 10000200000 characters"),
    "buffered-output": ("{% macro m() %}{% for i in range(99999) %}" + "y" * 1000
                        + "{% endfor %}{% endmacro %}{{ m() | length }}", "output over 1 MiB"),
    "shared-lists": ("{% set ns = namespace(a=['x' * 1000]) %}{% for i in range(60) %}"
                     "{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns.a }}",
                     "a value that would print as over 1 MiB"),
    "many-values": ("{{ range(99999) | map('string') | map('center', 9999) | list | length }}",
                    "made over 16 MiB of strings and lists"),
    "vu-dependent": ("{{ 'x' * (vu * 10**10) }}", "string product of 10000000000 characters"),
}


@pytest.mark.parametrize("name", list(AT_LOAD_TIME))
def test_validate_refuses_a_runaway_template_at_its_line(tmp_path: Path, name: str) -> None:
    template, reason = AT_LOAD_TIME[name]
    _plan(tmp_path, template)
    outcome = run_cli(["validate", "plan.yml"], cwd=tmp_path)
    assert_rejected(outcome, code=2, where="plan.yml:9:",
                    says=["template exceeded the render budget: ", reason])
    assert outcome.seconds < REJECTED_WITHIN_S, outcome.seconds


def test_run_refuses_it_too_before_sending_anything(tmp_path: Path, target: Target) -> None:
    _plan(tmp_path, "{{ 'x' * 10**10 }}", target=target.url)
    outcome = run_cli(["run", "plan.yml", "--out", "out", "--quiet"], cwd=tmp_path)
    assert_rejected(outcome, code=2, where="plan.yml:9:", says="string product")
    assert sum(target.hits.values()) == 0


def test_a_runaway_template_in_plan_vars_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "plan.yml").write_text(textwrap.dedent("""\
        target: http://127.0.0.1:1
        vars:
          pad: "{{ '{:>999999999}'.format('x') }}"
        scenarios:
          s: {executor: per-vu-iterations, exec: f}
        flows:
          f: [{request: {url: /ok}}]
        """))
    outcome = run_cli(["validate", "plan.yml"], cwd=tmp_path)
    assert_rejected(outcome, code=2, where="plan.yml:3:", says="format width 999999999")


def test_a_runaway_target_template_is_refused(tmp_path: Path) -> None:
    """The target is rendered with `env` while the plan loads."""
    (tmp_path / "plan.yml").write_text(textwrap.dedent("""\
        target: "http://{{ env.PAD * 10**10 }}"
        scenarios:
          s: {executor: per-vu-iterations, exec: f}
        flows:
          f: [{request: {url: /ok}}]
        """))
    outcome = run_cli(["validate", "plan.yml"], cwd=tmp_path, env={"PAD": "x"})
    assert_rejected(outcome, code=2, where="plan.yml:1:",
                    says="exceeded the render budget: string product of 10000000000 characters")


# template (needing a value only a run has: a `set` var, the response) -> the reason
AT_RUN_TIME = {
    "nested-loops": ("{% for i in range(vars.n) %}{% for j in range(vars.n) %}x{% endfor %}"
                     "{% endfor %}", "ran over 100 ms"),
    "loop-output": ("{% for i in range(vars.n) %}{{ vars.big }}{% endfor %}",
                    "output over 1 MiB"),
    "string-product": ("{{ vars.big * vars.w }}",
                       "string product of 1000000000000 characters is over the 1 MiB limit"),
    "width-from-a-var": ("{{ '%*s' % (vars.w, 'x') }}",
                         "format width 1000000000 is over the 1 MiB limit"),
    "format-from-a-var": ("{{ '{:{w}}'.format('x', w=vars.w) }}",
                          "format width 1000000000 is over the 1 MiB limit"),
    "replace": ("{{ ('a' * 100000).replace('a', vars.big) }}",
                "replacing of 100000000 characters is over the 1 MiB limit"),
}


def _results(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out" / "results.json").read_text())


@pytest.mark.parametrize("name", list(AT_RUN_TIME))
def test_a_runaway_template_at_run_time_is_a_counted_error(tmp_path: Path, target: Target,
                                                           name: str) -> None:
    template, reason = AT_RUN_TIME[name]
    _plan(tmp_path, template, target=target.url, iterations=3)
    outcome = run_cli(["validate", "plan.yml"], cwd=tmp_path)
    assert outcome.code == 0, outcome.stderr  # nothing to try it with before the run
    outcome = run_cli(["run", "plan.yml", "--out", "out", "--quiet"], cwd=tmp_path)
    assert "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    assert outcome.code in (0, 3, 99), (outcome.code, outcome.stderr[-2000:])
    assert outcome.seconds < 30
    errors = _results(tmp_path)["errors"]
    expected = ("plan.yml:7: request '/ok' could not be rendered: template at plan.yml:9 "
                f"exceeded the render budget: {reason}")
    assert [e["message"] for e in errors] == [expected], errors
    assert errors[0]["count"] == 3  # every iteration: the run went on after each
    assert sum(target.hits.values()) == 0  # nothing was sent with a half-rendered body


def test_a_budget_error_in_a_record_value_is_counted(tmp_path: Path, target: Target) -> None:
    (tmp_path / "plan.yml").write_text(textwrap.dedent(f"""\
        target: {target.url}
        metrics:
          size: {{type: trend}}
        scenarios:
          s: {{executor: per-vu-iterations, vus: 1, iterations: 2, exec: f}}
        flows:
          f:
            - request: {{url: /ok}}
            - record: {{metric: size, value: "{{{{ (response.body * 10**9)|length }}}}"}}
        """))
    outcome = run_cli(["run", "plan.yml", "--out", "out", "--quiet"], cwd=tmp_path)
    assert "Traceback" not in outcome.stderr, outcome.stderr[-3000:]
    assert outcome.code in (0, 3, 99), (outcome.code, outcome.stderr[-2000:])
    errors = _results(tmp_path)["errors"]
    assert [e["message"] for e in errors] == [
        "'value' could not be rendered: template at plan.yml:9 exceeded the render budget: "
        "string product of 2000000000 characters is over the 1 MiB limit"], errors
    assert errors[0]["count"] == 2


def test_sigint_during_runaway_renders_exits_3_with_results(tmp_path: Path,
                                                             target: Target) -> None:
    _plan(tmp_path, "{% for i in range(vars.n) %}{% for j in range(vars.n) %}x{% endfor %}"
                    "{% endfor %}", target=target.url)
    plan = tmp_path / "plan.yml"
    plan.write_text(plan.read_text().replace(
        "{executor: per-vu-iterations, vus: 1, iterations: 1, exec: f}",
        "{executor: constant-vus, vus: 1, duration: 60s, exec: f}"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadaction", "run", "plan.yml", "--out", "out", "--quiet"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        preexec_fn=_limit_memory, start_new_session=True)
    try:
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError("still running 15 s after SIGINT") from None
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode == 3, (proc.returncode, err[-2000:])
    doc = _results(tmp_path)
    assert doc["status"] == "cancelled" and doc["status_reason"] == "SIGINT"
    assert any("exceeded the render budget: ran over 100 ms" in e["message"]
               for e in doc["errors"]), doc["errors"]
    assert took < 2.0, f"exited {took:.2f} s after SIGINT"


def test_a_runaway_template_on_env_is_refused_when_the_plan_loads(tmp_path: Path) -> None:
    """Templates that read only env, secrets and the plan's own vars are tried
    with them at load time (placeholders, for validate)."""
    (tmp_path / "plan.yml").write_text(
        "target: http://127.0.0.1:1\n"
        "vars: {n: 99999}\n"
        "defaults:\n"
        '  headers: {X-Big: "{{ env.HOME * 10**9 }}", X-Loop: "'
        '{% for i in range(vars.n) %}{% for j in range(vars.n) %}x{% endfor %}{% endfor %}"}\n'
        "scenarios:\n  s: {executor: constant-vus, vus: 1, duration: 1s, exec: f}\n"
        "flows:\n  f: [{request: {url: /}}]\n")
    outcome = run_cli(["validate", "plan.yml"], cwd=tmp_path, env={"HOME": "/root"})
    assert_rejected(outcome, says="exceeded the render budget", where="plan.yml:4")
    assert outcome.seconds < 5
