"""The Docker action's entry point: the action's inputs, mapped to `loadaction run`.

The bundled plan (the `plan` input's default) is the one beside this file,
/app/scenarios/ticketing.yml in the image.
"""

import sys
from pathlib import Path

from loadaction.github.action import main

if __name__ == "__main__":
    sys.exit(main(bundled_plan=Path(__file__).resolve().parent / "scenarios" / "ticketing.yml"))
