"""`python -m ops`: the same as the `leaderboard-ops` console script."""

import sys

from ops.cli import main

sys.exit(main())
