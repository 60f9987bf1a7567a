"""`python -m server`: the `omniroute` command, for a checkout without the console script."""

import sys

from server.cli import main

sys.exit(main())
