import sys

from loadaction.cli import main

sys.exit(main())
