"""GitHub Actions integration: the step's inputs and environment, workflow
commands, outputs and job summary, and the sticky PR comment.

It reads only the results document (and the plan positions in it), never
the engine: whatever ran, GitHub sees the same document the reports see.

    environment.py   INPUT_* (both spellings), event payload, PR number, paths
    commands.py      ::error / ::warning / ::group:: / ::add-mask:: lines, escaped
    outputs.py       $GITHUB_OUTPUT (heredoc form) and $GITHUB_STEP_SUMMARY (≤ 1 MiB)
    annotations.py   an ::error at each violated budget's plan line
    scenario_log.py  each scenario's log as a ::group::
    comments.py      the REST client: marker, pagination, PATCH or POST, retries
    publish.py       results document → sticky comment on a PR
    step.py          `run --github`: everything after the run, in order
    cli.py           the run flags and `loadaction comment`
    action.py        the action's inputs → `loadaction run` argv (entrypoint.py)
"""
