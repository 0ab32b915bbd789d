"""The Docker action's entry point: the action's inputs, mapped to `loadaction run`.

This is the composition root of the action: github/action.py turns the
inputs into a command line, loadaction.cli runs it. A bad input exits 2
with one annotation line, before anything runs.

The bundled plan (the `plan` input's default) is the one beside this file,
/app/scenarios/ticketing.yml in the image.
"""

import os
import sys
from pathlib import Path

from loadaction.cli import main as cli_main
from loadaction.errors import ExitCode
from loadaction.github.action import InputError, input_error, invocation

BUNDLED_PLAN = Path(__file__).resolve().parent / "scenarios" / "ticketing.yml"


def main() -> int:
    try:
        call = invocation(os.environ, BUNDLED_PLAN)
    except InputError as exc:
        print(input_error(exc), file=sys.stderr)
        return ExitCode.INVALID
    os.environ.update(call.env)
    return cli_main(call.argv)


if __name__ == "__main__":
    sys.exit(main())
