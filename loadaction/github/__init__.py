"""GitHub Actions integration: the step's inputs and environment, workflow
commands, outputs and job summary, and the sticky PR comment.

It reads only the results document (and the plan positions in it), never
the engine: whatever ran, GitHub sees the same document the reports see.

    environment.py   INPUT_* (both spellings), event payload, PR number, paths
    commands.py      ::error / ::warning / ::group:: / ::add-mask:: lines, escaped
    outputs.py       $GITHUB_OUTPUT (heredoc form) and $GITHUB_STEP_SUMMARY (≤ 1 MiB)
    annotations.py   an ::error at each violated budget's plan line, ranked, capped at 10
    scenario_log.py  each scenario's log (its own window) as a ::group::
    api.py           the REST client: retries, rate limits, pagination, the token's host
    comments.py      the sticky comment: marker, find it, PATCH or POST
    baselines.py     `baseline: auto`: the base branch's last runs' results artifacts
    publish.py       results document → sticky comment on a PR
    step.py          `run --github`: everything after the run, in order
    cli.py           the run flags and `loadaction comment`
    action.py        the action's inputs → `loadaction run` argv (entrypoint.py)
"""
