"""The engine option capacity steps stand on: a run given an earlier
setup's vars skips setup and uses them; a plan without scenarios runs its
teardown alone. Real runs against the loopback test target."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from loadaction.engine.runner import Run
from loadaction.engine.status import RunStatus
from loadaction.plan import load_plan
from tests.target import Target

PLAN = """
    target: {url}
    setup:
      - request: {{name: setup, method: GET, url: "/echo?from=setup"}}
      - extract: {{json: {{seeded: "$.query.from"}}}}
    teardown:
      - request: {{name: teardown, method: GET, url: "/echo?from={{{{ vars.seeded }}}}-teardown"}}
    scenarios:
      s: {{executor: shared-iterations, vus: 1, iterations: 2, exec: f}}
    flows:
      f:
        - request: {{name: use, url: "/echo?seen={{{{ vars.seeded }}}}"}}
        - check: {{json: {{"$.query.seen": setup}}}}
"""


def test_given_vars_skip_setup_and_reach_the_flows(target: Target,
                                                   write_plan: Callable[[str], Path]) -> None:
    plan = load_plan(write_plan(PLAN.format(url=target.url)))
    first = Run(replace(plan, teardown=None))
    outcome = asyncio.run(first.execute())
    assert outcome.status is RunStatus.COMPLETE and first.setup_done
    assert first.setup_vars["seeded"] == "setup"
    assert target.hits["/echo"] == 3  # setup and two iterations

    second = Run(replace(plan, teardown=None), vars=first.setup_vars)
    outcome = asyncio.run(second.execute())
    assert outcome.status is RunStatus.COMPLETE and outcome.timing.setup_s is None
    assert target.hits["/echo"] == 5  # two iterations, no setup
    checks = outcome.registry.select("checks")
    assert checks is not None and checks.passes == checks.total == 2  # type: ignore[union-attr]


def test_a_plan_without_scenarios_runs_its_teardown_alone(target: Target,
                                                          write_plan: Callable[[str], Path]) -> None:
    plan = load_plan(write_plan(PLAN.format(url=target.url)))
    run = Run(replace(plan, scenarios=(), thresholds=()), vars={"seeded": "given"})
    outcome = asyncio.run(run.execute())
    assert outcome.status is RunStatus.COMPLETE
    assert outcome.timing.teardown_s is not None and outcome.timing.setup_s is None
    assert target.hits["/echo"] == 1  # the teardown, nothing else
    assert not outcome.notices  # it did not fail
