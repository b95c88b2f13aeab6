"""`python -m probgen.cli`: the `probgen` command."""

import sys

from probgen.cli import entry_point

sys.exit(entry_point())
